//! The console: pipes-style lines, a listener of the run's events. `INFO:`
//! lines as work happens, a summary table, then one green `✔` line per
//! result on success, or one red `✖` line (with what to do about it) on
//! failure.

use std::fmt;
use std::time::Duration;

use tracing::{Level, Subscriber, debug, error, info, warn};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::plan::verify::Verification;
use crate::plan::{Plan, Write};
use crate::run::PipeError;
use crate::run::events::{Event, Outcome, Sink};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Changes what is printed once the configuration is known.
struct Logging(tracing_subscriber::reload::Handle<Targets, tracing_subscriber::Registry>);

impl Logging {
    fn quiet(&self) {
        let _ = self.0.reload(targets(Level::ERROR));
    }
}

/// Our own messages at `ours`; the SDK's from WARN at most, as its debug
/// output is request-level noise.
fn targets(ours: Level) -> Targets {
    Targets::new()
        .with_default(Level::WARN.min(ours))
        .with_target(env!("CARGO_CRATE_NAME"), ours)
}

fn init(debug: bool) -> Logging {
    use tracing_subscriber::prelude::*;
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(targets(level));
    let layer = tracing_subscriber::fmt::layer()
        .event_format(PipesFormat)
        .with_writer(std::io::stdout);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    Logging(handle)
}

/// `INFO: message`, as Atlassian's pipes print.
struct PipesFormat;

