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
        "Plan for {destination}: {} to upload ({}), {} unchanged, {} to delete",
        plan.uploads.len(),
        bytes(plan.upload_bytes()),
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
    for d in &plan.deletes {
        info!("(dryrun) delete: {} (not in the local folder)", d.key);
    }
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
