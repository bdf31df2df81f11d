//! Stage 2: credentials. The one place that decides where they come from:
//! Bitbucket OIDC first, then access keys, then the standard AWS chain.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_sts::error::DisplayErrorContext;
use tracing::{info, warn};

/// A value that must never be printed: its Debug and Display are masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the credentials come from, as chosen by [`choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Bitbucket's OIDC token traded with STS AssumeRoleWithWebIdentity.
    Oidc {
        role_arn: String,
        token: Secret,
        session_name: String,
        duration_seconds: i32,
    },
    Keys {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// The SDK's own chain: profile, web identity file, container, instance.
    DefaultChain,
}

/// The variables that decide the source.
#[derive(Debug, Default, Clone)]
pub struct AuthVars {
    pub oidc_role_arn: Option<String>,
    pub oidc_token: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub session_name: Option<String>,
    pub duration_seconds: Option<String>,
    pub repo_slug: Option<String>,
    pub build_number: Option<String>,
    /// True inside a Bitbucket Pipelines step (BITBUCKET_BUILD_NUMBER is set).
    pub in_bitbucket: bool,
    /// True when the SDK's chain has something to read besides instance
    /// metadata: a profile, a web identity token file, container credentials.
    pub chain_configured: bool,
}

pub const DEFAULT_DURATION: i32 = 3600;

/// Chooses the credential source, or says which variable to fix. Pure: the
/// messages it logs are the only side effect.
pub fn choose(v: &AuthVars) -> Result<Source, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let keys = match (&v.access_key_id, &v.secret_access_key) {
        (Some(id), Some(secret)) => Some(Source::Keys {
            access_key_id: id.trim().to_string(),
            secret_access_key: Secret::new(secret.trim()),
            session_token: v.session_token.as_ref().map(|t| Secret::new(t.trim())),
        }),
        (Some(_), None) => {
            errors.push((
                "AWS_SECRET_ACCESS_KEY",
                "required with AWS_ACCESS_KEY_ID and not set".to_string(),
            ));
            None
        }
        (None, Some(_)) => {
            errors.push((
                "AWS_ACCESS_KEY_ID",
                "required with AWS_SECRET_ACCESS_KEY and not set".to_string(),
            ));
            None
        }
        (None, None) => None,
    };
    let duration_seconds = match v.duration_seconds.as_deref().map(str::trim) {
        None => DEFAULT_DURATION,
        Some(d) => match d.parse::<i32>() {
            Ok(n) if (900..=43_200).contains(&n) => n,
            _ => {
                errors.push((
                    "AWS_ROLE_DURATION_SECONDS",
                    format!("{d:?} is not a number of seconds from 900 to 43200"),
                ));
                DEFAULT_DURATION
            }
        },
    };
    let source = match (&v.oidc_role_arn, &v.oidc_token) {
        (Some(role), token) => {
            let role = role.trim();
            if !valid_role_arn(role) {
                errors.push((
                    "AWS_OIDC_ROLE_ARN",
                    format!("{role:?} is not an IAM role ARN: arn:aws:iam::<12-digit account id>:role/<name>"),
                ));
            }
            match (token, keys) {
                (Some(token), keys) => {
                    if keys.is_some() {
                        info!(
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are ignored: OIDC takes precedence"
                        );
                    }
                    Some(Source::Oidc {
                        role_arn: role.to_string(),
                        token: Secret::new(token.trim()),
                        session_name: session_name(v),
                        duration_seconds,
                    })
                }
                (None, keys) => {
                    warn!(
                        "Parameter \"oidc: true\" in the step configuration is required for OIDC authentication"
                    );
                    if keys.is_none() {
                        errors.push((
                            "AWS_OIDC_ROLE_ARN",
                            "is set but BITBUCKET_STEP_OIDC_TOKEN is not: add \"oidc: true\" to the step, \
                             or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                                .to_string(),
                        ));
                    }
                    keys
                }
            }
        }
        (None, _) => keys,
    };
    let source = match source {
        Some(s) => s,
        None if v.in_bitbucket && !v.chain_configured && errors.is_empty() => {
            errors.push((
                "AWS_ACCESS_KEY_ID",
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or AWS_OIDC_ROLE_ARN with \"oidc: true\" on the step"
                    .to_string(),
            ));
            Source::DefaultChain
        }
        None => Source::DefaultChain,
    };
    if errors.is_empty() {
        Ok(source)
    } else {
        Err(errors)
    }
}

