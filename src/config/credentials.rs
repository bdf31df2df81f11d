//! Where the credentials come from, decided from the variables alone:
//! Bitbucket OIDC first, then access keys, then the standard AWS chain.
//! Loading them is `edge::auth`'s job.

use tracing::{info, warn};

use crate::model::Secret;

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
}
