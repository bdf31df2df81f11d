//! A bucket in a map, for tests: the same trait as S3, with ETags computed
//! as S3 computes them, LastModified stamped from a clock that moves one
//! second per write, and a log of every write.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;

use crate::etag::{self, in_parts, part_size};
use crate::model::{
    ETag, Headers, IncompleteUpload, Key, Location, ObjectSettings, Prefix, RemoteObject, Upload,
};
use crate::stop::{Signal, Stop};

use super::store::{Body, DELETE_BATCH, DeleteFailure, Fetched, InFlight, ObjectStore, StoreError};

/// The first LastModified the store gives (2023-11-14T22:13:20Z).
const EPOCH: i64 = 1_700_000_000;

struct Stored {
    object: RemoteObject,
    body: Vec<u8>,
    headers: Headers,
    /// The part size it was written with; `None` for one part.
    part_size: Option<u64>,
}

#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<Key, Stored>>,
    /// Multipart uploads started and neither completed nor aborted.
    incomplete: Mutex<Vec<IncompleteUpload>>,
    /// Objects of other buckets, by bucket.
    elsewhere: Mutex<BTreeMap<String, BTreeMap<Key, Stored>>>,
    /// Seconds since [`EPOCH`]: every write moves it on by one, so each
    /// write has its own LastModified.
    clock: Mutex<i64>,
    /// Every write and HeadObject, in order, as `PUT key`, `COPY key`,
    /// `DELETE key`, `HEAD key` (`PUT s3://bucket/key` in another bucket).
    log: Mutex<Vec<String>>,
    /// The requests and part bytes of [`ObjectStore::put`] in flight now,
    /// and their peaks.
    in_flight: Mutex<Peaks>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Peaks {
    pub requests: usize,
    pub part_bytes: u64,
    pub peak_requests: usize,
    pub peak_part_bytes: u64,
}

impl MemoryStore {
    fn tick(&self) -> i64 {
        let mut clock = self.clock.lock().unwrap();
        *clock += 1;
        EPOCH + *clock
    }

    /// What another tool does with CopyObject onto the object with new
    /// headers (MetadataDirective=REPLACE), or with a PutObject of the same
    /// bytes: same ETag, other headers, a new LastModified. Not logged: the
    /// log is the pipe's.
    pub fn replace_headers(&self, key: &str, headers: Headers) {
        let stamp = self.tick();
        let mut objects = self.objects.lock().unwrap();
        let stored = objects
            .get_mut(key)
            .expect("replace_headers of an absent key");
        stored.headers = headers;
        stored.object.last_modified = stamp;
    }

    /// The bytes of `key` in another bucket.
    pub fn body_elsewhere(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let elsewhere = self.elsewhere.lock().unwrap();
        elsewhere.get(bucket)?.get(key).map(|f| f.body.clone())
    }

    /// What `read` makes of the object at `at`, in this bucket or another.
    fn find<T>(&self, at: &Location, read: impl FnOnce(&Stored) -> T) -> Option<T> {
        match &at.bucket {
            Some(bucket) => {
                let elsewhere = self.elsewhere.lock().unwrap();
                elsewhere.get(bucket)?.get(&at.key).map(read)
            }
            None => self.objects.lock().unwrap().get(&at.key).map(read),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        let objects = self.objects.lock().unwrap();
        objects.keys().map(|k| k.to_string()).collect()
    }

    /// The log entries that change the bucket.
    pub fn writes(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| !l.starts_with("HEAD "))
            .cloned()
            .collect()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        let objects = self.objects.lock().unwrap();
        objects.get(key).map(|s| s.body.clone())
    }

    pub fn etag_of(&self, key: &str) -> Option<ETag> {
        let objects = self.objects.lock().unwrap();
        objects.get(key).map(|s| s.object.etag.clone())
    }

    pub fn headers_of(&self, key: &str) -> Option<Headers> {
        let objects = self.objects.lock().unwrap();
        objects.get(key).map(|s| s.headers.clone())
    }

