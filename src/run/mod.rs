//! A run, in order: local scan ‖ remote listing (and the manifest) →
//! precompressed siblings → scope (any scan problem stops the run here) →
//! compression → evidence (hashes, heads) → the plan → the delete guard →
//! execution in steps → the next manifest → invalidation. Generic over the
//! store, the CDN and the sink, so a whole run can be tested in memory.

pub mod compress;
pub mod error;
pub mod events;
pub mod evidence;
pub mod execute;
pub mod invalidate;
pub mod manifest;

use std::collections::HashMap;
use std::time::Instant;

use crate::config::{Config, Deploy};
use crate::edge::cdn::Cdn;
use crate::edge::scan;
use crate::edge::store::ObjectStore;
use crate::plan::invalidation::Changed;
use crate::plan::{self, Plan, PlanInput, guard, manifest as decide};

pub use error::{PipeError, ScanErrors};
use events::{Event, Outcome, Sink, timed};
use invalidate::Pacing;

/// Deploys (unless only invalidating), then invalidates (when a
/// distribution is set). Every step is told to `sink`; the caller tells it
/// [`Event::Finished`].
pub async fn run<S: ObjectStore, C: Cdn, E: Sink>(
    config: &Config,
    store: &S,
    cdn: &C,
    pacing: Pacing,
    sink: &E,
) -> Result<(), PipeError> {
    let mut changed = Vec::new();
    if let Some(target) = &config.deploy {
        changed = deploy(target, store, sink).await?.changed_keys();
    }
    if let Some(settings) = &config.cdn {
        let changed = config.deploy.as_ref().map(|d| Changed {
            bucket: &d.bucket,
            prefix: &d.prefix,
            keys: &changed,
        });
        let dry_run = config.deploy.as_ref().is_some_and(|d| d.dry_run);
        let work = invalidate::invalidate(cdn, settings, changed, dry_run, pacing, sink);
        timed(sink, "invalidate", work)
            .await
            .map_err(|source| PipeError::Invalidate {
                deployed: config.deploy.is_some(),
                source,
            })?;
    }
    Ok(())
}

/// One deploy of a folder; returns its plan.
pub async fn deploy<S: ObjectStore, E: Sink>(
    target: &Deploy,
    store: &S,
    sink: &E,
) -> Result<Plan, PipeError> {
    let started = Instant::now();
    let destination = target.destination();
    sink.event(&Event::Deploying {
        local_path: &target.local_path,
        destination: &destination,
        dry_run: target.dry_run,
    });

    let (root, prefix, follow) = (
        target.local_path.clone(),
        target.prefix.clone(),
        target.follow_symlinks,
    );
    let listed = timed(sink, "scan and list", async {
        let scan = tokio::task::spawn_blocking(move || scan::scan(&root, &prefix, follow));
        let (scanned, remote) = tokio::join!(scan, store.list(&target.prefix));
        let mut remote = remote?;
        let previous = match &target.manifest_key {
            Some(key) => manifest::load(store, key, &mut remote, sink).await?,
            None => None,
        };
        let scanned = scanned.expect("scanning does not panic");
        let mut local = scanned.files;
        if target.precompressed {
            local = plan::precompressed::serve_siblings(local);
        }
        let scoped = plan::scope(
            local,
            scanned.problems,
            remote,
            &target.prefix,
            &target.filters,
            &target.rules,
        );
        // Every problem at once, before any write.
        if !scoped.problems.is_empty() {
            return Err(PipeError::Scan(ScanErrors(scoped.problems)));
        }
        Ok::<_, PipeError>((scoped, scanned.links_skipped, previous))
    });
    let (scoped, links_skipped, previous) = listed.await?;
    let plan::Scoped {
        local,
        remote,
        excluded,
        ..
    } = scoped;

    // Compressed copies live in a temporary folder until the upload is over.
    let rules = target.rules.clone();
    let prepare = tokio::task::spawn_blocking(move || compress::prepare(local, &rules));
    let prepared = timed(sink, "compress", prepare)
        .await
        .expect("compression does not panic")?;
    let local = &prepared.files;
    sink.event(&Event::Scanned {
        local: local.len(),
        remote: remote.len(),
        excluded,
        links_skipped,
    });

    let trusted = previous
        .as_ref()
        .map(|m| m.trusted(&remote))
        .unwrap_or_default();
    let needs = plan::hashes_needed(local, &remote, target.size_only, &trusted);
    let mut hashes = timed(sink, "hash", evidence::local_etags(store, needs)).await?;
    let no_heads = HashMap::new();
    let mut input = PlanInput {
        local,
        remote: &remote,
        local_etags: &hashes,
        settings: &target.object,
        delete: target.delete,
        size_only: target.size_only,
        entry_documents: target.entry_documents.as_ref(),
        rules: &target.rules,
        trusted: &trusted,
        remote_headers: &no_heads,
    };
    // Headers of unchanged objects the manifest cannot vouch for.
    let heads = plan::heads_needed(&input);
    let heads = evidence::remote_headers(store, heads, target.concurrency).await?;
    input.remote_headers = &heads;
    let plan = plan::plan(&input);
    sink.event(&Event::Planned {
        plan: &plan,
        remote: &remote,
        destination: &destination,
        excluded,
        dry_run: target.dry_run,
    });
    guard::check(
        &plan,
        remote.len(),
        local.len(),
        &target.prefix,
        target.delete_limits,
    )?;

    let done = if target.dry_run {
        Outcome::default()
    } else {
        let progress = target.progress.then_some(execute::PROGRESS_EVERY);
        execute::execute(store, &plan, target.concurrency, progress, sink).await?
    };
    if let (Some(key), false) = (&target.manifest_key, target.dry_run) {
        let uploaded = decide::hashes_for_next(local, &plan);
        hashes.extend(evidence::local_etags(store, uploaded).await?);
        let next = decide::next(
            &plan,
            &decide::Evidence {
                trusted: &trusted,
                remote: &remote,
                hashes: &hashes,
                remote_headers: &heads,
                written: &done.etags,
            },
        );
        if decide::needs_write(previous.as_ref(), &next) {
            manifest::save(store, key, &next, sink).await?;
        }
    }
    sink.event(&Event::Deployed {
        plan: &plan,
        done: &done,
        dry_run: target.dry_run,
        took: started.elapsed(),
    });
    Ok(plan)
}
