//! Stage 6: CloudFront invalidation of what the deploy changed, within
//! CloudFront's limits, behind a small trait this crate owns.

use std::future::Future;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tracing::{debug, info, warn};

use crate::config::Cdn as Settings;

pub mod cloudfront;
#[cfg(test)]
pub mod memory;
pub mod paths;

/// CloudFront accepts at most this many paths in one invalidation.
pub const MAX_PATHS_PER_REQUEST: usize = 3000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub domain_name: String,
    pub origins: Vec<paths::Origin>,
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
            "Unreachable" => {
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

/// How long to wait between tries and polls; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub first_retry: Duration,
    pub max_retry: Duration,
    pub poll: Duration,
}

pub const PACING: Pacing = Pacing {
    first_retry: Duration::from_secs(2),
    max_retry: Duration::from_secs(60),
    poll: Duration::from_secs(10),
};

/// What was asked of one distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub distribution_id: String,
    pub domain_name: String,
    pub ids: Vec<String>,
    pub paths: Vec<String>,
    pub completed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    #[error(transparent)]
    Cdn(#[from] CdnError),
    #[error(
        "invalidation {invalidation_id} on {distribution_id} is still in progress after {waited} s \
         (WAIT_TIMEOUT): it carries on in CloudFront"
    )]
    Timeout {
        distribution_id: String,
        invalidation_id: String,
        waited: u64,
    },
}

/// The paths to invalidate on one distribution: `PATHS` when given; in
/// deploy mode the changed keys mapped through the origin path and fitted to
/// the budget; `/*` when only invalidating.
pub fn paths_for(
    settings: &Settings,
    changed: Option<(&str, &str, &[String])>,
    distribution: &Distribution,
) -> Vec<String> {
    if let Some(paths) = &settings.paths {
        return paths.clone();
    }
    let Some((bucket, prefix, keys)) = changed else {
        return vec!["/*".to_string()];
    };
    let served = paths::served_prefix(bucket, &distribution.origins).unwrap_or_else(|| {
        warn!(
            "no origin of {} points at bucket {bucket}: invalidating keys as paths from the bucket's root",
            distribution.domain_name
        );
        String::new()
    });
    if !prefix.is_empty()
        && !served.is_empty()
        && !prefix.starts_with(&served)
        && !served.starts_with(prefix)
    {
        warn!(
            "{} serves {bucket}/{served}, not {bucket}/{prefix}",
            distribution.domain_name
        );
    }
    paths::collapse(
        paths::viewer_paths(keys.iter().map(String::as_str), &served),
        settings.max_paths,
    )
}