    /// Starts a multipart upload and leaves it, as a killed deploy would.
    pub fn start_upload(&self, key: &str, initiated: i64) -> IncompleteUpload {
        let mut incomplete = self.incomplete.lock().unwrap();
        let upload = IncompleteUpload {
            key: Key::new(key),
            upload_id: format!("upload-{}", incomplete.len() + 1),
            initiated: Some(initiated),
        };
        incomplete.push(upload.clone());
        upload
    }

    pub fn incomplete(&self) -> Vec<IncompleteUpload> {
        self.incomplete.lock().unwrap().clone()
    }

    /// What [`ObjectStore::put`] had in flight at most at once.
    pub fn peaks(&self) -> Peaks {
        *self.in_flight.lock().unwrap()
    }

    /// One request of a put on the wire, with `part_bytes` of part body:
    /// open across a yield, so that the other writes in flight run
    /// meanwhile, as they would while S3 answers.
    async fn send(&self, part_bytes: u64) {
        {
            let mut now = self.in_flight.lock().unwrap();
            now.requests += 1;
            now.part_bytes += part_bytes;
            now.peak_requests = now.peak_requests.max(now.requests);
            now.peak_part_bytes = now.peak_part_bytes.max(now.part_bytes);
        }
        tokio::task::yield_now().await;
        let mut now = self.in_flight.lock().unwrap();
        now.requests -= 1;
        now.part_bytes -= part_bytes;
    }

