//! The machine-readable record of a run: a listener of its events, written
//! as JSON when the run finishes, on every path (validation errors,
//! credentials, failed uploads, refused deletes). Its schema is
//! `report.schema.json`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

#[cfg(doc)]
use crate::model::ScanCause;
use crate::model::{ETag, Key, RemoteObject};
use crate::plan::Plan;
use crate::plan::grace::PendingDelete;
use crate::plan::verify::{Problem, Verification};
use crate::run::PipeError;
use crate::run::events::{Event, Sink};

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub version: &'static str,
    pub success: bool,
    pub error: Option<String>,
    /// Every invalid variable and its problems, when validation failed.
    pub validation_errors: BTreeMap<String, Vec<String>>,
    /// Every path in LOCAL_PATH that stopped the deploy, when the scan did.
    pub scan_errors: Vec<ScanErrorRecord>,
    pub dry_run: bool,
    pub destination: Option<String>,
    /// Seconds per phase, in the order they ended.
    pub timings: Vec<Timing>,
    pub totals: Totals,
    pub objects: Vec<ObjectRecord>,
    pub invalidations: Vec<InvalidationRecord>,
    /// What VERIFY found; `None` when it did not run.
    pub verification: Option<VerificationRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanErrorRecord {
    /// Relative to LOCAL_PATH, `/`-separated.
    pub path: String,
    /// `broken symbolic link`, `symbolic link loop`, ... ([`ScanCause::kind`]).
    pub kind: &'static str,
    /// The line the console prints.
    pub message: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub phase: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub headers_updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub kept: usize,
    /// Objects with no local file kept for their DELETE_GRACE.
    pub pending_delete: usize,
    pub excluded: usize,
    /// Stale incomplete multipart uploads under the prefix, aborted.
    pub incomplete_uploads_aborted: usize,
}

/// Whether an object's action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Outcome {
    /// Done; for `skip` and `keep`, nothing was needed.
    #[serde(rename = "done")]
    Done,
    #[serde(rename = "failed")]
    Failed,
    /// A dry run, or a run that stopped before it.
    #[serde(rename = "not attempted")]
    NotAttempted,
}

#[derive(Debug, serde::Serialize)]
pub struct ObjectRecord {
    pub key: Key,
    /// `upload`, `update headers`, `skip`, `delete`, `keep` or `pending
    /// delete`.
    pub action: &'static str,
    pub reason: Cow<'static, str>,
    /// Bytes.
    pub size: u64,
    pub etag: Option<ETag>,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// For a pending delete, its DELETE_GRACE.
    pub grace: Option<Box<GraceRecord>>,
}

/// When a pending delete's grace began, and what of it is still to pass.
#[derive(Debug, serde::Serialize)]
pub struct GraceRecord {
    /// RFC 3339, UTC: when the key was first found with no local file.
    pub since: String,
    /// RFC 3339, UTC: when the grace's duration ends; null when
    /// DELETE_GRACE has none or it has passed.
    pub until: Option<String>,
    /// Deploys still to cover the key; null when DELETE_GRACE names no
    /// number or they have run.
    pub deploys_left: Option<u32>,
}