/// Invalidates on every distribution. `changed` is `(bucket, prefix, keys)`
/// in deploy mode, `None` when only invalidating.
pub async fn invalidate<C: Cdn>(
    cdn: &C,
    settings: &Settings,
    changed: Option<(&str, &str, &[String])>,
    dry_run: bool,
    pacing: Pacing,
) -> Result<Vec<Invalidation>, InvalidateError> {
    if changed.is_some_and(|(_, _, keys)| keys.is_empty()) && settings.paths.is_none() {
        info!("Nothing changed: no CloudFront invalidation is needed");
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    for id in &settings.distribution_ids {
        let distribution = cdn.distribution(id).await?;
        let paths = paths_for(settings, changed, &distribution);
        info!(
            "Invalidating {} path(s) on {id} ({}){}",
            paths.len(),
            distribution.domain_name,
            if paths.len() <= 5 {
                format!(": {}", paths.join(" "))
            } else {
                String::new()
            }
        );
        for p in &paths {
            debug!("invalidate: {p}");
        }
        if dry_run {
            info!("(dryrun) no invalidation created on {id}");
            continue;
        }
        let deadline = Instant::now() + settings.wait_timeout;
        let mut ids = Vec::new();
        for chunk in paths.chunks(MAX_PATHS_PER_REQUEST) {
            let reference = caller_reference(&settings.reference, chunk);
            let invalidation_id =
                create_with_retry(cdn, id, chunk, &reference, deadline, pacing).await?;
            info!("Created invalidation {invalidation_id} on {id}");
            ids.push(invalidation_id);
        }
        let mut completed = false;
        if settings.wait {
            for invalidation_id in &ids {
                wait_for(cdn, id, invalidation_id, settings.wait_timeout, pacing).await?;
            }
            completed = true;
        }
        done.push(Invalidation {
            distribution_id: id.clone(),
            domain_name: distribution.domain_name,
            ids,
            paths,
            completed,
        });
    }
    Ok(done)
}

/// Traceable (the build that made it) and idempotent (the same paths give
/// the same reference, so a retried request cannot invalidate twice).
pub fn caller_reference(base: &str, paths: &[String]) -> String {
    let mut hash = Md5::new();
    for p in paths {
        hash.update(p.as_bytes());
        hash.update(b"\n");
    }
    let digest: String = hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{base}-{digest}")
}

async fn create_with_retry<C: Cdn>(
    cdn: &C,
    id: &str,
    paths: &[String],
    reference: &str,
    deadline: Instant,
    pacing: Pacing,
) -> Result<String, CdnError> {
    let mut delay = pacing.first_retry;
    loop {
        match cdn.create_invalidation(id, paths, reference).await {
            Err(e) if e.is_busy() && Instant::now() + delay < deadline => {
                warn!("{e}; retrying in {} s", delay.as_secs_f32());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(pacing.max_retry);
            }
            other => return other,
        }
    }
}

async fn wait_for<C: Cdn>(
    cdn: &C,
    id: &str,
    invalidation_id: &str,
    timeout: Duration,
    pacing: Pacing,
) -> Result<(), InvalidateError> {
    let started = Instant::now();
    loop {
        if cdn.invalidation_completed(id, invalidation_id).await? {
            info!(
                "Invalidation {invalidation_id} on {id} completed in {:.0} s",
                started.elapsed().as_secs_f32()
            );
            return Ok(());
        }
        if started.elapsed() + pacing.poll > timeout {
            return Err(InvalidateError::Timeout {
                distribution_id: id.to_string(),
                invalidation_id: invalidation_id.to_string(),
                waited: started.elapsed().as_secs(),
            });
        }
        info!(
            "Invalidation {invalidation_id} on {id} in progress ({:.0} s)",
            started.elapsed().as_secs_f32()
        );
        tokio::time::sleep(pacing.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::memory::{FaultyCdn, MemoryCdn};
    use super::*;

    const FAST: Pacing = Pacing {
        first_retry: Duration::from_millis(1),
        max_retry: Duration::from_millis(4),
        poll: Duration::from_millis(1),
    };

    fn settings() -> Settings {
        Settings {
            distribution_ids: vec!["E1".into()],
            paths: None,
            wait: true,
            wait_timeout: Duration::from_secs(5),
            max_paths: 15,
            reference: "bitbucket-site-7".into(),
        }
    }

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn retries_while_too_many_invalidations_are_in_progress() {
        let cdn = FaultyCdn::busy(MemoryCdn::with("E1", "site", "/prod"), 3);
        let changed = keys(&["prod/index.html", "prod/a.css"]);
        let done = invalidate(
            &cdn,
            &settings(),
            Some(("site", "prod", &changed)),
            false,
            FAST,
        )
        .await
        .unwrap();
        assert_eq!(cdn.attempts(), 4);
        assert_eq!(done[0].paths, ["/", "/a.css", "/index.html"]);
        assert!(done[0].completed);
        let created = cdn.inner.created();
        assert_eq!(created.len(), 1);
        assert!(created[0].1.starts_with("bitbucket-site-7-"));
    }

    #[tokio::test]
    async fn gives_up_when_busy_past_the_timeout() {
        let cdn = FaultyCdn::busy(MemoryCdn::with("E1", "site", ""), usize::MAX);
        let mut s = settings();
        s.wait_timeout = Duration::from_millis(20);
        let err = invalidate(&cdn, &s, Some(("site", "", &keys(&["a"]))), false, FAST)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("TooManyInvalidationsInProgress"),
            "{err}"
        );
        assert!(cdn.attempts() > 1);
    }

    #[tokio::test]
    async fn nothing_changed_means_no_request() {
        let cdn = MemoryCdn::with("E1", "site", "");
        assert!(
            invalidate(&cdn, &settings(), Some(("site", "", &[])), false, FAST)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(cdn.created().is_empty());
    }

    #[tokio::test]
    async fn invalidate_only_defaults_to_everything_and_paths_override() {
        let cdn = MemoryCdn::with("E1", "site", "");
        let done = invalidate(&cdn, &settings(), None, false, FAST)
            .await
            .unwrap();
        assert_eq!(done[0].paths, ["/*"]);
        let mut s = settings();
        s.paths = Some(keys(&["/a", "/b/*"]));
        let done = invalidate(&cdn, &s, Some(("site", "", &keys(&["x"]))), false, FAST)
            .await
            .unwrap();
        assert_eq!(done[0].paths, ["/a", "/b/*"]);
    }

    #[tokio::test]
    async fn waiting_times_out_with_a_clear_error() {
        let cdn = MemoryCdn::with("E1", "site", "");
        cdn.never_complete();
        let mut s = settings();
        s.wait_timeout = Duration::from_millis(10);
        let err = invalidate(&cdn, &s, None, false, FAST).await.unwrap_err();
        assert!(err.to_string().contains("still in progress after"), "{err}");
    }

    #[tokio::test]
    async fn dry_run_reads_but_creates_nothing() {
        let cdn = MemoryCdn::with("E1", "site", "");
        let done = invalidate(
            &cdn,
            &settings(),
            Some(("site", "", &keys(&["a"]))),
            true,
            FAST,
        )
        .await
        .unwrap();
        assert!(done.is_empty());
        assert!(cdn.created().is_empty());
    }

    #[test]
    fn caller_reference_is_stable_for_the_same_paths() {
        let a = caller_reference("b-1", &keys(&["/a", "/b"]));
        assert_eq!(a, caller_reference("b-1", &keys(&["/a", "/b"])));
        assert_ne!(a, caller_reference("b-1", &keys(&["/a"])));
        assert_eq!(a.len(), "b-1-".len() + 16);
    }
}
