//! Carries out the plan, step by step ([`Plan::steps`]): assets, then entry
//! documents, then deletes. A step starts only when the one before it fully
//! succeeded, so a failure never leaves new pages pointing at missing files
//! and never deletes anything. Nothing here decides what changes; the plan
//! did. Every write is told to the sink as it ends. A stop request starts
//! nothing new, cuts the writes in flight short (the store aborts their
//! multipart uploads) and never reaches the deletes.
//!
//! CONCURRENCY counts requests in flight, parts included, over all the
//! files of a step: one [`InFlight`] is shared by every write, so a large
//! file's parts and small files' PutObjects take turns.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::edge::store::{
    DELETE_BATCH, DeleteFailure, InFlight, ObjectStore, PART_BYTES_IN_FLIGHT, STOPPED, StoreError,
};
use crate::model::Key;
use crate::plan::{Plan, PlannedUpload, Step, Write};
use crate::stop::{Signal, Stop};

use super::error::{DeployError, Stopped};
use super::events::{Event, Outcome, Sink};

/// How often a long deploy reports how far it got: CI logs have no
/// terminal to redraw a progress bar on.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the execution needs besides the store and the plan.
pub struct Limits<'a> {
    /// Requests in flight, parts included, over every file.
    pub concurrency: usize,
    /// How often progress is told; `None`: never.
    pub progress: Option<Duration>,
    pub stop: &'a Stop,
}

/// How far the execution got when `signal` stopped it.
fn stopped(signal: Signal, plan: &Plan, done: &Outcome) -> DeployError {
    DeployError::Stopped(Stopped {
        signal,
        uploads: Some((
            done.uploaded + done.copied,
            plan.uploads.len() + plan.copies.len(),
        )),
        deleted: done.deleted,
        deletes_in_doubt: done.deletes_in_doubt,
    })
}

/// Runs every step, then the deletes.
pub async fn execute<S: ObjectStore, E: Sink>(
    store: &S,
    plan: &Plan,
    limits: Limits<'_>,
    sink: &E,
) -> Result<Outcome, DeployError> {
    let mut done = Outcome::default();
    let flight = InFlight::new(limits.concurrency, PART_BYTES_IN_FLIGHT);
    let started = Instant::now();
    let progress = limits
        .progress
        .map(|every| Progress::new(every, plan.uploads.len(), plan.upload_bytes()));
    for step in plan.steps() {
        let attempted = step.items.len();
        let failed = run_step(
            store,
            &step,
            &limits,
            &flight,
            &mut done,
            progress.as_ref(),
            sink,
        )
        .await;
        if let Some(signal) = limits.stop.requested() {
            return Err(stopped(signal, plan, &done));
        }
        if !failed.is_empty() {
            return Err(DeployError::Uploads {
                failed,
                attempted,
                skipped_deletes: plan.deletes.len(),
            });
        }
    }
    sink.event(&Event::Phase {
        name: "upload",
        took: started.elapsed(),
    });
    let started = Instant::now();
    let deleted = delete_all(store, plan, &limits, &mut done, sink).await;
    sink.event(&Event::Phase {
        name: "delete",
        took: started.elapsed(),
    });
    if let Some(signal) = limits.stop.requested() {
        return Err(stopped(signal, plan, &done));
    }
    deleted.map(|()| done)
}

/// Tells the sink how far the uploads got, at most every `every`.
struct Progress {
    every: Duration,
    files: usize,
    bytes: u64,
    last: Mutex<Instant>,
}

impl Progress {
    fn new(every: Duration, files: usize, bytes: u64) -> Self {
        Progress {
            every,
            files,
            bytes,
            last: Mutex::new(Instant::now()),
        }
    }

    fn tick<E: Sink>(&self, done: &Outcome, sink: &E) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            sink.event(&Event::Progress {
                files: done.uploaded,
                total_files: self.files,
                bytes: done.uploaded_bytes,
                total_bytes: self.bytes,
            });
        }
    }
}

async fn run_step<S: ObjectStore, E: Sink>(
    store: &S,
    step: &Step<'_>,
    limits: &Limits<'_>,
    flight: &InFlight,
    done: &mut Outcome,
    progress: Option<&Progress>,
    sink: &E,
) -> Vec<StoreError> {
    let (write, stop) = (step.write, limits.stop);
    let mut failed = Vec::new();
    let mut results = futures::stream::iter(&step.items)
        .take_while(|_| std::future::ready(stop.requested().is_none()))
        .map(|planned: &&PlannedUpload| async move {
            let started = Instant::now();
            let upload = &planned.upload;
            let stopped =
                |signal| StoreError::stopped("CopyObject", upload.key.to_string(), signal);
            let result = match write {
                Write::Put => store.put(upload, flight, stop).await,
                // A CopyObject cut short changes nothing; one S3 is
                // completing is seen through.
                Write::Copy => match flight.request_unless_stopped(stop).await {
                    Ok(_turn) => stop
                        .finish_within(store.copy_in_place(upload))
                        .await
                        .unwrap_or_else(|signal| Err(stopped(signal))),
                    Err(signal) => Err(stopped(signal)),
                },
            };
            (*planned, result, started.elapsed())
        })
        // A file needs a request at least: more files than requests in
        // flight would only wait for a turn.
        .buffer_unordered(limits.concurrency);
    while let Some((planned, result, took)) = results.next().await {
        match result {
            Ok(etag) => {
                sink.event(&Event::Written {
                    planned,
                    write,
                    etag: &etag,
                    took,
                });
                if write == Write::Copy {
                    done.copied += 1;
                } else {
                    done.uploaded += 1;
                    done.uploaded_bytes += planned.upload.size;
                    if let Some(p) = progress {
                        p.tick(done, sink);
                    }
                }
                done.etags.insert(planned.upload.key.clone(), etag);
                done.last_writes.record(Instant::now());
            }
            Err(error) => {
                sink.event(&Event::WriteFailed {
                    planned,
                    error: &error,
                });
                failed.push(error);
            }
        }
    }
    failed
}