fn valid_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource.strip_prefix("role/").unwrap_or("");
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// `AWS_ROLE_SESSION_NAME`, else `bitbucket-<repo>-<build>` so CloudTrail
/// shows which pipeline deployed; cut to STS's characters and 64 bytes.
pub fn session_name(v: &AuthVars) -> String {
    let raw = match (&v.session_name, &v.repo_slug, &v.build_number) {
        (Some(name), _, _) => name.clone(),
        (None, Some(repo), Some(build)) => format!("bitbucket-{repo}-{build}"),
        (None, Some(repo), None) => format!("bitbucket-{repo}"),
        _ => "s3-cloudfront-deploy".to_string(),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if clean.len() < 2 {
        format!("{clean}-s")
    } else {
        clean
    }
}

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
                    "Unreachable" => "STS could not be reached: check the network and AWS_ENDPOINT_URL_STS",
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
/// from `AWS_ENDPOINT_URL[_S3|_STS|_CLOUDFRONT]`, and the chosen credentials,
/// resolved once here so a credential problem is reported before any work.
pub async fn load(region: &str, source: &Source) -> Result<SdkConfig, AuthError> {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
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
                let (code, message) = crate::sdk_error::describe(&e);
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

    const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

    fn vars() -> AuthVars {
        AuthVars::default()
    }

    #[test]
    fn oidc_wins_over_keys() {
        let v = AuthVars {
            oidc_role_arn: Some(ROLE.into()),
            oidc_token: Some("eyJ.token".into()),
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some("s".into()),
            repo_slug: Some("web site".into()),
            build_number: Some("42".into()),
            ..vars()
        };
        assert_eq!(
            choose(&v).unwrap(),
            Source::Oidc {
                role_arn: ROLE.into(),
                token: Secret::new("eyJ.token"),
                session_name: "bitbucket-web-site-42".into(),
                duration_seconds: 3600,
            }
        );
    }

    #[test]
    fn role_without_token_falls_back_to_keys_or_fails() {
        let v = AuthVars {
            oidc_role_arn: Some(ROLE.into()),
            access_key_id: Some("AKIA".into()),
            secret_access_key: Some("s".into()),
            ..vars()
        };
        assert!(matches!(choose(&v).unwrap(), Source::Keys { .. }));
        let v = AuthVars {
            oidc_role_arn: Some(ROLE.into()),
            ..vars()
        };
        let errors = choose(&v).unwrap_err();
        assert_eq!(errors[0].0, "AWS_OIDC_ROLE_ARN");
        assert!(errors[0].1.contains("add \"oidc: true\" to the step"));
    }

    #[test]
    fn keys_need_both_halves_and_nothing_in_bitbucket_is_an_error() {
        let v = AuthVars {
            access_key_id: Some("AKIA".into()),
            ..vars()
        };
        assert_eq!(choose(&v).unwrap_err()[0].0, "AWS_SECRET_ACCESS_KEY");
        assert_eq!(choose(&vars()).unwrap(), Source::DefaultChain);
        let in_pipeline = AuthVars {
            in_bitbucket: true,
            ..vars()
        };
        assert_eq!(choose(&in_pipeline).unwrap_err()[0].0, "AWS_ACCESS_KEY_ID");
        let with_profile = AuthVars {
            in_bitbucket: true,
            chain_configured: true,
            ..vars()
        };
        assert_eq!(choose(&with_profile).unwrap(), Source::DefaultChain);
    }

    #[test]
    fn malformed_role_arn_and_duration_are_validation_errors() {
        for bad in [
            "arn:aws:iam::12345:role/x",
            "deploy",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
        ] {
            let v = AuthVars {
                oidc_role_arn: Some(bad.into()),
                oidc_token: Some("t".into()),
                ..vars()
            };
            assert_eq!(choose(&v).unwrap_err()[0].0, "AWS_OIDC_ROLE_ARN", "{bad}");
        }
        for (d, ok) in [
            ("899", false),
            ("900", true),
            ("43200", true),
            ("43201", false),
            ("1h", false),
        ] {
            let v = AuthVars {
                duration_seconds: Some(d.into()),
                ..vars()
            };
            assert_eq!(choose(&v).is_ok(), ok, "{d}");
        }
        assert!(valid_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/to/Deploy_Role+x"
        ));
    }

    #[test]
    fn session_names_are_sanitised_and_bounded() {
        let v = AuthVars {
            session_name: Some("deploy by José!".into()),
            ..vars()
        };
        assert_eq!(session_name(&v), "deploy-by-Jos--");
        let long = AuthVars {
            repo_slug: Some("r".repeat(100)),
            build_number: Some("7".into()),
            ..vars()
        };
        assert_eq!(session_name(&long).len(), 64);
        assert_eq!(session_name(&vars()), "s3-cloudfront-deploy");
    }

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
