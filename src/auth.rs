//! Stage 2: credentials. The one place that decides where they come from.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("No AWS credentials: {0}")]
    Missing(String),
}

impl AuthError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing(_) => Some(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as secured repository variables, \
                 or use OIDC (AWS_OIDC_ROLE_ARN with oidc: true on the step)",
            ),
        }
    }
}

/// The SDK configuration shared by every client: region, endpoint overrides
/// from `AWS_ENDPOINT_URL[_S3|_STS|_CLOUDFRONT]`, and the credentials chain
/// (static keys from the environment first).
pub async fn load(config: &Config) -> Result<SdkConfig, AuthError> {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .load()
        .await;
    if sdk.credentials_provider().is_none() {
        return Err(AuthError::Missing(
            "no credentials provider is configured".into(),
        ));
    }
    Ok(sdk)
}
