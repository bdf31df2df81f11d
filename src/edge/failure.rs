//! A failure-injecting wrapper around any [`ObjectStore`], after
//! mountpoint-s3-client's `failure_client`: a callback sees every operation
//! before it reaches the wrapped store and may answer it with an error
//! instead. Every operation is counted, failed or not.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use crate::model::{
    ETag, Headers, IncompleteUpload, Key, Location, ObjectSettings, Prefix, RemoteObject, Upload,
};
use crate::stop::Stop;

use super::store::{Body, DeleteFailure, Fetched, InFlight, ObjectStore, StoreError};

/// One call to the store, as the callback sees it.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    List(&'a Prefix),
    FirstPartSize(&'a Key),
    Put(&'a Upload),
    Get(&'a Location),
    PutBytes(&'a Location),
    Headers(&'a Key),
    Copy(&'a Upload),
    Delete(&'a [Key]),
    ListUploads(&'a Prefix),
    Abort(&'a IncompleteUpload),
}

impl Op<'_> {
    /// The S3 operation's name: `PutObject`, `CopyObject`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Op::List(_) => "ListObjectsV2",
            Op::FirstPartSize(_) | Op::Headers(_) => "HeadObject",
            Op::Put(_) | Op::PutBytes(_) => "PutObject",
            Op::Get(_) => "GetObject",
            Op::Copy(_) => "CopyObject",
            Op::Delete(_) => "DeleteObjects",
            Op::ListUploads(_) => "ListMultipartUploads",
            Op::Abort(_) => "AbortMultipartUpload",
        }
    }

    /// The key the call is about, when it is about one.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Op::FirstPartSize(k) | Op::Headers(k) => Some(k),
            Op::Get(at) | Op::PutBytes(at) => Some(&at.key),
            Op::Put(u) | Op::Copy(u) => Some(&u.key),
            Op::Abort(u) => Some(&u.key),
            Op::List(_) | Op::Delete(_) | Op::ListUploads(_) => None,
        }
    }

    /// What the call is about: its key, the listed prefix, or the first
    /// key of a delete batch.
    pub fn target(&self) -> String {
        match self {
            Op::List(prefix) | Op::ListUploads(prefix) => prefix.list_prefix(),
            Op::Delete(keys) => keys.first().map_or_else(String::new, |k| k.to_string()),
            _ => self.key().map_or_else(String::new, |k| k.to_string()),
        }
    }

    /// The error a failing S3 would give this call: 500 InternalError.
    pub fn internal_error(&self) -> StoreError {
        StoreError {
            operation: self.name(),
            target: self.target(),
            code: Some("InternalError".into()),
            message: "injected fault".into(),
        }
    }
}

pub struct FailureStore<S, F> {
    pub inner: S,
    fail: F,
    calls: Mutex<BTreeMap<&'static str, usize>>,
    /// How many of the next bodies of [`ObjectStore::get_rest`] break
    /// after [`CUT_AFTER`] bytes, as a connection reset mid-body does.
    pub cut_bodies: std::sync::atomic::AtomicUsize,
}

/// Bytes a body [`FailureStore::cut_bodies`] breaks carries first.
pub const CUT_AFTER: u64 = 1000;

/// A body whose connection is reset after [`CUT_AFTER`] bytes.
struct Cut<R>(std::io::Take<R>);

impl<R: std::io::Read> std::io::Read for Cut<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::ErrorKind::ConnectionReset.into()),
            n => Ok(n),
        }
    }
}

impl<S, F> FailureStore<S, F>
where
    F: Fn(&Op) -> Option<StoreError> + Sync,
{
    /// Wraps `inner`; `fail` returns the error to answer an operation with,
    /// or `None` to pass it through.
    pub fn new(inner: S, fail: F) -> Self {
        FailureStore {
            inner,
            fail,
            calls: Mutex::default(),
            cut_bodies: Default::default(),
        }
    }

    /// How many calls of an operation (by its S3 name) were made.
    pub fn calls(&self, operation: &str) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.get(operation).copied().unwrap_or(0)
    }

    fn check(&self, op: Op) -> Result<(), StoreError> {
        *self.calls.lock().unwrap().entry(op.name()).or_default() += 1;
        (self.fail)(&op).map_or(Ok(()), Err)
    }
}

impl<S, F> ObjectStore for FailureStore<S, F>
where
    S: ObjectStore,
    F: Fn(&Op) -> Option<StoreError> + Sync,
{
    async fn list(&self, prefix: &Prefix) -> Result<Vec<RemoteObject>, StoreError> {
        self.check(Op::List(prefix))?;
        self.inner.list(prefix).await
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        self.check(Op::FirstPartSize(key))?;
        self.inner.first_part_size(key).await
    }
    async fn put(
        &self,
        upload: &Upload,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<ETag, StoreError> {
        self.check(Op::Put(upload))?;
        self.inner.put(upload, flight, stop).await
    }
    async fn incomplete_uploads(
        &self,
        prefix: &Prefix,
    ) -> Result<Vec<IncompleteUpload>, StoreError> {
        self.check(Op::ListUploads(prefix))?;
        self.inner.incomplete_uploads(prefix).await
    }
    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<(), StoreError> {
        self.check(Op::Abort(upload))?;
        self.inner.abort_upload(upload).await
    }
    async fn get(&self, at: &Location, first: u64) -> Result<Option<Fetched>, StoreError> {
        self.check(Op::Get(at))?;
        self.inner.get(at, first).await
    }
    async fn get_rest(&self, at: &Location, from: u64, etag: &ETag) -> Result<Body, StoreError> {
        self.check(Op::Get(at))?;
        let body = self.inner.get_rest(at, from, etag).await?;
        let cut = self
            .cut_bodies
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
        Ok(match cut {
            Ok(_) => Box::new(Cut(std::io::Read::take(body, CUT_AFTER))),
            Err(_) => body,
        })
    }
    async fn put_bytes(
        &self,
        at: &Location,
        body: Vec<u8>,
        content_type: &str,
        settings: &ObjectSettings,
    ) -> Result<(), StoreError> {
        self.check(Op::PutBytes(at))?;
        self.inner.put_bytes(at, body, content_type, settings).await
    }
    fn clock_resolution(&self) -> Duration {
        self.inner.clock_resolution()
    }

    fn now(&self) -> i64 {
        self.inner.now()
    }
    async fn headers(&self, key: &Key) -> Result<Option<Headers>, StoreError> {
        self.check(Op::Headers(key))?;
        self.inner.headers(key).await
    }
    async fn copy_in_place(&self, upload: &Upload) -> Result<ETag, StoreError> {
        self.check(Op::Copy(upload))?;
        self.inner.copy_in_place(upload).await
    }
    async fn delete(&self, keys: &[Key]) -> Result<Vec<DeleteFailure>, StoreError> {
        self.check(Op::Delete(keys))?;
        self.inner.delete(keys).await
    }
}
