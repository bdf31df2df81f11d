//! A run, in order: local scan ‖ remote listing (and the manifest, and the
//! sweep of stale multipart uploads) → precompressed siblings → scope (any
//! scan problem stops the run here) → compression → evidence (hashes,
//! heads) → the plan → the delete guard → execution in steps → the next
//! manifest → invalidation → verification through the site (VERIFY).
//! Generic over the store, the CDN, the site and the sink, so a whole run
//! can be tested in memory; a stop request ends it early with nothing
//! half-done.

pub mod compress;
pub mod error;
pub mod events;
pub mod evidence;
pub mod execute;
pub mod invalidate;
pub mod manifest;
pub mod pacing;
pub mod verify;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, Deploy};
use crate::edge::cdn::{Cdn, Distribution};
use crate::edge::scan;
use crate::edge::site::Site;
use crate::edge::store::{Fetched, ObjectStore};
use crate::etag::{self, HashNeed, Hashed};
use crate::model::{
    ByKey, HeadersDigest, IncompleteUpload, LocalFile, Location, Prefix, RemoteObject, Trusted,
};
use crate::plan::grace::{Judge, Mark};
use crate::plan::invalidation::Changed;
use crate::plan::manifest::{Manifest, Previous};
use crate::plan::{self, Plan, PlanInput, guard, manifest as decide, uploads};
use crate::stop::Stop;

pub use error::{PipeError, ScanErrors};
use error::{Stopped, VerifyError};
use events::{Event, Outcome, Sink, timed};
#[cfg(test)]
pub use pacing::FAST;
pub use pacing::{PACING, Pacing};

/// Deploys (unless only invalidating), then invalidates (when a
/// distribution is set), then verifies through the site (VERIFY). Every
/// step is told to `sink`; the caller tells it [`Event::Finished`].
pub async fn run<S: ObjectStore, C: Cdn, W: Site, E: Sink>(
    config: &Config,
    store: &S,
    cdn: &C,
    site: &W,
    pacing: Pacing,
    stop: &Stop,
    sink: &E,
) -> Result<(), PipeError> {
    let invalidate_error = |source| PipeError::Invalidate {
        deployed: false,
        source,
    };
    let distributions = match &config.cdn {
        Some(settings) => {
            let found = invalidate::distributions(cdn, settings);
            unless_stopped(stop, async { found.await.map_err(invalidate_error) }).await?
        }
        None => Vec::new(),
    };
    // Where to verify, settled before any write, like the distributions.
    let verify_at = match (&config.verify, &config.deploy) {
        (Some(v), Some(target)) => {
            let url = verify_url(v, target, cdn, &distributions);
            Some((v, unless_stopped(stop, url).await?))
        }
        _ => None,
    };
    let mut progress = None;
    let mut pending = None;
    if let Some(target) = &config.deploy {
        let (plan, done, manifest) = deploy(target, store, stop, sink).await?;
        progress = Some((plan, done));
        pending = manifest;
    }
    let stopped = |signal| {
        PipeError::Stopped(Stopped {
            signal,
            uploads: progress.as_ref().map(|(plan, done): &(Plan, Outcome)| {
                (
                    done.uploaded + done.copied,
                    plan.uploads.len() + plan.copies.len(),
                )
            }),
            deleted: progress.as_ref().map_or(0, |(_, done)| done.deleted),
            deletes_in_doubt: 0,
        })
    };
    // The manifest waits for the clock to pass the deploy's last write;
    // the invalidation goes on meanwhile.
    let save = async {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        let save = manifest::save(store, &p.at, p.manifest, &p.settled, sink);
        // A stop while the manifest waits for the clock: the deploy is done,
        // the next run pays HeadObject calls for what this one wrote.
        tokio::select! {
            biased;
            signal = stop.wait() => Err(stopped(signal)),
            saved = save => Ok(saved?),
        }
    };
    let invalidate = async {
        let Some(settings) = &config.cdn else {
            return Ok(());
        };
        if let Some(signal) = stop.requested() {
            return Err(stopped(signal));
        }
        let keys = progress
            .as_ref()
            .map(|(plan, _)| plan.changed_keys())
            .unwrap_or_default();
        let changed = config.deploy.as_ref().map(|d| Changed {
            bucket: &d.bucket,
            prefix: &d.prefix,
            keys: &keys,
        });
        let dry_run = config.deploy.as_ref().is_some_and(|d| d.dry_run);
        let work =
            invalidate::invalidate(cdn, settings, distributions, changed, dry_run, pacing, sink);
        // A CreateInvalidation cut short is retried by the next deploy's.
        tokio::select! {
            biased;
            signal = stop.wait() => Err(stopped(signal)),
            invalidated = timed(sink, "invalidate", work) => invalidated.map(|_| ()).map_err(|source| {
                PipeError::Invalidate {
                    deployed: config.deploy.is_some(),
                    source,
                }
            }),
        }
    };
    let (saved, invalidated) = tokio::join!(save, invalidate);
    invalidated?;
    saved?;
    let (Some((v, url)), Some(target), Some((plan, done))) = (verify_at, &config.deploy, &progress)
    else {
        return Ok(());
    };
    if target.dry_run {
        sink.event(&Event::NothingToVerify);
        return Ok(());
    }
    let selection = plan::verify::select(
        &plan::verify::Deployed {
            plan,
            etags: &done.etags,
            prefix: &target.prefix,
            entry_documents: &v.entry_documents,
            index_document: v.index_document.as_deref(),
        },
        plan::verify::MAX_CHECKS,
    );
    let limits = verify::Limits {
        concurrency: v.concurrency,
        timeout: v.timeout,
        request: config.network.read_timeout,
    };
    let work = verify::verify(site, &url, selection, limits, pacing, sink);
    let verification = tokio::select! {
        biased;
        signal = stop.wait() => return Err(stopped(signal)),
        verification = timed(sink, "verify", work) => verification,
    };
    sink.event(&Event::Verified(&verification));
    match verification.failed() {
        0 => Ok(()),
        failed => Err(VerifyError::Mismatches {
            failed,
            checked: verification.verdicts.len(),
            kinds: verification.kinds().into_iter().map(|(k, _)| k).collect(),
        }
        .into()),
    }
}