impl<S, N> FormatEvent<S, N> for PipesFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        write!(writer, "{level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Sizes as people read them: 512 B, 1.5 KB, 36.7 MB (powers of 1,000).
pub fn bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Prints a run's events as pipes do. Lines that close the run (the summary
/// and the `✔` lines) wait for [`Event::Finished`], so they come last.
pub struct Console {
    logging: Logging,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    phases: Vec<(&'static str, Duration)>,
    /// DRY_RUN: what would be rewritten is not.
    dry_run: bool,
    excluded: usize,
    /// Incomplete uploads aborted by the sweep, when it ran.
    aborted: Option<usize>,
    summary: Option<Summary>,
    results: Vec<String>,
}

/// The deploy's numbers, for the summary table.
struct Summary {
    rows: [(&'static str, usize, u64); 6],
    excluded: usize,
    aborted: Option<usize>,
    /// The grace of the oldest pending delete, and its key.
    oldest_pending: Option<String>,
}

impl Console {
    /// Our own messages at INFO, or DEBUG with `DEBUG=true`.
    pub fn init(debug: bool) -> Self {
        Console {
            logging: init(debug),
            state: std::sync::Mutex::default(),
        }
    }

    /// Only errors (`--only-show-errors`, `--quiet`); the final line is not a log line.
    pub fn quiet(&self) {
        self.logging.quiet();
    }
}

impl Sink for Console {
    fn event(&self, event: &Event<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Phase { name, took } => state.phases.push((name, *took)),
            Event::Deploying {
                local_path,
                destination,
                dry_run,
            } => {
                state.dry_run = *dry_run;
                info!("Deploying {} to {destination}", local_path.display())
            }
            Event::Scanned {
                local,
                remote,
                excluded,
                links_skipped,
            } => {
                let mut notes = Vec::new();
                if *excluded > 0 {
                    notes.push(format!("{excluded} excluded by filters"));
                }
                if *links_skipped > 0 {
                    notes.push(format!(
                        "{links_skipped} symbolic links not followed: --no-follow-symlinks"
                    ));
                }
                info!(
                    "Found {local} local files and {remote} remote objects{}",
                    if notes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", notes.join("; "))
                    }
                )
            }
            Event::Swept {
                stale,
                aborted,
                max_age,
                dry_run,
            } => {
                state.aborted = Some(*aborted);
                let age = humantime::format_duration(*max_age);
                if *dry_run && *stale > 0 {
                    info!(
                        "(dryrun) would abort {stale} incomplete multipart uploads older than {age}"
                    );
                } else if *stale > 0 {
                    info!(
                        "Aborted {aborted} of {stale} incomplete multipart uploads older than {age}"
                    );
                }
            }
            Event::SweepFailed { error } => warn!(
                "{error}: incomplete multipart uploads are not swept (grant s3:ListBucketMultipartUploads \
                 and s3:AbortMultipartUpload, or set ABORT_INCOMPLETE_UPLOADS_AFTER to 0)"
            ),
            Event::ManifestUnreadable { at } => warn!(
                "The deploy manifest {at} is unreadable: {} rewrites it",
                who_writes(state.dry_run)
            ),
            Event::ManifestInClearText { at } => warn!(
                "The deploy manifest {at} names every key in clear (version 1): \
                 {} rewrites it in the private form",
                who_writes(state.dry_run)
            ),
            Event::ManifestPutBack { at, seconds } => warn!(
                "The deploy manifest {at} was stored {seconds} s after the time it records \
                 (a copy put back, or this machine's clock is behind S3's): objects changed \
                 since that time are checked with HeadObject"
            ),
            Event::ManifestWrittenAhead { at, seconds } => warn!(
                "The deploy manifest {at} records a time {seconds} s after S3 stored it \
                 (the clock of the machine that wrote it runs ahead of S3's): it vouches for \
                 no object's headers, so unchanged objects are checked with HeadObject; \
                 keep the runners' clocks in time (NTP)"
            ),
            Event::ManifestOfAnotherDestination { at } => warn!(
                "The deploy manifest {at} was written for another destination: \
                 give each S3_BUCKET its own MANIFEST_KEY; {} replaces it",
                who_writes(state.dry_run)
            ),
            Event::FormerManifest { key } => info!(
                "{key} is a deploy manifest this deploy does not use: \
                 left as it is (the pipe never deletes one; delete it yourself if it is no longer needed)"
            ),
            Event::ReservedName { relative } => warn!(
                "{relative} is not uploaded: names ending in {} are reserved for the deploy manifest",
                crate::plan::manifest::SUFFIX
            ),
            Event::Planned {
                plan,
                destination,
                dry_run,
                excluded,
                ..
            } => {
                state.excluded = *excluded;
                planned(plan, destination);
                if *dry_run {
                    dry_run_lines(plan);
                }
            }
            Event::Written {
                planned,
                write: Write::Put,
                took,
                ..
            } => info!(
                "upload: {} ({}; {} in {})",
                planned.upload.key,
                planned.reason,
                bytes(planned.upload.size),
                seconds(*took)
            ),
            Event::Written {
                planned,
                write: Write::Copy,
                took,
                ..
            } => info!(
                "update headers: {} ({}: fixed in place; in {})",
                planned.upload.key,
                planned.reason,
                seconds(*took)
            ),
            Event::WriteFailed { error, .. } => error!("{error}"),
            Event::Progress {
                files,
                total_files,
                bytes: done,
                total_bytes,
            } => info!(
                "progress: {files}/{total_files} files, {}/{}",
                bytes(*done),
                bytes(*total_bytes)
            ),
            Event::Deleted { key } => info!("delete: {key} (not in the local folder)"),
            Event::DeleteFailed { failure } => error!(
                "delete: {} failed: {}: {}",
                failure.key, failure.code, failure.message
            ),
            Event::ManifestWritten { at, entries } => {
                info!("Deploy manifest written to {at}: {entries} entries")
            }
            Event::Deployed {
                plan,
                done,
                dry_run,
                took,
            } => {
                let line = deployed_line(plan, done, *dry_run, *took);
                state.results.push(line);
                state.summary = Some(summary_of(plan, done, state.excluded, state.aborted));
            }
            Event::NothingToInvalidate => {
                info!(
                    "No cached object changed (new keys are in no cache): no CloudFront invalidation is needed"
                )
            }
            Event::Invalidating {
                distribution_id,
                domain_name,
                paths,
                warnings,
                dry_run,
            } => {
                for w in *warnings {
                    warn!("{w}");
                }
                info!(
                    "Invalidating {} path(s) on {distribution_id} ({domain_name}){}",
                    paths.len(),
                    if paths.len() <= 5 {
                        format!(": {}", paths.join(" "))
                    } else {
                        String::new()
                    }
                );
                for p in *paths {
                    debug!("invalidate: {p}");
                }
                if *dry_run {
                    info!("(dryrun) no invalidation created on {distribution_id}");
                }
            }
            Event::InvalidationRetry { error, delay } => {
                warn!("{error}; retrying in {} s", delay.as_secs_f32())
            }
            Event::InvalidationCreated {
                distribution_id,
                invalidation_id,
            } => info!("Created invalidation {invalidation_id} on {distribution_id}"),
            Event::InvalidationPending {
                distribution_id,
                invalidation_id,
                waited,
            } => info!(
                "Invalidation {invalidation_id} on {distribution_id} in progress ({:.0} s)",
                waited.as_secs_f32()
            ),
            Event::InvalidationCompleted {
                distribution_id,
                invalidation_id,
                waited,
            } => info!(
                "Invalidation {invalidation_id} on {distribution_id} completed in {:.0} s",
                waited.as_secs_f32()
            ),
            Event::Invalidated(inv) => {
                for id in &inv.ids {
                    state.results.push(format!(
                        "Successfully created a cloudfront invalidation: {id}"
                    ));
                }
                if inv.completed {
                    state.results.push(format!(
                        "Invalidation completed on {} ({})",
                        inv.distribution_id, inv.domain_name
                    ));
                }
            }
            Event::NothingToVerify => info!("(dryrun) nothing deployed: nothing to verify"),
            Event::Verifying {
                url,
                checks,
                candidates,
                sampled,
            } => {
                if *sampled {
                    info!(
                        "Verifying {checks} paths through {url}: every entry document and a fixed \
                         sample of the others, of {candidates} changed"
                    )
                } else if *checks > 0 {
                    info!("Verifying {checks} paths through {url}")
                }
            }
            Event::Rechecking {
                url,
                problems,
                delay,
            } => debug!(
                "verify: {url} may be stale ({}): asking again in {}",
                problems
                    .iter()
                    .map(|p| p.kind())
                    .collect::<Vec<_>>()
                    .join(", "),
                seconds(*delay)
            ),
            Event::Verified(verification) => {
                let took = state
                    .phases
                    .iter()
                    .rev()
                    .find(|(name, _)| *name == "verify")
                    .map(|(_, took)| *took);
                if let Some(line) = verified(verification, took) {
                    state.results.push(line);
                }
            }
            Event::Finished(Ok(())) => {
                if let Some(summary) = &state.summary {
                    print_summary(summary, &state.phases);
                }
                for line in &state.results {
                    println!("{GREEN}✔ {line}{RESET}");
                }
            }
            Event::Finished(Err(error)) => failure(error),
        }
    }
}

fn planned(plan: &Plan, destination: &str) {
    for (key, reason) in &plan.skips {
        debug!("skip: {key} ({reason})");
    }
    for key in &plan.kept {
        debug!("keep: {key} (not in the local folder; set DELETE_FLAG to delete it)");
    }
    for p in &plan.pending {
        info!("keep: {} (no local file; {})", p.key, p.expiry);
    }
    info!(
        "Plan for {destination}: {} to upload ({}), {} headers to fix in place, {} unchanged, {} to delete{}",
        plan.uploads.len(),
        bytes(plan.upload_bytes()),
        plan.copies.len(),
        plan.skips.len(),
        plan.deletes.len(),
        pending(plan)
    );
    if !plan.kept.is_empty() {
        info!(
            "{} remote objects are not in the local folder and are kept (DELETE_FLAG is off)",
            plan.kept.len()
        );
    }
}

/// What a real run would do, as aws-cli's `--dryrun` prints it.
fn dry_run_lines(plan: &Plan) {
    for u in &plan.uploads {
        info!(
            "(dryrun) upload: {} ({}; {})",
            u.upload.key,
            u.reason,
            bytes(u.upload.size)
        );
    }
    for c in &plan.copies {
        info!("(dryrun) update headers: {} ({})", c.upload.key, c.reason);
    }
    for d in &plan.deletes {
        info!("(dryrun) delete: {} (not in the local folder)", d.key);
    }
}

/// Who writes over a manifest found wanting: this deploy, unless it is a dry run.
fn who_writes(dry_run: bool) -> &'static str {
    if dry_run {
        "a deploy without DRY_RUN"
    } else {
        "this deploy"
    }
}

/// `, 2 pending delete`: keys kept for their DELETE_GRACE, when any.
fn pending(plan: &Plan) -> String {
    match plan.pending.len() {
        0 => String::new(),
        n => format!(", {n} pending delete"),
    }
}

fn deployed_line(plan: &Plan, done: &Outcome, dry_run: bool, took: Duration) -> String {
    if dry_run {
        return format!(
            "Dry run: {} to upload ({}), {}{} unchanged, {} to delete{}; nothing was changed",
            plan.uploads.len(),
            bytes(plan.upload_bytes()),
            match plan.copies.len() {
                0 => String::new(),
                n => format!("{n} headers to fix in place, "),
            },
            plan.skips.len(),
            plan.deletes.len(),
            pending(plan)
        );
    }
    format!(
        "Deployment successful: {} uploaded ({}), {}{} unchanged, {} deleted{} in {}",
        done.uploaded,
        bytes(done.uploaded_bytes),
        if done.copied > 0 {
            format!("{} headers updated, ", done.copied)
        } else {
            String::new()
        },
        plan.skips.len(),
        done.deleted,
        pending(plan),
        seconds(took)
    )
}

fn summary_of(plan: &Plan, done: &Outcome, excluded: usize, aborted: Option<usize>) -> Summary {
    let copied_bytes = plan.copies.iter().map(|c| c.upload.size).sum();
    let deleted_bytes = plan.deletes.iter().map(|d| d.size).sum();
    let pending_bytes = plan.pending.iter().map(|p| p.size).sum();
    // Marked first, then counted by the most deploys: the grace that began first.
    let oldest_pending = plan
        .pending
        .iter()
        .min_by_key(|p| (p.mark.since, std::cmp::Reverse(p.mark.deploys)))
        .map(|p| format!("{} ({})", p.expiry, p.key));
    Summary {
        rows: [
            ("uploaded", done.uploaded, done.uploaded_bytes),
            ("headers", done.copied, copied_bytes),
            ("unchanged", plan.skips.len(), 0),
            ("deleted", done.deleted, deleted_bytes),
            ("kept", plan.kept.len(), 0),
            ("pending delete", plan.pending.len(), pending_bytes),
        ],
        excluded,
        aborted,
        oldest_pending,
    }
}

/// The compact table printed at the end of a deploy.
fn print_summary(summary: &Summary, phases: &[(&'static str, Duration)]) {
    info!("Summary:");
    info!("  {:<14} {:>8} {:>12}", "action", "objects", "bytes");
    for (label, count, size) in &summary.rows {
        info!("  {label:<14} {count:>8} {:>12}", bytes(*size));
    }
    if summary.excluded > 0 {
        info!("  {:<14} {:>8}", "excluded", summary.excluded);
    }
    if let Some(oldest) = &summary.oldest_pending {
        info!("  oldest pending delete: {oldest}");
    }
    if let Some(aborted) = summary.aborted {
        info!("  incomplete multipart uploads aborted: {aborted}");
    }
    if let Some((phase, took)) = phases.iter().max_by_key(|(_, took)| *took) {
        info!("  slowest phase: {phase} ({:.1} s)", took.as_secs_f64());
    }
}

/// Prints one line per mismatch and the summary; returns the result line
/// of a verification that found none.
fn verified(v: &Verification, took: Option<Duration>) -> Option<String> {
    if v.verdicts.is_empty() {
        info!("Nothing changed: nothing to verify");
        return None;
    }
    for verdict in &v.verdicts {
        let mut cache = Vec::new();
        if let Some(x_cache) = &verdict.x_cache {
            cache.push(format!("X-Cache: {x_cache}"));
        }
        if let Some(age) = &verdict.age {
            cache.push(format!("Age: {age}"));
        }
        let cache = if cache.is_empty() {
            String::new()
        } else {
            format!(" [{}]", cache.join("; "))
        };
        for problem in &verdict.problems {
            error!(
                "verify: {} ({}): {problem}{cache}",
                verdict.url,
                verdict.check.action.as_str()
            );
        }
    }
    let checked = v.verdicts.len();
    let failed = v.failed();
    let kinds: Vec<String> = v
        .kinds()
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    info!(
        "Verified {checked} paths through {} in {}: {} as deployed, {failed} not{}; {} requests",
        v.url,
        took.map_or_else(|| "-".into(), seconds),
        checked - failed,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        v.requests()
    );
    let gone: Vec<String> = v.gone_statuses().iter().map(u16::to_string).collect();
    if !gone.is_empty() {
        info!(
            "Deleted paths answer {}: the origin's answer for a missing key{}",
            gone.join(" or "),
            if v.gone_statuses().contains(&403) {
                " (S3 answers 403 to whoever may not list the bucket, as CloudFront with \
                 origin access control)"
            } else {
                ""
            }
        );
    }
    (failed == 0).then(|| {
        format!(
            "Verified {checked} paths through {}: every one served as deployed",
            v.url
        )
    })
}

fn failure(error: &PipeError) {
    println!("{RED}✖ {error}{RESET}");
    for line in error.details() {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1500), "1.5 KB");
        assert_eq!(bytes(36_700_000), "36.7 MB");
    }
}
