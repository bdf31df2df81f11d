//! CloudFront, behind a small trait this crate owns. The SDK types stay in
//! `edge::cloudfront`.

use std::future::Future;

pub use crate::plan::invalidation::Origin;

/// CloudFront accepts at most this many paths in one invalidation.
pub const MAX_PATHS_PER_REQUEST: usize = 3000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub domain_name: String,
    pub origins: Vec<Origin>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} on distribution {distribution_id} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CdnError {
    pub operation: &'static str,
    pub distribution_id: String,
    pub code: Option<String>,
    pub message: String,
}

impl CdnError {
    /// Errors that clear by themselves: retried with backoff.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "TooManyInvalidationsInProgress"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
            )
        )
    }

    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.code.as_deref()? {
            "NoSuchDistribution" => {
                "check DISTRIBUTION_ID: the id (like E2QWRUHAPOMQZL) is on the distribution's page"
            }
            "AccessDenied" => {
                "the credentials need cloudfront:GetDistribution and cloudfront:CreateInvalidation \
                 (and cloudfront:GetInvalidation with WAIT) on the distribution"
            }
            "TooManyInvalidationsInProgress" => {
                "CloudFront allows 3,000 paths and 15 wildcards in progress per distribution: \
                 raise WAIT_TIMEOUT, or lower INVALIDATION_MAX_PATHS"
            }
            "Unreachable" | "Timeout" => {
                "CloudFront could not be reached: check the network and AWS_ENDPOINT_URL_CLOUDFRONT"
            }
            _ => return None,
        })
    }
}

/// What the pipe needs from CloudFront. Implemented by the SDK client and,
/// in tests, by an in-memory CDN and a fault-injecting wrapper.
pub trait Cdn: Sync {
    fn distribution(&self, id: &str)
    -> impl Future<Output = Result<Distribution, CdnError>> + Send;

    /// Creates an invalidation; returns its id.
    fn create_invalidation(
        &self,
        id: &str,
        paths: &[String],
        caller_reference: &str,
    ) -> impl Future<Output = Result<String, CdnError>> + Send;

    /// Whether the invalidation has completed.
    fn invalidation_completed(
        &self,
        id: &str,
        invalidation_id: &str,
    ) -> impl Future<Output = Result<bool, CdnError>> + Send;
}