/// VERIFY_URL, or where the first distribution serves the deploy's prefix.
async fn verify_url<C: Cdn>(
    v: &crate::config::Verify,
    target: &Deploy,
    cdn: &C,
    found: &[(String, Distribution)],
) -> Result<String, PipeError> {
    if let Some(url) = &v.url {
        return Ok(url.clone());
    }
    // Validation asks for VERIFY_URL when there is no distribution.
    let id = v.distribution_id.as_deref().unwrap_or_default();
    let distribution = match found.iter().find(|(i, _)| i == id) {
        Some((_, d)) => d.clone(),
        // INVALIDATE is off: looked up for its domain alone.
        None => cdn
            .distribution(id)
            .await
            .map_err(VerifyError::Distribution)?,
    };
    let d = &distribution;
    plan::verify::distribution_url(&target.bucket, &target.prefix, &d.domain_name, &d.origins)
        .map_err(|why| VerifyError::Target(why).into())
}

/// The manifest a deploy writes once its writes have settled.
pub struct PendingManifest {
    at: Location,
    manifest: Manifest,
    settled: manifest::Settled,
}

/// `work`, unless a stop comes first: for what writes nothing, so that
/// dropping it is safe.
pub async fn unless_stopped<T>(
    stop: &Stop,
    work: impl Future<Output = Result<T, PipeError>>,
) -> Result<T, PipeError> {
    tokio::select! {
        biased;
        signal = stop.wait() => Err(PipeError::Stopped(Stopped {
            signal,
            uploads: None,
            deleted: 0,
            deletes_in_doubt: 0,
        })),
        done = work => done,
    }
}

/// Whether `key` is the manifest this deploy reads and writes.
fn is_current(target: &Deploy, key: &crate::model::Key) -> bool {
    target
        .manifest
        .as_ref()
        .is_some_and(|at| at.bucket.is_none() && at.key == *key)
}

