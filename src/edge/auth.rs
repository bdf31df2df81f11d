//! Credentials, loaded: the SDK configuration every client shares, with the
//! source `config::credentials` chose. An OIDC token is traded with STS here
//! and kept in memory only.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_sts::error::DisplayErrorContext;
use tracing::info;

use crate::config::credentials::Source;
use crate::config::{Network, RetryMode};
use crate::model::Secret;

/// An access key id as it may be shown: the first four and last four characters.
pub fn mask(key_id: &str) -> String {
    if key_id.len() <= 8 {
        "****".to_string()
    } else {
        format!("{}…{}", &key_id[..4], &key_id[key_id.len() - 4..])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("AssumeRoleWithWebIdentity for {role_arn} failed: {code}: {message}")]
    Sts {
        role_arn: String,
        code: String,
        message: String,
    },
    #[error("No AWS credentials could be loaded: {0}")]
    Chain(String),
}

impl AuthError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AuthError::Sts { code, .. } => Some(
                match code.as_str() {
                    "AccessDenied" | "AccessDeniedException" => {
                        "the role's trust policy does not accept this token: it must trust the identity provider \
                         https://api.bitbucket.org/2.0/workspaces/<workspace>/pipelines-config/identity/oidc, with \
                         aud = ari:cloud:bitbucket::workspace/<workspace uuid> and sub starting with \
                         {<repository uuid>} (see the README's Authentication section)"
                    }
                    "InvalidIdentityToken" | "InvalidIdentityTokenException" => {
                        "the OIDC token was refused: check that the IAM identity provider for Bitbucket exists, \
                         with the workspace's audience, and that the step has oidc: true"
                    }
                    "ExpiredTokenException" | "ExpiredToken" => {
                        "the OIDC token has expired: Bitbucket issues it when the step starts, so rerun the step"
                    }
                    "Unreachable" | "Timeout" => "STS could not be reached: check the network and AWS_ENDPOINT_URL_STS",
                    _ => "check AWS_OIDC_ROLE_ARN and the role's trust policy",
                }
                .to_string(),
            ),
            AuthError::Chain(_) => Some(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_OIDC_ROLE_ARN with oidc: true on the \
                 step, or run with an AWS profile or instance role"
                    .to_string(),
            ),
        }
    }
}

/// The SDK configuration every client shares: region, endpoint overrides
/// from `AWS_ENDPOINT_URL[_S3|_STS|_CLOUDFRONT]`, retries and timeouts, and
/// the chosen credentials,
/// resolved once here so a credential problem is reported before any work.
pub async fn load(
    region: &str,
    source: &Source,
    network: &Network,
) -> Result<SdkConfig, AuthError> {
    let retry = match network.retry_mode {
        RetryMode::Standard => RetryConfig::standard(),
        RetryMode::Adaptive => RetryConfig::adaptive(),
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(network.connect_timeout)
        .read_timeout(network.read_timeout)
        .build();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(retry.with_max_attempts(network.max_attempts))
        .timeout_config(timeouts);
    match source {
        Source::Oidc {
            role_arn,
            token,
            session_name,
            duration_seconds,
        } => {
            info!("Authenticating with a OpenID Connect (OIDC) Web Identity Provider");
            let base = loader.no_credentials().load().await;
            let provider = WebIdentity {
                sts: aws_sdk_sts::Client::new(&base),
                role_arn: role_arn.clone(),
                token: token.clone(),
                session_name: session_name.clone(),
                duration_seconds: *duration_seconds,
                first: Mutex::new(None),
            };
            let first = provider.assume().await?;
            info!("Assumed role {role_arn} as session {session_name}");
            *provider.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
            Ok(base
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build())
        }
        Source::Keys {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            info!("Authenticating with access key {}", mask(access_key_id));
            let credentials = Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "environment",
            );
            Ok(loader.credentials_provider(credentials).load().await)
        }
        Source::DefaultChain => {
            info!(
                "Authenticating with the default AWS credentials chain (profile, web identity, container, instance)"
            );
            let sdk = loader.load().await;
            let provider = sdk
                .credentials_provider()
                .ok_or_else(|| AuthError::Chain("no provider is configured".into()))?;
            provider
                .provide_credentials()
                .await
                .map_err(|e| AuthError::Chain(DisplayErrorContext(e).to_string()))?;
            Ok(sdk)
        }
    }
}

/// AssumeRoleWithWebIdentity with the token held in memory (never written
/// to a file). The SDK's identity cache asks again before expiry; the expiry
/// handed to it is 5 minutes early, so a refresh never races the deadline.
struct WebIdentity {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    token: Secret,
    session_name: String,
    duration_seconds: i32,
    /// The credentials fetched up front, handed out once.
    first: Mutex<Option<Credentials>>,
}

impl fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentity")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

const REFRESH_EARLY: Duration = Duration::from_secs(300);

impl WebIdentity {
    async fn assume(&self) -> Result<Credentials, AuthError> {
        let fail = |code: String, message: String| AuthError::Sts {
            role_arn: self.role_arn.clone(),
            code,
            message,
        };
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(self.token.expose())
            .duration_seconds(self.duration_seconds)
            .send()
            .await
            .map_err(|e| {
                let (code, message) = super::sdk_error::describe(&e);
                fail(code.unwrap_or_else(|| "Unknown".into()), message)
            })?;
        let c = out.credentials().ok_or_else(|| {
            fail(
                "NoCredentials".into(),
                "STS answered without credentials".into(),
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration())
            .ok()
            .and_then(|t| t.checked_sub(REFRESH_EARLY));
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "BitbucketOidc",
        ))
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            if let Some(first) = self.first.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Ok(first);
            }
            info!("Refreshing the OIDC session credentials");
            self.assume()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    #[test]
    fn secrets_do_not_print() {
        let s = Source::Keys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: Secret::new("topsecret"),
            session_token: Some(Secret::new("tok")),
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("tok\""),
            "{shown}"
        );
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
    }
}
