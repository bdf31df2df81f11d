//! Stage 5: carry out the plan, wave by wave: assets, then entry documents,
//! then deletes. A wave starts only when the one before it fully succeeded,
//! so a failure never leaves new pages pointing at missing files and never
//! deletes anything. Nothing here decides what changes; the plan did.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::plan::{Plan, PlannedUpload, Wave};
use crate::remote::{DeleteFailure, ObjectStore, StoreError};
use crate::report;

/// DeleteObjects takes at most this many keys.
pub const DELETE_BATCH: usize = 1000;

#[derive(Debug, Default)]
pub struct Outcome {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub deleted: usize,
    /// Objects whose headers were fixed in place.
    pub copied: usize,
    /// The ETag S3 gave each uploaded or copied key.
    pub etags: HashMap<String, String>,
    pub upload_time: Duration,
    pub delete_time: Duration,
}

/// How often a long deploy reports how far it got: CI logs have no
/// terminal to redraw a progress bar on.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{} of {attempted} uploads failed; {} deletes skipped so nothing is lost", failed.len(), skipped_deletes)]
    Uploads {
        failed: Vec<StoreError>,
        attempted: usize,
        skipped_deletes: usize,
        done: Outcome,
    },
    #[error("{} of {attempted} deletes failed", failed.len())]
    Deletes {
        failed: Vec<DeleteFailure>,
        attempted: usize,
        done: Outcome,
    },
    #[error(transparent)]
    Store(StoreError),
}

pub async fn execute<S: ObjectStore>(
    store: &S,
    plan: &Plan,
    concurrency: usize,
    progress: Option<Duration>,
) -> Result<Outcome, DeployError> {
    let mut done = Outcome::default();
    let started = Instant::now();
    let progress =
        progress.map(|every| Progress::new(every, plan.uploads.len(), plan.upload_bytes()));
    for (wave, write) in [
        (Wave::Assets, Write::Put),
        (Wave::Assets, Write::Copy),
        (Wave::EntryDocuments, Write::Put),
        (Wave::EntryDocuments, Write::Copy),
    ] {
        let planned = if write == Write::Put {
            &plan.uploads
        } else {
            &plan.copies
        };
        let batch: Vec<&PlannedUpload> = planned.iter().filter(|u| u.wave == wave).collect();
        let failed = upload_wave(
            store,
            &batch,
            write,
            concurrency,
            &mut done,
            progress.as_ref(),
        )
        .await;
        if !failed.is_empty() {
            let attempted = batch.len();
            return Err(DeployError::Uploads {
                failed,
                attempted,
                skipped_deletes: plan.deletes.len(),
                done,
            });
        }
    }
    done.upload_time = started.elapsed();
    delete_all(store, plan, concurrency, done).await
}

/// Prints `progress: 120/2000 files, 36.7 MB/93.1 MB` at most every `every`.
struct Progress {
    every: Duration,
    files: usize,
    bytes: u64,
    last: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(every: Duration, files: usize, bytes: u64) -> Self {
        Progress {
            every,
            files,
            bytes,
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn tick(&self, done: &Outcome) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            report::progress(done.uploaded, self.files, done.uploaded_bytes, self.bytes);
        }
    }
}

/// A whole upload, or a header fix in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Put,
    Copy,
}

async fn upload_wave<S: ObjectStore>(
    store: &S,
    batch: &[&PlannedUpload],
    write: Write,
    concurrency: usize,
    done: &mut Outcome,
    progress: Option<&Progress>,
) -> Vec<StoreError> {
    let mut failed = Vec::new();
    let mut results = futures::stream::iter(batch)
        .map(|planned| async move {
            let started = Instant::now();
            let result = match write {
                Write::Put => store.put(&planned.upload).await,
                Write::Copy => store.copy_in_place(&planned.upload).await,
            };
            (planned, result, started.elapsed())
        })
        .buffer_unordered(concurrency);
    while let Some((planned, result, took)) = results.next().await {
        match result {
            Ok(etag) if write == Write::Copy => {
                done.copied += 1;
                done.etags.insert(planned.upload.key.clone(), etag);
                report::copied(planned, took);
            }
            Ok(etag) => {
                done.uploaded += 1;
                done.uploaded_bytes += planned.upload.size;
                done.etags.insert(planned.upload.key.clone(), etag);
                report::uploaded(planned, took);
                if let Some(p) = progress {
                    p.tick(done);
                }
            }
            Err(e) => {
                report::upload_failed(&e);
                failed.push(e);
            }
        }
    }
    failed
}

