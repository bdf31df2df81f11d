//! The bucket, behind a small trait this crate owns. The SDK types stay in
//! `edge::s3`; the rest of the crate sees only these.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::model::{
    ETag, Headers, IncompleteUpload, Key, Location, ObjectSettings, Prefix, RemoteObject, Upload,
};
use crate::stop::{Signal, Stop};

/// A failed call to the store, with what the user needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} {target} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct StoreError {
    pub operation: &'static str,
    pub target: String,
    /// The service's error code, or `Unreachable` when no answer came back.
    pub code: Option<String>,
    pub message: String,
}

impl StoreError {
    /// The error of a call cut short by a stop request.
    pub fn stopped(operation: &'static str, target: String, signal: Signal) -> Self {
        StoreError {
            operation,
            target,
            code: Some(STOPPED.into()),
            message: format!("stopped by {}", signal.name()),
        }
    }

    /// What the user should do about this error, when we know.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.code.as_deref()? {
            "NoSuchBucket" => {
                "the bucket does not exist: check S3_BUCKET (and that it is in AWS_DEFAULT_REGION)"
            }
            "AccessDenied" | "Forbidden" => {
                "the credentials are not allowed to do this: grant s3:ListBucket on the bucket and s3:PutObject \
                 (s3:PutObjectAcl with ACL, s3:DeleteObject with DELETE_FLAG, s3:GetObject for the deploy \
                 manifest) on its objects"
            }
            "InvalidAccessKeyId" => {
                "AWS_ACCESS_KEY_ID is not a known access key: check the repository variable"
            }
            "SignatureDoesNotMatch" => {
                "AWS_SECRET_ACCESS_KEY does not belong to AWS_ACCESS_KEY_ID: check both variables"
            }
            "AccessControlListNotSupported" => {
                "this bucket disables ACLs (Object Ownership: bucket owner enforced): remove ACL"
            }
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => {
                "the bucket is in another region: set AWS_DEFAULT_REGION to the bucket's region"
            }
            "ExpiredToken" | "ExpiredTokenException" | "InvalidToken" => {
                "the session credentials have expired or are invalid: refresh AWS_SESSION_TOKEN or use OIDC"
            }
            "Timeout" => {
                "S3 did not answer in time: check the network; on a slow link raise READ_TIMEOUT \
                 (a request must carry a whole part, 8 MiB, within it)"
            }
            "Unreachable" => {
                "the S3 endpoint could not be reached: check the network, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL"
            }
            _ => return None,
        })
    }
}

/// The code of a call a stop request cut short.
pub const STOPPED: &str = "Stopped";

/// A failed key of a batch delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: Key,
    pub code: String,
    pub message: String,
}

/// The start of an object (the deploy manifest), read by
/// [`ObjectStore::get`]: its first bytes, and what tells whether and how
/// to read the rest ([`ObjectStore::get_rest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The object's first bytes: all of them when `head.len() == size`.
    pub head: Vec<u8>,
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag: the rest is read only from the same object.
    pub etag: ETag,
    /// LastModified, in seconds since the Unix epoch.
    pub last_modified: i64,
}

impl Fetched {
    /// Whether [`Fetched::head`] is the whole object.
    pub fn is_whole(&self) -> bool {
        self.head.len() as u64 >= self.size
    }
}

/// The rest of an object, as it arrives ([`ObjectStore::get_rest`]). A
/// blocking reader: read it on a blocking thread
/// (`tokio::task::spawn_blocking`), never on the runtime's own. An error
/// of the connection is an [`std::io::Error`] of the read.
pub type Body = Box<dyn std::io::Read + Send>;

/// DeleteObjects takes at most this many keys (S3's DeleteObjects reference).
pub const DELETE_BATCH: usize = 1000;

/// The bytes of part bodies one deploy keeps in flight, over every file:
/// 64 MiB, 8 parts of 8 MiB. Bodies stream from the file, so this is not
/// what they hold in memory; it is what shares the link: every part in
/// flight must be carried whole within READ_TIMEOUT, and 8 parts at once
/// fill a link that a single 8 MiB part at 100 ms of latency cannot.
/// Were bodies ever buffered, it still keeps a deploy of 1 GB files within
/// 128 MB.
pub const PART_BYTES_IN_FLIGHT: u64 = 64 * 1024 * 1024;

