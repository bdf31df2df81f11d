//! The last stage and the voice of every other: pipes-style output. `INFO:`
//! lines as work happens, one green `✔` line on success, one red `✖` line
//! (with what to do about it) on failure.

use std::fmt;
use std::time::Duration;

use tracing::{Event, Level, Subscriber, debug, error, info};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::error::PipeError;
use crate::plan::{Plan, PlannedUpload};
use crate::remote::StoreError;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Changes what is printed once the configuration is known.
pub struct Logging(tracing_subscriber::reload::Handle<Targets, tracing_subscriber::Registry>);

impl Logging {
    /// Only errors (`--only-show-errors`, `--quiet`); the final line is not a log line.
    pub fn quiet(&self) {
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

/// Our own messages at INFO, or DEBUG with `DEBUG=true`.
pub fn init(debug: bool) -> Logging {
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
        event: &Event<'_>,
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

pub fn plan(plan: &Plan, destination: &str) {
    for (key, reason) in &plan.skips {
        debug!("skip: {key} ({reason})");
    }
    for key in &plan.kept {
        debug!("keep: {key} (not in the local folder; set DELETE_FLAG to delete it)");
    }
    info!(
        "Plan for {destination}: {} to upload ({}), {} headers to fix in place, {} unchanged, {} to delete",
        plan.uploads.len(),
        bytes(plan.upload_bytes()),
        plan.copies.len(),
        plan.skips.len(),
        plan.deletes.len()
    );
    if !plan.kept.is_empty() {
        info!(
            "{} remote objects are not in the local folder and are kept (DELETE_FLAG is off)",
            plan.kept.len()
        );
    }
}

pub fn uploaded(planned: &PlannedUpload, took: Duration) {
    info!(
        "upload: {} ({}; {} in {})",
        planned.upload.key,
        planned.reason,
        bytes(planned.upload.size),
        seconds(took)
    );
}

pub fn copied(planned: &PlannedUpload, took: Duration) {
    info!(
        "update headers: {} ({}: fixed in place; in {})",
        planned.upload.key,
        planned.reason,
        seconds(took)
    );
}

pub fn upload_failed(e: &StoreError) {
    error!("{e}");
}

/// What a real run would do, as aws-cli's `--dryrun` prints it.
pub fn dry_run(plan: &Plan) {
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

pub fn progress(files: usize, total_files: usize, bytes_done: u64, total_bytes: u64) {
    info!(
        "progress: {files}/{total_files} files, {}/{}",
        bytes(bytes_done),
        bytes(total_bytes)
    );
}

pub fn deleted(key: &str) {
    info!("delete: {key} (not in the local folder)");
}

pub fn success(message: &str) {
    println!("{GREEN}✔ {message}{RESET}");
}

pub fn failure(error: &PipeError) {
    println!("{RED}✖ {error}{RESET}");
    for line in error.details() {
        println!("  {line}");
    }
}

/// The machine-readable record of a run, written as JSON to REPORT_FILE or
/// to Bitbucket's shared pipe storage; its schema is `report.schema.json`.
#[derive(Debug, Default, serde::Serialize)]
pub struct Record {
    pub version: &'static str,
    pub success: bool,
    pub error: Option<String>,
    pub dry_run: bool,
    pub destination: Option<String>,
    /// Seconds per phase, in the order they ran.
    pub timings: Vec<Timing>,
    pub totals: Totals,
    pub objects: Vec<ObjectRecord>,
    pub invalidations: Vec<InvalidationRecord>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub phase: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Totals {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub headers_updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub kept: usize,
    pub excluded: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct ObjectRecord {
    pub key: String,
    /// `upload`, `update headers`, `skip`, `delete` or `keep`.
    pub action: &'static str,
    pub reason: String,
    pub size: u64,
    pub etag: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct InvalidationRecord {
    pub distribution_id: String,
    pub domain_name: String,
    pub ids: Vec<String>,
    pub paths: Vec<String>,
    pub completed: bool,
}

impl Record {
    pub fn new() -> Self {
        Record {
            version: crate::help::VERSION,
            ..Record::default()
        }
    }

    /// Times `phase` from `since` to now.
    pub fn timed(&mut self, phase: &'static str, since: std::time::Instant) {
        self.timings.push(Timing {
            phase,
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

/// Every key's fate, into the record.
pub fn record_plan(
    record: &mut Record,
    plan: &Plan,
    done: &crate::deploy::Outcome,
    remote: &[crate::remote::RemoteObject],
    excluded: usize,
) {
    let remote: std::collections::HashMap<&str, &crate::remote::RemoteObject> =
        remote.iter().map(|r| (r.key.as_str(), r)).collect();
    let object = |key: &str, action, reason: String, size, etag: Option<&String>| ObjectRecord {
        key: key.to_string(),
        action,
        reason,
        size,
        etag: etag.cloned(),
    };
    for (action, planned) in [("upload", &plan.uploads), ("update headers", &plan.copies)] {
        for p in planned {
            let key = &p.upload.key;
            let etag = done.etags.get(key);
            record.objects.push(object(
                key,
                action,
                p.reason.to_string(),
                p.upload.size,
                etag,
            ));
        }
    }
    for (key, reason) in &plan.skips {
        let r = remote.get(key.as_str());
        record.objects.push(object(
            key,
            "skip",
            reason.to_string(),
            r.map_or(0, |r| r.size),
            r.map(|r| &r.etag),
        ));
    }
    for d in &plan.deletes {
        let r = remote.get(d.key.as_str());
        record.objects.push(object(
            &d.key,
            "delete",
            "not in the local folder".into(),
            d.size,
            r.map(|r| &r.etag),
        ));
    }
    for key in &plan.kept {
        let r = remote.get(key.as_str());
        let reason = "not in the local folder; DELETE_FLAG is off".to_string();
        record.objects.push(object(
            key,
            "keep",
            reason,
            r.map_or(0, |r| r.size),
            r.map(|r| &r.etag),
        ));
    }
    record.totals = Totals {
        uploaded: done.uploaded,
        uploaded_bytes: done.uploaded_bytes,
        headers_updated: done.copied,
        unchanged: plan.skips.len(),
        deleted: done.deleted,
        kept: plan.kept.len(),
        excluded,
    };
}

/// The compact table printed at the end of a run.
pub fn summary(record: &Record) {
    let t = &record.totals;
    let bytes_of = |action: &str| -> u64 {
        record
            .objects
            .iter()
            .filter(|o| o.action == action)
            .map(|o| o.size)
            .sum()
    };
    info!("Summary:");
    info!("  {:<10} {:>8} {:>12}", "action", "objects", "bytes");
    for (action, label, count) in [
        ("upload", "uploaded", t.uploaded),
        ("update headers", "headers", t.headers_updated),
        ("skip", "unchanged", t.unchanged),
        ("delete", "deleted", t.deleted),
        ("keep", "kept", t.kept),
    ] {
        info!("  {label:<10} {count:>8} {:>12}", bytes(bytes_of(action)));
    }
    if t.excluded > 0 {
        info!("  {:<10} {:>8}", "excluded", t.excluded);
    }
    if let Some(slowest) = record
        .timings
        .iter()
        .filter(|t| t.phase != "total")
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
    {
        info!(
            "  slowest phase: {} ({:.1} s)",
            slowest.phase, slowest.seconds
        );
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