async fn delete_all<S: ObjectStore>(
    store: &S,
    plan: &Plan,
    concurrency: usize,
    mut done: Outcome,
) -> Result<Outcome, DeployError> {
    let started = Instant::now();
    let keys: Vec<String> = plan.deletes.iter().map(|d| d.key.clone()).collect();
    let mut failed = Vec::new();
    let mut batches = futures::stream::iter(keys.chunks(DELETE_BATCH))
        .map(|batch| async move { (batch, store.delete(batch).await) })
        .buffer_unordered(concurrency.min(4));
    while let Some((batch, result)) = batches.next().await {
        let refused = result.map_err(DeployError::Store)?;
        for key in batch {
            if !refused.iter().any(|f| &f.key == key) {
                done.deleted += 1;
                report::deleted(key);
            }
        }
        failed.extend(refused);
    }
    done.delete_time = started.elapsed();
    if failed.is_empty() {
        Ok(done)
    } else {
        Err(DeployError::Deletes {
            failed,
            attempted: keys.len(),
            done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ObjectSettings;
    use crate::local::{LocalFile, scan};
    use crate::plan::{ENTRY_DOCUMENTS, PlanInput, entry_document_globs, hashes_needed, plan};
    use crate::remote::memory::{FaultyStore, MemoryStore};
    use std::collections::HashSet;

    fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    async fn deploy<S: ObjectStore>(
        store: &S,
        root: &std::path::Path,
        delete: bool,
    ) -> Result<Outcome, DeployError> {
        let local: Vec<LocalFile> = scan(root, "p", true).unwrap();
        let remote = store.list("p").await.unwrap();
        let etags = crate::compare::local_etags(
            store,
            hashes_needed(&local, &remote, false, &Default::default()),
        )
        .await
        .unwrap();
        let plan = plan(&PlanInput {
            local: &local,
            remote: &remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete,
            size_only: false,
            entry_documents: Some(&entry_document_globs(ENTRY_DOCUMENTS).unwrap()),
            rules: &crate::rules::Rules::default(),
            trusted: &Default::default(),
            remote_headers: &Default::default(),
        });
        execute(store, &plan, 4, None).await
    }

    #[tokio::test]
    async fn redeploy_of_the_same_folder_writes_nothing() {
        let dir = site(&[("index.html", "<h1>"), ("a/b.css", "x")]);
        let store = MemoryStore::default();
        let first = deploy(&store, dir.path(), true).await.unwrap();
        assert_eq!(first.uploaded, 2);
        let second = deploy(&store, dir.path(), true).await.unwrap();
        assert_eq!((second.uploaded, second.deleted), (0, 0));
        assert_eq!(store.writes(), ["PUT p/a/b.css", "PUT p/index.html"]);
    }

    #[tokio::test]
    async fn a_failed_asset_stops_pages_and_deletes_and_the_next_run_converges() {
        let store = MemoryStore::default();
        deploy(
            &store,
            site(&[("old.js", "1"), ("index.html", "1")]).path(),
            true,
        )
        .await
        .unwrap();
        let dir = site(&[("new.js", "2"), ("index.html", "2")]);
        let faulty = FaultyStore {
            inner: store,
            fail_puts: HashSet::from(["p/new.js".to_string()]),
        };
        let err = deploy(&faulty, dir.path(), true).await.unwrap_err();
        assert!(
            matches!(&err, DeployError::Uploads { failed, skipped_deletes: 1, .. } if failed.len() == 1)
        );
        // The page still points at the old asset, which still exists.
        assert_eq!(faulty.inner.keys(), ["p/index.html", "p/old.js"]);
        let fixed = FaultyStore {
            inner: faulty.inner,
            fail_puts: HashSet::new(),
        };
        let done = deploy(&fixed, dir.path(), true).await.unwrap();
        assert_eq!((done.uploaded, done.deleted), (2, 1));
        assert_eq!(fixed.inner.keys(), ["p/index.html", "p/new.js"]);
        let writes = fixed.inner.writes();
        assert_eq!(
            &writes[writes.len() - 3..],
            ["PUT p/new.js", "PUT p/index.html", "DELETE p/old.js"]
        );
    }

    #[tokio::test]
    async fn deletes_go_in_batches_of_a_thousand() {
        let store = MemoryStore::default();
        let many: Vec<(String, String)> = (0..2500)
            .map(|i| (format!("f{i}"), String::new()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        deploy(&store, site(&refs).path(), false).await.unwrap();
        let done = deploy(&store, site(&[]).path(), true).await.unwrap();
        assert_eq!(done.deleted, 2500);
        assert!(store.keys().is_empty());
    }
}