impl GraceRecord {
    fn of(p: &PendingDelete) -> Self {
        let rfc3339 = |t: i64| {
            jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string())
        };
        GraceRecord {
            since: rfc3339(p.mark.since),
            until: p.expiry.until.map(rfc3339),
            deploys_left: p.expiry.deploys_left,
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct InvalidationRecord {
    pub distribution_id: String,
    pub domain_name: String,
    pub ids: Vec<String>,
    pub paths: Vec<String>,
    pub completed: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct VerificationRecord {
    /// Where the deploy's prefix is served.
    pub url: String,
    /// Keys the deploy uploaded, fixed or deleted.
    pub candidates: usize,
    /// Paths requested (folder URLs included).
    pub checked: usize,
    /// Past the cap: every entry document and a sample of the rest.
    pub sampled: bool,
    pub passed: usize,
    pub failed: usize,
    /// Every request, rechecks included.
    pub requests: u32,
    /// What deleted paths answered (403 or 404), each once.
    pub deleted_status: Vec<u16>,
    pub paths: Vec<CheckRecord>,
}

#[derive(Debug, serde::Serialize)]
pub struct CheckRecord {
    /// Below `url`, percent-encoded.
    pub path: String,
    pub url: String,
    pub key: Key,
    /// `upload`, `update headers` or `delete`.
    pub action: &'static str,
    /// Requested as its folder (INDEX_DOCUMENT).
    pub folder: bool,
    /// `as deployed`, `mismatch` or `not checked`.
    pub result: &'static str,
    /// The last answer's; `None` when none came.
    pub status: Option<u16>,
    pub attempts: u32,
    pub x_cache: Option<String>,
    pub age: Option<String>,
    pub problems: Vec<ProblemRecord>,
}

#[derive(Debug, serde::Serialize)]
pub struct ProblemRecord {
    pub kind: &'static str,
    pub expected: String,
    pub served: String,
}

impl VerificationRecord {
    fn of(v: &Verification) -> Self {
        let paths: Vec<CheckRecord> = v
            .verdicts
            .iter()
            .map(|verdict| CheckRecord {
                path: verdict.check.path.clone(),
                url: verdict.url.clone(),
                key: verdict.check.key.clone(),
                action: verdict.check.action.as_str(),
                folder: verdict.check.folder,
                result: match verdict.problems.as_slice() {
                    [] => "as deployed",
                    [Problem::NotChecked] => "not checked",
                    _ => "mismatch",
                },
                status: verdict.status,
                attempts: verdict.attempts,
                x_cache: verdict.x_cache.clone(),
                age: verdict.age.clone(),
                problems: verdict
                    .problems
                    .iter()
                    .map(|p| ProblemRecord {
                        kind: p.kind(),
                        expected: p.expected(),
                        served: p.served(),
                    })
                    .collect(),
            })
            .collect();
        VerificationRecord {
            url: v.url.clone(),
            candidates: v.candidates,
            checked: paths.len(),
            sampled: v.sampled(),
            passed: paths.len() - v.failed(),
            failed: v.failed(),
            requests: v.requests(),
            deleted_status: v.gone_statuses(),
            paths,
        }
    }
}

/// Listens to a run and writes its [`Report`] to `path` when it finishes.
pub struct Record {
    path: Option<PathBuf>,
    /// Whether to record each object: only when there is a report to
    /// write (about 300 bytes an object, 6 MB at 20,000).
    objects: bool,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    report: Report,
    /// Where each key's object is in `report.objects`.
    index: HashMap<Key, usize>,
}

impl Record {
    /// Starts the record, and removes an earlier run's report at once: a
    /// run ended by SIGKILL or a second signal then leaves none, never an
    /// earlier run's `success: true`. (Nothing is written until the end: a
    /// report inside LOCAL_PATH must not be scanned as a site file.)
    pub fn new(path: Option<PathBuf>) -> Self {
        if let Some(path) = &path {
            // A missing file is the usual case; another failure shows when
            // the report is written.
            let _ = std::fs::remove_file(path);
        }
        Record {
            objects: path.is_some(),
            path,
            started: Instant::now(),
            state: Mutex::new(State {
                report: Report {
                    version: crate::help::VERSION,
                    ..Report::default()
                },
                index: HashMap::new(),
            }),
        }
    }

    /// A record that writes no file and keeps every object, for a test
    /// to read with [`Record::json`].
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Record {
            objects: true,
            ..Record::new(None)
        }
    }

    /// The report as it stands (what [`Event::Finished`] writes).
    #[cfg(test)]
    pub fn json(&self) -> serde_json::Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_value(&state.report).expect("a report always serialises")
    }

    /// Streams the report to its file: a report of a million objects is
    /// never held as text in memory.
    fn write(&self, report: &Report) {
        let Some(path) = &self.path else { return };
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path))
            .and_then(|file| {
                let mut out = std::io::BufWriter::new(file);
                serde_json::to_writer_pretty(&mut out, report)?;
                out.flush()
            });
        match written {
            Ok(()) => tracing::info!("Report written to {}", path.display()),
            Err(e) => tracing::warn!("Could not write the report to {}: {e}", path.display()),
        }
    }
}