    /// The requests of a multipart upload of `size` bytes in parts of
    /// `part`, each in its turn, until a stop comes.
    async fn send_parts(
        &self,
        size: u64,
        part: u64,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<(), Signal> {
        let turn = flight.request_unless_stopped(stop).await?;
        self.send(0).await; // CreateMultipartUpload
        drop(turn);
        let offsets = (0..size.div_ceil(part)).map(|i| i * part);
        let parts = futures::stream::iter(offsets)
            .map(|offset| async move {
                let length = part.min(size - offset);
                let _turn = flight.part(length).await;
                self.send(length).await;
            })
            .buffer_unordered(flight.parts_at_once(part))
            .collect::<()>();
        tokio::select! {
            biased;
            signal = stop.wait() => return Err(signal),
            () = parts => {}
        }
        let _turn = flight.request_unless_stopped(stop).await?;
        self.send(0).await; // CompleteMultipartUpload
        Ok(())
    }

    fn record(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
}

impl ObjectStore for MemoryStore {
    async fn list(&self, prefix: &Prefix) -> Result<Vec<RemoteObject>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .values()
            .filter(|s| prefix.contains(&s.object.key))
            .map(|s| s.object.clone())
            .collect())
    }

    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .get(key)
            .and_then(|s| s.part_size.map(|p| p.min(s.object.size))))
    }

    async fn put(
        &self,
        upload: &Upload,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<ETag, StoreError> {
        let read_error = |e: std::io::Error| StoreError {
            operation: "reading",
            target: upload.path.display().to_string(),
            code: None,
            message: e.to_string(),
        };
        let parts = in_parts(upload.size).then(|| part_size(upload.size));
        if let Some(part) = parts {
            // As S3 does: the upload exists from its creation until it is
            // completed or aborted; other tasks run in between.
            let started = self.start_upload(&upload.key, 0);
            let sent = self.send_parts(upload.size, part, flight, stop).await;
            if let Err(signal) = sent {
                self.abort_upload(&started).await?;
                return Err(StoreError::stopped(
                    "UploadPart",
                    upload.key.to_string(),
                    signal,
                ));
            }
            self.incomplete.lock().unwrap().retain(|u| *u != started);
        } else {
            let stopped = |signal| StoreError::stopped("PutObject", upload.key.to_string(), signal);
            let _turn = flight.request_unless_stopped(stop).await.map_err(stopped)?;
            self.send(0).await;
            if let Some(signal) = stop.requested() {
                return Err(stopped(signal));
            }
        }
        let etag = etag::of_file(&upload.path, parts).map_err(read_error)?;
        let body = std::fs::read(&upload.path).map_err(read_error)?;
        let stored = Stored {
            object: RemoteObject {
                key: upload.key.clone(),
                size: body.len() as u64,
                etag: etag.clone(),
                last_modified: self.tick(),
            },
            body,
            headers: upload.headers(),
            part_size: parts,
        };
        self.record(format!("PUT {}", upload.key));
        self.objects
            .lock()
            .unwrap()
            .insert(upload.key.clone(), stored);
        Ok(etag)
    }

    async fn get(&self, at: &Location, first: u64) -> Result<Option<Fetched>, StoreError> {
        let first = usize::try_from(first).unwrap_or(usize::MAX);
        Ok(self.find(at, |s| Fetched {
            head: s.body[..s.body.len().min(first)].to_vec(),
            size: s.body.len() as u64,
            etag: s.object.etag.clone(),
            last_modified: s.object.last_modified,
        }))
    }

    async fn get_rest(&self, at: &Location, from: u64, etag: &ETag) -> Result<Body, StoreError> {
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        let rest = self.find(at, |s| {
            (s.object.etag == *etag).then(|| s.body[from.min(s.body.len())..].to_vec())
        });
        match rest.flatten() {
            Some(rest) => Ok(Box::new(std::io::Cursor::new(rest))),
            None => Err(StoreError {
                operation: "GetObject",
                target: at.to_string(),
                code: Some("PreconditionFailed".into()),
                message: "At least one of the pre-conditions you specified did not hold".into(),
            }),
        }
    }

    async fn put_bytes(
        &self,
        at: &Location,
        body: Vec<u8>,
        content_type: &str,
        settings: &ObjectSettings,
    ) -> Result<(), StoreError> {
        self.record(format!("PUT {at}"));
        let stored = Stored {
            object: RemoteObject {
                key: at.key.clone(),
                size: body.len() as u64,
                etag: ETag::new(&hex::encode(<md5::Md5 as md5::Digest>::digest(&body))),
                last_modified: self.tick(),
            },
            body,
            headers: Headers::of(content_type, settings),
            part_size: None,
        };
        match &at.bucket {
            Some(bucket) => {
                let mut elsewhere = self.elsewhere.lock().unwrap();
                let objects = elsewhere.entry(bucket.clone()).or_default();
                objects.insert(at.key.clone(), stored);
            }
            None => {
                self.objects.lock().unwrap().insert(at.key.clone(), stored);
            }
        }
        Ok(())
    }

    fn clock_resolution(&self) -> Duration {
        // Every write has its own second.
        Duration::ZERO
    }

    fn now(&self) -> i64 {
        // The second of the last write: the next one is stamped later.
        EPOCH + *self.clock.lock().unwrap()
    }

    async fn headers(&self, key: &Key) -> Result<Option<Headers>, StoreError> {
        self.record(format!("HEAD {key}"));
        Ok(self.headers_of(key))
    }

    async fn copy_in_place(&self, upload: &Upload) -> Result<ETag, StoreError> {
        self.record(format!("COPY {}", upload.key));
        let mut objects = self.objects.lock().unwrap();
        let stored = objects.get_mut(&upload.key).ok_or_else(|| StoreError {
            operation: "CopyObject",
            target: upload.key.to_string(),
            code: Some("NoSuchKey".into()),
            message: "The specified key does not exist.".into(),
        })?;
        // S3 keeps the ETag of an object copied onto itself, and stamps it.
        stored.headers = upload.headers();
        stored.object.last_modified = self.tick();
        Ok(stored.object.etag.clone())
    }

    async fn incomplete_uploads(
        &self,
        prefix: &Prefix,
    ) -> Result<Vec<IncompleteUpload>, StoreError> {
        let incomplete = self.incomplete.lock().unwrap();
        Ok(incomplete
            .iter()
            .filter(|u| prefix.contains(&u.key))
            .cloned()
            .collect())
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<(), StoreError> {
        self.record(format!("ABORT {}", upload.key));
        self.incomplete.lock().unwrap().retain(|u| u != upload);
        Ok(())
    }

    async fn delete(&self, keys: &[Key]) -> Result<Vec<DeleteFailure>, StoreError> {
        assert!(
            keys.len() <= DELETE_BATCH,
            "a DeleteObjects batch holds at most 1,000 keys"
        );
        for key in keys {
            self.record(format!("DELETE {key}"));
            self.objects.lock().unwrap().remove(key);
        }
        Ok(Vec::new())
    }
}