/// The unit the part byte budget is counted in: a semaphore takes at most
/// `u32::MAX` permits at once, and a part may be up to 5 GiB.
const KIB: u64 = 1024;

/// What one deploy has in flight at once, shared by every file: requests
/// (each PutObject, CreateMultipartUpload, UploadPart,
/// CompleteMultipartUpload and CopyObject) and the bytes of part bodies.
/// Both wait in turn (first come, first served), so a large file's parts
/// cannot starve small files of requests, nor the other way round.
#[derive(Debug)]
pub struct InFlight {
    requests: Semaphore,
    part_kib: Semaphore,
    budget_kib: u32,
}

/// A part's turn to be sent: its bytes and its request, released on drop.
#[derive(Debug)]
pub struct PartPermit<'a> {
    _bytes: SemaphorePermit<'a>,
    _request: SemaphorePermit<'a>,
}

impl InFlight {
    /// At most `requests` requests (at least 1) and `part_bytes` bytes of
    /// part bodies (at least 1 KiB; a part larger than that goes alone).
    pub fn new(requests: usize, part_bytes: u64) -> Self {
        let budget_kib = u32::try_from(part_bytes / KIB).unwrap_or(u32::MAX).max(1);
        InFlight {
            requests: Semaphore::new(requests.max(1)),
            part_kib: Semaphore::new(budget_kib as usize),
            budget_kib,
        }
    }

    /// Waits for a request's turn; the request may be sent while the
    /// permit is held.
    pub async fn request(&self) -> SemaphorePermit<'_> {
        self.requests.acquire().await.expect("never closed")
    }

    /// A request's turn, or the stop that came first: waiting is no request
    /// yet, so a stop ends it at once.
    pub async fn request_unless_stopped(&self, stop: &Stop) -> Result<SemaphorePermit<'_>, Signal> {
        tokio::select! {
            biased;
            signal = stop.wait() => Err(signal),
            turn = self.request() => Ok(turn),
        }
    }

    /// Waits for the turn of a part of `size` bytes: its share of the byte
    /// budget first, then a request, so that no request slot idles while
    /// the bytes wait.
    pub async fn part(&self, size: u64) -> PartPermit<'_> {
        let kib = u32::try_from(size.div_ceil(KIB))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_kib);
        let bytes = self.part_kib.acquire_many(kib).await.expect("never closed");
        PartPermit {
            _bytes: bytes,
            _request: self.request().await,
        }
    }

    /// How many parts of `part_size` bytes fit the byte budget at once (at
    /// least 1): more would only wait.
    pub fn parts_at_once(&self, part_size: u64) -> usize {
        let kib = part_size.div_ceil(KIB).max(1);
        usize::try_from(u64::from(self.budget_kib) / kib)
            .unwrap_or(usize::MAX)
            .max(1)
    }
}

/// What the deploy needs from a bucket. Implemented by the real S3 client
/// ([`super::s3::S3Store`]) and, in tests, by an in-memory store and a
/// failure-injecting wrapper around any store.
pub trait ObjectStore: Sync {
    /// Every object under `prefix` (every object of the bucket at the root).
    fn list(
        &self,
        prefix: &Prefix,
    ) -> impl Future<Output = Result<Vec<RemoteObject>, StoreError>> + Send;

