//! A run, in order: local scan ‖ remote listing (and the manifest) →
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

pub use error::PipeError;
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

/// Whether `key` is the manifest this deploy reads and writes.
fn is_current(target: &Deploy, key: &crate::model::Key) -> bool {
    target
        .manifest
        .as_ref()
        .is_some_and(|at| at.bucket.is_none() && at.key == *key)
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
        let (local, remote) = tokio::join!(scan, store.list(&target.prefix));
        // The pipe's state objects are never site content, whichever
        // manifest is current and whether MANIFEST is on or off.
        let mut remote = remote?;
        let state = decide::take_state_objects(&mut remote, |r| &r.key);
        for former in state.iter().filter(|s| !is_current(target, &s.key)) {
            sink.event(&Event::FormerManifest { key: &former.key });
        }
        let previous = match &target.manifest {
            Some(at) => {
                let (prefix, destination) = (&target.prefix, &destination);
                manifest::load(store, at, prefix, &state, destination, sink).await?
            }
            None => None,
        };
        let trusted = previous
            .as_ref()
            .map(|p| p.trusted(&remote))
            .unwrap_or_default();
        let mut local = local.expect("scanning does not panic")?;
        for reserved in decide::take_state_objects(&mut local, |f| &f.key) {
            sink.event(&Event::ReservedName {
                relative: &reserved.relative,
            });
        }
        let (local, remote, excluded) = plan::scope(
            local,
            remote,
            &target.prefix,
            &target.filters,
            &target.rules,
        );
        Ok::<_, PipeError>((local, remote, excluded, previous, trusted))
    });
    let (local, remote, excluded, previous, trusted) = listed.await?;

    // Compressed copies live in a temporary folder until the upload is over.
    let (rules, precompressed) = (target.rules.clone(), target.precompressed);
    let prepare =
        tokio::task::spawn_blocking(move || compress::prepare(local, &rules, precompressed));
    let prepared = timed(sink, "compress", prepare)
        .await
        .expect("compression does not panic")?;
    let local = &prepared.files;
    sink.event(&Event::Scanned {
        local: local.len(),
        remote: remote.len(),
        excluded,
    });

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
    let settled = Instant::now();
    if let (Some(at), false) = (&target.manifest, target.dry_run) {
        let uploaded = decide::hashes_for_next(local, &plan);
        hashes.extend(evidence::local_etags(store, uploaded).await?);
        let salt = match &previous {
            Some(p) => p.manifest.salt().clone(),
            None => manifest::fresh_salt()?,
        };
        let next = decide::next(
            salt,
            &destination,
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
            manifest::save(store, at, &next.manifest, settled, sink).await?;
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