/// One deploy of a folder; returns its plan, what was done, and the
/// manifest to write (when it changed).
pub async fn deploy<S: ObjectStore, E: Sink>(
    target: &Deploy,
    store: &S,
    stop: &Stop,
    sink: &E,
) -> Result<(Plan, Outcome, Option<PendingManifest>), PipeError> {
    let started = Instant::now();
    let destination = target.destination();
    sink.event(&Event::Deploying {
        local_path: &target.local_path,
        destination: &destination,
        dry_run: target.dry_run,
    });
    // Nothing before the plan writes anything: a stop simply drops it.
    let ready = unless_stopped(stop, prepare(target, store, &destination, sink)).await?;
    let Ready {
        prepared,
        remote,
        stale,
        previous,
        trusted,
        marks,
        mut hashes,
        mut as_uploaded,
        heads,
        plan,
        excluded,
    } = ready;
    let local = &prepared.files;
    guard::check(
        &plan,
        remote.len(),
        local.len(),
        &target.prefix,
        target.delete_limits,
    )?;
    // Only once the deploy is sure to go ahead: the plan and the guard
    // passed, and nothing before them writes.
    if let Some(max_age) = target.abort_incomplete_after {
        abort_stale(store, stale, max_age, target.dry_run, sink).await;
    }

    let mut done = if target.dry_run {
        Outcome::default()
    } else {
        let limits = execute::Limits {
            concurrency: target.concurrency,
            progress: target.progress.then_some(execute::PROGRESS_EVERY),
            stop,
        };
        execute::execute(store, &plan, limits, sink).await?
    };
    let mut pending = None;
    if let (Some(at), false) = (&target.manifest, target.dry_run) {
        let uploaded = decide::hashes_for_next(local, &plan);
        complete_hashes(store, uploaded, &mut as_uploaded, &mut hashes).await?;
        // The uploads are over and the hashes taken: the files (and their
        // compressed copies) go before the next manifest, a copy of every
        // entry, is built.
        drop((prepared, as_uploaded));
        let salt = match &previous {
            Some(p) => p.manifest.salt().clone(),
            None => manifest::fresh_salt()?,
        };
        let next = decide::next_if_needed(
            salt,
            &destination,
            previous.as_ref(),
            &plan,
            decide::Evidence {
                trusted,
                remote: &remote,
                hashes: &hashes,
                remote_headers: &heads,
                written: &done.etags,
                marks: &marks,
            },
        );
        pending = next.map(|next| {
            let entries = next.manifest.len();
            PendingManifest {
                at: at.clone(),
                manifest: next.manifest,
                settled: manifest::Settled {
                    writes: std::mem::take(&mut done.last_writes),
                    head_budget: manifest::head_budget(target.concurrency, excluded, entries),
                },
            }
        });
    }
    sink.event(&Event::Deployed {
        plan: &plan,
        done: &done,
        dry_run: target.dry_run,
        took: started.elapsed(),
    });
    Ok((plan, done, pending))
}

/// Everything a deploy learns before its first write.
struct Ready {
    /// Holds the compressed copies until the upload is over.
    prepared: compress::Prepared,
    remote: Vec<RemoteObject>,
    /// Incomplete multipart uploads old enough to abort.
    stale: Vec<IncompleteUpload>,
    previous: Option<Previous>,
    trusted: ByKey<Trusted>,
    /// DELETE_GRACE marks of the whole listing.
    marks: ByKey<Mark>,
    hashes: ByKey<Hashed>,
    /// The files hashed the way this pipe uploads them (none with
    /// SIZE_ONLY) that `hashes` did not take: what the next manifest
    /// records of an upload.
    as_uploaded: ByKey<Hashed>,
    heads: ByKey<HeadersDigest>,
    plan: Plan,
    /// Files and objects the filters and `ignore` rules left out.
    excluded: usize,
}

/// The local side of a deploy, made ready while the bucket is listed.
struct Local {
    /// The files in scope, compressed where the rules say so.
    prepared: compress::Prepared,
    links_skipped: usize,
    excluded: usize,
    /// Every file hashed as this pipe uploads it (see [`local_side`]).
    hashes: ByKey<Hashed>,
}