async fn delete_all<S: ObjectStore, E: Sink>(
    store: &S,
    plan: &Plan,
    limits: &Limits<'_>,
    done: &mut Outcome,
    sink: &E,
) -> Result<(), DeployError> {
    let keys: Vec<Key> = plan.deletes.iter().map(|d| d.key.clone()).collect();
    let mut failed = Vec::new();
    let mut batches = futures::stream::iter(keys.chunks(DELETE_BATCH))
        .take_while(|_| std::future::ready(limits.stop.requested().is_none()))
        .map(|batch| async move {
            // A DeleteObjects under way when a stop comes gets the grace;
            // one that takes longer may or may not have happened.
            let deleted = limits.stop.finish_within(store.delete(batch)).await;
            let deleted = deleted.unwrap_or_else(|signal| {
                Err(StoreError {
                    message: format!(
                        "stopped by {} while this delete was under way: it may have happened",
                        signal.name()
                    ),
                    ..StoreError::stopped("DeleteObjects", batch[0].to_string(), signal)
                })
            });
            (batch, deleted)
        })
        .buffer_unordered(limits.concurrency.min(4));
    while let Some((batch, result)) = batches.next().await {
        // A batch the store refused whole fails each of its keys, and the
        // other batches still run: the record shows every key's fate.
        let refused = result.unwrap_or_else(|e| {
            batch
                .iter()
                .map(|key| DeleteFailure {
                    key: key.clone(),
                    code: e.code.clone().unwrap_or_else(|| "Error".into()),
                    message: e.message.clone(),
                })
                .collect()
        });
        for key in batch {
            match refused.iter().find(|f| &f.key == key) {
                Some(failure) => {
                    if failure.code == STOPPED {
                        done.deletes_in_doubt += 1;
                    }
                    sink.event(&Event::DeleteFailed { failure })
                }
                None => {
                    done.deleted += 1;
                    sink.event(&Event::Deleted { key });
                }
            }
        }
        failed.extend(refused);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(DeployError::Deletes {
            failed,
            attempted: keys.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::memory::MemoryStore;
    use crate::model::{ObjectSettings, Upload};
    use crate::plan::{Reason, Wave};
    use crate::run::events::Listeners;

    const MIB: u64 = 1024 * 1024;

    /// A plan uploading a file of each size, all assets; the files are
    /// sparse, so that large ones cost no disk.
    fn plan_of(dir: &std::path::Path, sizes: &[u64]) -> Plan {
        let uploads = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let path = dir.join(format!("f{i}"));
                std::fs::File::create(&path).unwrap().set_len(size).unwrap();
                PlannedUpload {
                    upload: Upload {
                        key: Key::new(format!("f{i}")),
                        path,
                        size,
                        content_type: "application/octet-stream".into(),
                        settings: ObjectSettings::default(),
                    },
                    reason: Reason::New,
                    wave: Wave::Assets,
                }
            })
            .collect();
        Plan {
            uploads,
            ..Plan::default()
        }
    }

    async fn run(store: &MemoryStore, plan: &Plan, concurrency: usize) -> Outcome {
        let stop = Stop::never();
        let limits = Limits {
            concurrency,
            progress: None,
            stop: &stop,
        };
        execute(store, plan, limits, &Listeners(Vec::new()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn parts_and_small_files_share_the_requests_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        // Two files in parts (3 each) among small ones: with 4 files in
        // flight and 4 parts each, as before, 4 × 4 requests could be open.
        let mut sizes = vec![20 * MIB, 20 * MIB];
        sizes.extend([100; 30]);
        let plan = plan_of(dir.path(), &sizes);
        let store = MemoryStore::default();
        let done = run(&store, &plan, 4).await;
        assert_eq!(done.uploaded, 32);
        // Never above the limit, and the limit is used: the executor is not
        // what holds the deploy back.
        assert_eq!(store.peaks().peak_requests, 4);
        assert_eq!(store.keys().len(), 32);
    }

    #[tokio::test]
    async fn part_bodies_in_flight_stay_within_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        // 4 files of 3 parts: 12 parts of 8 MiB would be 96 MiB at once.
        let plan = plan_of(dir.path(), &[24 * MIB; 4]);
        let store = MemoryStore::default();
        run(&store, &plan, 64).await;
        let peaks = store.peaks();
        assert_eq!(peaks.peak_part_bytes, PART_BYTES_IN_FLIGHT);
        assert!(peaks.peak_requests <= 64);
        assert_eq!(store.keys().len(), 4);
    }
}
