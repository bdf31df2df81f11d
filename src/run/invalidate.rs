//! CloudFront invalidation of what the deploy changed: the requests, their
//! retries while CloudFront is busy, and the wait for completion. Which
//! paths, and the CallerReference, are `plan::invalidation`'s decisions.

use std::time::{Duration, Instant};

use crate::config::Cdn as Settings;
use crate::edge::cdn::{Cdn, CdnError, Distribution, MAX_PATHS_PER_REQUEST};
use crate::plan::invalidation::{Changed, caller_reference, paths_for};

use super::error::InvalidateError;
use super::events::{Event, Invalidation, Sink};
use super::pacing::Pacing;

/// Every distribution of the settings, by id: looked up before the deploy
/// writes anything, so that a wrong DISTRIBUTION_ID or a missing
/// cloudfront:GetDistribution permission stops it before S3 changes.
pub async fn distributions<C: Cdn>(
    cdn: &C,
    settings: &Settings,
) -> Result<Vec<(String, Distribution)>, InvalidateError> {
    let mut found = Vec::new();
    for id in &settings.distribution_ids {
        found.push((id.clone(), cdn.distribution(id).await?));
    }
    Ok(found)
}

/// Invalidates on every distribution (as [`distributions`] found them).
/// `changed` is what the deploy changed, `None` when only invalidating.
pub async fn invalidate<C: Cdn, E: Sink>(
    cdn: &C,
    settings: &Settings,
    distributions: Vec<(String, Distribution)>,
    changed: Option<Changed<'_>>,
    dry_run: bool,
    pacing: Pacing,
    sink: &E,
) -> Result<Vec<Invalidation>, InvalidateError> {
    if changed.is_some_and(|c| c.keys.is_empty()) && settings.paths.is_none() {
        sink.event(&Event::NothingToInvalidate);
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    for (id, distribution) in distributions {
        let id = &id;
        let (paths, warnings) = paths_for(
            settings.paths.as_deref(),
            changed,
            &distribution.domain_name,
            &distribution.origins,
            settings.max_paths,
        );
        sink.event(&Event::Invalidating {
            distribution_id: id,
            domain_name: &distribution.domain_name,
            paths: &paths,
            warnings: &warnings,
            dry_run,
        });
        if dry_run {
            continue;
        }
        let deadline = Instant::now() + settings.wait_timeout;
        let mut ids = Vec::new();
        for chunk in paths.chunks(MAX_PATHS_PER_REQUEST) {
            let reference = caller_reference(&settings.reference, chunk);
            let invalidation_id =
                create_with_retry(cdn, id, chunk, &reference, deadline, pacing, sink).await?;
            sink.event(&Event::InvalidationCreated {
                distribution_id: id,
                invalidation_id: &invalidation_id,
            });
            ids.push(invalidation_id);
        }
        let mut completed = false;
        if settings.wait {
            for invalidation_id in &ids {
                wait_for(
                    cdn,
                    id,
                    invalidation_id,
                    settings.wait_timeout,
                    pacing,
                    sink,
                )
                .await?;
            }
            completed = true;
        }
        let invalidation = Invalidation {
            distribution_id: id.clone(),
            domain_name: distribution.domain_name,
            ids,
            paths,
            completed,
        };
        sink.event(&Event::Invalidated(&invalidation));
        done.push(invalidation);
    }
    Ok(done)
}

async fn create_with_retry<C: Cdn, E: Sink>(
    cdn: &C,
    id: &str,
    paths: &[String],
    reference: &str,
    deadline: Instant,
    pacing: Pacing,
    sink: &E,
) -> Result<String, CdnError> {
    let mut delay = pacing.first_retry;
    loop {
        match cdn.create_invalidation(id, paths, reference).await {
            Err(error) if error.is_busy() && Instant::now() + delay < deadline => {
                sink.event(&Event::InvalidationRetry {
                    error: &error,
                    delay,
                });
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(pacing.max_retry);
            }
            other => return other,
        }
    }
}

async fn wait_for<C: Cdn, E: Sink>(
    cdn: &C,
    id: &str,
    invalidation_id: &str,
    timeout: Duration,
    pacing: Pacing,
    sink: &E,
) -> Result<(), InvalidateError> {
    let started = Instant::now();
    loop {
        if cdn.invalidation_completed(id, invalidation_id).await? {
            sink.event(&Event::InvalidationCompleted {
                distribution_id: id,
                invalidation_id,
                waited: started.elapsed(),
            });
            return Ok(());
        }
        if started.elapsed() + pacing.poll > timeout {
            return Err(InvalidateError::Timeout {
                distribution_id: id.to_string(),
                invalidation_id: invalidation_id.to_string(),
                waited: started.elapsed().as_secs(),
            });
        }
        sink.event(&Event::InvalidationPending {
            distribution_id: id,
            invalidation_id,
            waited: started.elapsed(),
        });
        tokio::time::sleep(pacing.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::memory_cdn::{FaultyCdn, MemoryCdn};
    use crate::model::{Key, Prefix};

    /// Hears nothing: these tests look at what was asked of the CDN.
    struct Quiet;
    impl Sink for Quiet {
        fn event(&self, _: &Event<'_>) {}
    }

    fn changed<'a>(prefix: &'a Prefix, keys: &'a [Key]) -> Option<Changed<'a>> {
        Some(Changed {
            bucket: "site",
            prefix,
            keys,
        })
    }

    const FAST: Pacing = crate::run::FAST;

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

    fn keys(v: &[&str]) -> Vec<Key> {
        v.iter().map(|s| Key::new(*s)).collect()
    }

    fn paths(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn retries_while_too_many_invalidations_are_in_progress() {
        let cdn = FaultyCdn::busy(MemoryCdn::with("E1", "site", "/prod"), 3);
        let (prefix, keys) = (
            Prefix::new("prod"),
            keys(&["prod/index.html", "prod/a.css"]),
        );
        let done = invalidate(
            &cdn,
            &settings(),
            distributions(&cdn, &settings()).await.unwrap(),
            changed(&prefix, &keys),
            false,
            FAST,
            &Quiet,
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
        let (root, a) = (Prefix::default(), keys(&["a"]));
        let err = invalidate(
            &cdn,
            &s,
            distributions(&cdn, &s).await.unwrap(),
            changed(&root, &a),
            false,
            FAST,
            &Quiet,
        )
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
            invalidate(
                &cdn,
                &settings(),
                distributions(&cdn, &settings()).await.unwrap(),
                changed(&Prefix::default(), &[]),
                false,
                FAST,
                &Quiet
            )
            .await
            .unwrap()
            .is_empty()
        );
        assert!(cdn.created().is_empty());
    }

    #[tokio::test]
    async fn invalidate_only_defaults_to_everything_and_paths_override() {
        let cdn = MemoryCdn::with("E1", "site", "");
        let done = invalidate(
            &cdn,
            &settings(),
            distributions(&cdn, &settings()).await.unwrap(),
            None,
            false,
            FAST,
            &Quiet,
        )
        .await
        .unwrap();
        assert_eq!(done[0].paths, ["/*"]);
        let mut s = settings();
        s.paths = Some(paths(&["/a", "/b/*"]));
        let (root, x) = (Prefix::default(), keys(&["x"]));
        let done = invalidate(
            &cdn,
            &s,
            distributions(&cdn, &s).await.unwrap(),
            changed(&root, &x),
            false,
            FAST,
            &Quiet,
        )
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
        let err = invalidate(
            &cdn,
            &s,
            distributions(&cdn, &s).await.unwrap(),
            None,
            false,
            FAST,
            &Quiet,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("still in progress after"), "{err}");
    }

    #[tokio::test]
    async fn dry_run_reads_but_creates_nothing() {
        let cdn = MemoryCdn::with("E1", "site", "");
        let (root, a) = (Prefix::default(), keys(&["a"]));
        let done = invalidate(
            &cdn,
            &settings(),
            distributions(&cdn, &settings()).await.unwrap(),
            changed(&root, &a),
            true,
            FAST,
            &Quiet,
        )
        .await
        .unwrap();
        assert!(done.is_empty());
        assert!(cdn.created().is_empty());
    }
}