/// Scan, scope, compression and hashing, none of which needs the listing:
/// they run while S3 answers it. Every file is hashed the way this pipe
/// uploads it (the MD5, or the ETag of our part size) because nearly every
/// deploy needs that hash: to compare a file of the listed size, or, for a
/// file it uploads, for the next manifest. Only SIZE_ONLY skips it.
async fn local_side<S: ObjectStore, E: Sink>(
    target: &Deploy,
    store: &S,
    sink: &E,
) -> Result<Local, PipeError> {
    let (root, prefix, follow) = (
        target.local_path.clone(),
        target.prefix.clone(),
        target.follow_symlinks,
    );
    let scan = tokio::task::spawn_blocking(move || scan::scan(&root, &prefix, follow));
    let scanned = scan.await.expect("scanning does not panic");
    let mut local = scanned.files;
    for reserved in decide::take_state_objects(&mut local, |f| &f.key) {
        sink.event(&Event::ReservedName {
            relative: reserved.relative(),
        });
    }
    if target.precompressed {
        local = plan::precompressed::serve_siblings(local);
    }
    let (files, problems, excluded) =
        plan::scope_local(local, scanned.problems, &target.filters, &target.rules);
    // Every problem at once, before any write.
    if !problems.is_empty() {
        return Err(PipeError::Scan(ScanErrors(problems)));
    }
    let rules = target.rules.clone();
    let prepare = tokio::task::spawn_blocking(move || compress::prepare(files, &rules));
    let prepared = timed(sink, "compress", prepare)
        .await
        .expect("compression does not panic")?;
    let mut hashes = ByKey::default();
    if !target.size_only {
        let files = &prepared.files;
        let all = files
            .iter()
            .map(|f| (f, etag::as_uploaded(f.size)))
            .collect();
        hashes = timed(sink, "hash", evidence::local_etags(store, all)).await?;
    }
    Ok(Local {
        prepared,
        links_skipped: scanned.links_skipped,
        excluded,
        hashes,
    })
}

/// The listing's side: every object listed but the state objects, and
/// the manifest, read alongside the listing rather than after it.
struct Remote {
    remote: Vec<RemoteObject>,
    stale: Vec<IncompleteUpload>,
    /// The manifest's object, read once the listing's keys are shared
    /// (see [`prepare`]).
    manifest: Option<Fetched>,
}

async fn remote_side<S: ObjectStore, E: Sink>(
    target: &Deploy,
    store: &S,
    sink: &E,
) -> Result<Remote, PipeError> {
    let stale = find_stale(store, &target.prefix, target.abort_incomplete_after, sink);
    let fetch = async {
        match &target.manifest {
            Some(at) => Some(store.get(at, manifest::FIRST_BYTES).await),
            None => None,
        }
    };
    let (remote, stale, fetched) = tokio::join!(store.list(&target.prefix), stale, fetch);
    // The pipe's state objects are never site content, whichever
    // manifest is current and whether MANIFEST is on or off.
    let mut remote = remote?;
    let state = decide::take_state_objects(&mut remote, |r| &r.key);
    for former in state.iter().filter(|s| !is_current(target, &s.key)) {
        sink.event(&Event::FormerManifest { key: &former.key });
    }
    let manifest = match (&target.manifest, fetched) {
        (Some(at), Some(fetched)) => manifest::found(fetched, at, &target.prefix, &state)?,
        _ => None,
    };
    Ok(Remote {
        remote,
        stale,
        manifest,
    })
}

/// Adds to `hashes` what `needs` asks for and it lacks: moved from
/// `ready` when hashed the same way (one copy of each hash in memory),
/// computed otherwise (an object another tool uploaded in other parts).
async fn complete_hashes<S: ObjectStore>(
    store: &S,
    mut needs: Vec<(&LocalFile, HashNeed)>,
    ready: &mut ByKey<Hashed>,
    hashes: &mut ByKey<Hashed>,
) -> Result<(), evidence::CompareError> {
    needs.retain(|(file, need)| !hashes.get(&file.key).is_some_and(|h| h.answers(*need)));
    let (moved, missing) = evidence::take_ready(needs, ready);
    hashes.merge(moved);
    hashes.merge(evidence::local_etags(store, missing).await?);
    Ok(())
}