impl State {
    /// Every key's planned fate. Writes stay "not attempted" until the run
    /// says they were done or failed, so a run that stops early (or a dry
    /// run) leaves them so.
    fn planned(&mut self, plan: &Plan, remote: &[RemoteObject]) {
        let remote: HashMap<&str, &RemoteObject> =
            remote.iter().map(|r| (r.key.as_str(), r)).collect();
        let pending = Outcome::NotAttempted;
        let listed = |key: &Key| remote.get(key.as_str()).copied();
        let count = plan.uploads.len()
            + plan.copies.len()
            + plan.skips.len()
            + plan.deletes.len()
            + plan.kept.len()
            + plan.pending.len();
        self.report.objects.reserve_exact(count);
        self.index.reserve(count);
        let mut push = |key: &Key,
                        action,
                        reason: Cow<'static, str>,
                        size,
                        obj: Option<&RemoteObject>,
                        outcome| {
            self.index.insert(key.clone(), self.report.objects.len());
            self.report.objects.push(ObjectRecord {
                key: key.clone(),
                action,
                reason,
                size,
                etag: obj.map(|o| o.etag.clone()),
                outcome,
                error: None,
                grace: None,
            });
        };
        for (action, planned) in [("upload", &plan.uploads), ("update headers", &plan.copies)] {
            for p in planned {
                let key = &p.upload.key;
                push(key, action, p.reason.text(), p.upload.size, None, pending);
            }
        }
        for (key, reason) in &plan.skips {
            let obj = listed(key);
            let size = obj.map_or(0, |o| o.size);
            push(key, "skip", reason.text(), size, obj, Outcome::Done);
        }
        for d in &plan.deletes {
            let reason = Cow::Borrowed("not in the local folder");
            push(&d.key, "delete", reason, d.size, listed(&d.key), pending);
        }
        for key in &plan.kept {
            let obj = listed(key);
            let reason = Cow::Borrowed("not in the local folder; DELETE_FLAG is off");
            push(
                key,
                "keep",
                reason,
                obj.map_or(0, |o| o.size),
                obj,
                Outcome::Done,
            );
        }
        for p in &plan.pending {
            let reason = Cow::Owned(format!("no local file; {}", p.expiry));
            push(
                &p.key,
                "pending delete",
                reason,
                p.size,
                listed(&p.key),
                Outcome::Done,
            );
        }
        for p in &plan.pending {
            if let Some(o) = self.object(&p.key) {
                o.grace = Some(Box::new(GraceRecord::of(p)));
            }
        }
    }

    fn object(&mut self, key: &Key) -> Option<&mut ObjectRecord> {
        let i = *self.index.get(key)?;
        self.report.objects.get_mut(i)
    }

    fn totals(&self) -> Totals {
        let done = |action: &'static str| {
            self.report
                .objects
                .iter()
                .filter(move |o| o.action == action && o.outcome == Outcome::Done)
        };
        Totals {
            uploaded: done("upload").count(),
            uploaded_bytes: done("upload").map(|o| o.size).sum(),
            headers_updated: done("update headers").count(),
            unchanged: done("skip").count(),
            deleted: done("delete").count(),
            kept: done("keep").count(),
            pending_delete: done("pending delete").count(),
            excluded: self.report.totals.excluded,
            incomplete_uploads_aborted: self.report.totals.incomplete_uploads_aborted,
        }
    }
}

