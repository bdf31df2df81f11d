//! The real CDN: [`Cdn`] over the AWS SDK's CloudFront client.

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

use super::cdn::{Cdn, CdnError, Distribution, Origin};

pub struct CloudFront {
    client: Client,
}

impl CloudFront {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        // CloudFront is a global service, signed for us-east-1 whatever the
        // bucket's region.
        let conf = aws_sdk_cloudfront::config::Builder::from(sdk)
            .region(aws_config::Region::new("us-east-1"))
            .build();
        CloudFront {
            client: Client::from_conf(conf),
        }
    }
}

fn cdn_error<E, R>(operation: &'static str, id: &str, err: SdkError<E, R>) -> CdnError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = super::sdk_error::describe(&err);
    CdnError {
        operation,
        distribution_id: id.to_string(),
        code,
        message,
    }
}

impl Cdn for CloudFront {
    async fn distribution(&self, id: &str) -> Result<Distribution, CdnError> {
        let out = self
            .client
            .get_distribution()
            .id(id)
            .send()
            .await
            .map_err(|e| cdn_error("GetDistribution", id, e))?;
        let d = out.distribution();
        let origins = d
            .and_then(|d| d.distribution_config())
            .and_then(|c| c.origins())
            .map(|o| o.items())
            .unwrap_or_default()
            .iter()
            .map(|o| Origin {
                domain: o.domain_name().to_string(),
                path: o.origin_path().unwrap_or_default().to_string(),
            })
            .collect();
        Ok(Distribution {
            domain_name: d.map(|d| d.domain_name().to_string()).unwrap_or_default(),
            origins,
        })
    }

    async fn create_invalidation(
        &self,
        id: &str,
        paths: &[String],
        reference: &str,
    ) -> Result<String, CdnError> {
        let build_error = |e: aws_sdk_cloudfront::error::BuildError| CdnError {
            operation: "CreateInvalidation",
            distribution_id: id.to_string(),
            code: None,
            message: e.to_string(),
        };
        let paths = Paths::builder()
            .quantity(i32::try_from(paths.len()).unwrap_or(i32::MAX))
            .set_items(Some(paths.to_vec()))
            .build()
            .map_err(build_error)?;
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(reference)
            .build()
            .map_err(build_error)?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| cdn_error("CreateInvalidation", id, e))?;
        Ok(out
            .invalidation()
            .map(|i| i.id().to_string())
            .unwrap_or_default())
    }

    async fn invalidation_completed(
        &self,
        id: &str,
        invalidation_id: &str,
    ) -> Result<bool, CdnError> {
        let out = self
            .client
            .get_invalidation()
            .distribution_id(id)
            .id(invalidation_id)
            .send()
            .await
            .map_err(|e| cdn_error("GetInvalidation", id, e))?;
        Ok(out
            .invalidation()
            .is_some_and(|i| i.status().eq_ignore_ascii_case("completed")))
    }
}