async fn prepare<S: ObjectStore, E: Sink>(
    target: &Deploy,
    store: &S,
    destination: &str,
    sink: &E,
) -> Result<Ready, PipeError> {
    let both = async {
        let local = local_side(target, store, sink);
        let remote = remote_side(target, store, sink);
        let (local, remote) = tokio::join!(local, remote);
        // S3's refusal first: it may be why the rest is moot.
        let remote = remote?;
        Ok::<_, PipeError>((local?, remote))
    };
    let (local, remote_side) = timed(sink, "scan and list", both).await?;
    let Remote {
        mut remote,
        stale,
        manifest,
    } = remote_side;
    let Local {
        prepared,
        links_skipped,
        excluded: local_excluded,
        hashes: mut as_uploaded,
    } = local;
    let local = &prepared.files;
    // One copy of each key: the listing's are let go, and the evidence
    // below holds the files' keys.
    plan::share_keys(local, &mut remote);
    crate::edge::allocator::give_back();
    // Read after the listing's keys are let go, not beside them: its JSON
    // and entries are the largest things a deploy holds.
    let mut previous = match (&target.manifest, manifest) {
        (Some(at), Some(fetched)) => {
            manifest::read(store, fetched, at, destination, remote.len(), sink).await?
        }
        _ => None,
    };
    // Trust and marks are read over the whole listing: the next manifest
    // keeps the entries of keys the filters leave out.
    let trusted = previous
        .as_mut()
        .map(|p| p.take_trusted(&remote))
        .unwrap_or_default();
    let marks = previous
        .as_ref()
        .map(|p| p.marks(&remote))
        .unwrap_or_default();
    // The listed keys' digests, just let go, came from the heap the
    // listing's keys left: freed, they stay resident until handed back.
    crate::edge::allocator::give_back();
    let (remote, remote_excluded) =
        plan::scope_remote(remote, &target.prefix, &target.filters, &target.rules);
    let excluded = local_excluded + remote_excluded;
    sink.event(&Event::Scanned {
        local: local.len(),
        remote: remote.len(),
        excluded,
        links_skipped,
    });

    let needs = plan::hashes_needed(local, &remote, target.size_only, &trusted);
    let mut hashes = ByKey::default();
    complete_hashes(store, needs, &mut as_uploaded, &mut hashes).await?;
    crate::edge::allocator::give_back();
    let no_heads = ByKey::default();
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
        // The marks live in the manifest: validation refuses a grace
        // without one.
        grace: (!target.grace.is_zero()).then_some(Judge {
            grace: target.grace,
            now: target.now.unwrap_or_else(unix_now),
            marks: &marks,
        }),
    };
    // Headers of unchanged objects the manifest cannot vouch for.
    let heads = plan::heads_needed(&input);
    let heads = evidence::remote_headers(store, heads, target.concurrency).await?;
    input.remote_headers = &heads;
    let plan = plan::plan(&input);
    sink.event(&Event::Planned {
        plan: &plan,
        remote: &remote,
        destination,
        excluded,
        dry_run: target.dry_run,
    });
    Ok(Ready {
        prepared,
        remote,
        stale,
        previous,
        trusted,
        marks,
        hashes,
        as_uploaded,
        heads,
        plan,
        excluded,
    })
}

/// The incomplete multipart uploads under the prefix older than `max_age`
/// (`None`: no sweep). The sweep cleans up after others, so it never fails
/// the deploy: a refusal (a role without s3:ListBucketMultipartUploads) is
/// a warning.
async fn find_stale<S: ObjectStore, E: Sink>(
    store: &S,
    prefix: &Prefix,
    max_age: Option<Duration>,
    sink: &E,
) -> Vec<IncompleteUpload> {
    let Some(max_age) = max_age else {
        return Vec::new();
    };
    let found = match store.incomplete_uploads(prefix).await {
        Ok(found) => found,
        Err(error) => {
            sink.event(&Event::SweepFailed { error: &error });
            return Vec::new();
        }
    };
    // The system's clock, not the deploy's: S3_CLOUDFRONT_DEPLOY_NOW set
    // ahead must not abort the uploads of a deploy running now.
    uploads::stale(&found, unix_now(), max_age)
        .into_iter()
        .cloned()
        .collect()
}

/// Aborts the stale uploads (in a dry run, only counts them).
async fn abort_stale<S: ObjectStore, E: Sink>(
    store: &S,
    stale: Vec<IncompleteUpload>,
    max_age: Duration,
    dry_run: bool,
    sink: &E,
) {
    let mut aborted = 0;
    if !dry_run {
        for upload in &stale {
            match store.abort_upload(upload).await {
                Ok(()) => aborted += 1,
                Err(error) => sink.event(&Event::SweepFailed { error: &error }),
            }
        }
    }
    sink.event(&Event::Swept {
        stale: stale.len(),
        aborted,
        max_age,
        dry_run,
    });
}

/// The system's clock, in seconds since the Unix epoch (0 before it).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