impl Sink for Record {
    fn event(&self, event: &Event<'_>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Phase { name, took } => state.report.timings.push(Timing {
                phase: name,
                seconds: took.as_secs_f64(),
            }),
            Event::Deploying {
                destination,
                dry_run,
                ..
            } => {
                state.report.destination = Some(destination.to_string());
                state.report.dry_run = *dry_run;
            }
            Event::Planned {
                plan,
                remote,
                excluded,
                ..
            } => {
                state.report.totals.excluded = *excluded;
                if self.objects {
                    state.planned(plan, remote);
                }
            }
            Event::Written { planned, etag, .. } => {
                if let Some(o) = state.object(&planned.upload.key) {
                    o.outcome = Outcome::Done;
                    o.etag = Some((*etag).clone());
                }
            }
            Event::WriteFailed { planned, error, .. } => {
                if let Some(o) = state.object(&planned.upload.key) {
                    o.outcome = Outcome::Failed;
                    o.error = Some(error.to_string());
                }
            }
            Event::Deleted { key } => {
                if let Some(o) = state.object(key) {
                    o.outcome = Outcome::Done;
                }
            }
            Event::DeleteFailed { failure } => {
                if let Some(o) = state.object(&failure.key) {
                    o.outcome = Outcome::Failed;
                    o.error = Some(format!("{}: {}", failure.code, failure.message));
                }
            }
            Event::Swept { aborted, .. } => {
                state.report.totals.incomplete_uploads_aborted = *aborted;
            }
            Event::Invalidated(inv) => state.report.invalidations.push(InvalidationRecord {
                distribution_id: inv.distribution_id.clone(),
                domain_name: inv.domain_name.clone(),
                ids: inv.ids.clone(),
                paths: inv.paths.clone(),
                completed: inv.completed,
            }),
            Event::Verified(v) => state.report.verification = Some(VerificationRecord::of(v)),
            Event::Finished(result) => {
                let report = &mut state.report;
                report.success = result.is_ok();
                report.error = result.as_ref().err().map(|e| e.to_string());
                match result {
                    Err(PipeError::Validation(errors)) => {
                        report.validation_errors = errors.0.clone();
                    }
                    Err(PipeError::Scan(errors)) => {
                        report.scan_errors = errors
                            .0
                            .iter()
                            .map(|p| ScanErrorRecord {
                                path: p.relative.clone(),
                                kind: p.cause.kind(),
                                message: p.to_string(),
                            })
                            .collect();
                    }
                    _ => {}
                }
                report.timings.push(Timing {
                    phase: "total",
                    seconds: self.started.elapsed().as_secs_f64(),
                });
                state.report.totals = state.totals();
                self.write(&state.report);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ScanCause;

    /// The schema names every kind of verification problem.
    #[test]
    fn the_schema_lists_every_verification_problem() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../report.schema.json")).unwrap();
        let path = &schema["properties"]["verification"]["properties"]["paths"]["items"];
        let listed = &path["properties"]["problems"]["items"]["properties"]["kind"]["enum"];
        assert_eq!(*listed, serde_json::json!(crate::plan::verify::KINDS));
    }

    /// The schema names every kind of scan error the report can carry.
    #[test]
    fn the_schema_lists_every_scan_error_kind() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../report.schema.json")).unwrap();
        let listed = &schema["properties"]["scan_errors"]["items"]["properties"]["kind"]["enum"];
        let kinds: Vec<&str> = [
            ScanCause::BrokenLink {
                target: String::new(),
            },
            ScanCause::LinkLoop {
                target: String::new(),
            },
            ScanCause::UnreadableFile(String::new()),
            ScanCause::UnreadableFolder(String::new()),
            ScanCause::NotAFile("FIFO"),
            ScanCause::NotUtf8,
            ScanCause::ControlCharacter('\t'),
            ScanCause::KeyTooLong {
                bytes: 0,
                folder: false,
            },
            ScanCause::SameKey { names: Vec::new() },
        ]
        .iter()
        .map(ScanCause::kind)
        .collect();
        assert_eq!(*listed, serde_json::json!(kinds));
    }
}