    /// The size of part 1 of a multipart object, to recompute its ETag
    /// locally; `None` for an object uploaded in one part.
    fn first_part_size(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Writes one object, in parts when [`crate::etag::in_parts`] says so,
    /// of [`crate::etag::part_size`]; returns the ETag S3 gave it. Every
    /// request it sends holds a turn of `flight` while in flight
    /// ([`InFlight::request`], or [`InFlight::part`] for a part), but the
    /// abort of a failed upload, which must not wait; it sends no more
    /// parts at once than [`InFlight::parts_at_once`]. When
    /// `stop` fires it returns [`StoreError::stopped`] promptly and leaves
    /// no incomplete multipart upload behind (one whose creation was under
    /// way is aborted as soon as its id is known).
    fn put(
        &self,
        upload: &Upload,
        flight: &InFlight,
        stop: &Stop,
    ) -> impl Future<Output = Result<ETag, StoreError>> + Send;

    /// The multipart uploads under `prefix` that were started and neither
    /// completed nor aborted.
    fn incomplete_uploads(
        &self,
        prefix: &Prefix,
    ) -> impl Future<Output = Result<Vec<IncompleteUpload>, StoreError>> + Send;

    /// Aborts a multipart upload, freeing its parts.
    fn abort_upload(
        &self,
        upload: &IncompleteUpload,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// GetObject of at most the first `first` bytes of `at` (the deploy
    /// manifest, in this bucket or another; a ranged GET), with the
    /// object's size, ETag and LastModified; `None` if absent. An empty
    /// object comes back empty (S3 answers its range 416 InvalidRange).
    fn get(
        &self,
        at: &Location,
        first: u64,
    ) -> impl Future<Output = Result<Option<Fetched>, StoreError>> + Send;

    /// The bytes of the object at `at` from byte `from` on, streamed, as
    /// the object whose ETag is `etag` holds them (a ranged GetObject with
    /// If-Match: the rest of what [`ObjectStore::get`] began). Replaced
    /// since (S3 answers 412 PreconditionFailed) or deleted (404
    /// NoSuchKey), it is an error with that code.
    fn get_rest(
        &self,
        at: &Location,
        from: u64,
        etag: &ETag,
    ) -> impl Future<Output = Result<Body, StoreError>> + Send;

    /// Writes a small object from memory (the deploy manifest, in this
    /// bucket or another) in one PutObject.
    fn put_bytes(
        &self,
        at: &Location,
        body: Vec<u8>,
        content_type: &str,
        settings: &ObjectSettings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How far apart two writes must be for the later one to get a later
    /// LastModified: one second on S3, which stamps whole seconds.
    fn clock_resolution(&self) -> Duration;

    /// The time, in seconds since the Unix epoch, that a deploy manifest
    /// written now records ([`crate::plan::manifest::Manifest::stamp`]): on
    /// S3 this machine's clock, which follows S3's when both keep NTP time.
    fn now(&self) -> i64;

    /// The headers an object is served with; `None` if absent.
    fn headers(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<Headers>, StoreError>> + Send;

    /// Replaces an object's headers without re-uploading it (CopyObject onto
    /// itself, MetadataDirective=REPLACE); returns the new ETag.
    fn copy_in_place(
        &self,
        upload: &Upload,
    ) -> impl Future<Output = Result<ETag, StoreError>> + Send;

    /// Deletes up to [`DELETE_BATCH`] keys; returns the keys the store refused.
    fn delete(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Result<Vec<DeleteFailure>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_at_once_fill_the_byte_budget() {
        let flight = InFlight::new(64, PART_BYTES_IN_FLIGHT);
        assert_eq!(flight.parts_at_once(crate::etag::MULTIPART_THRESHOLD), 8);
        assert_eq!(flight.parts_at_once(9 * 1024 * 1024), 7);
        // A part larger than the whole budget still goes, alone.
        assert_eq!(flight.parts_at_once(PART_BYTES_IN_FLIGHT + 1), 1);
    }

    #[tokio::test]
    async fn a_part_larger_than_the_budget_goes_alone() {
        let flight = InFlight::new(4, 16 * 1024);
        let big = flight.part(5 << 30).await;
        let waiting = flight.part(1024);
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(big);
        assert!(futures::poll!(&mut waiting).is_ready());
    }

    #[tokio::test]
    async fn parts_and_single_requests_share_the_request_limit() {
        let flight = InFlight::new(2, PART_BYTES_IN_FLIGHT);
        let part = flight.part(8 << 20).await;
        let put = flight.request().await;
        let third = flight.request();
        tokio::pin!(third);
        assert!(futures::poll!(&mut third).is_pending());
        drop(part);
        assert!(futures::poll!(&mut third).is_ready());
        drop(put);
    }

    #[test]
    fn hints_name_the_fix() {
        let e = StoreError {
            operation: "PutObject",
            target: "s3://b/k".into(),
            code: Some("AccessControlListNotSupported".into()),
            message: "The bucket does not allow ACLs".into(),
        };
        assert!(e.hint().unwrap().contains("remove ACL"));
        assert_eq!(
            e.to_string(),
            "PutObject s3://b/k failed: AccessControlListNotSupported: The bucket does not allow ACLs"
        );
    }
}
