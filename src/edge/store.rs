//! The bucket, behind a small trait this crate owns. The SDK types stay in
//! `edge::s3`; the rest of the crate sees only these.

use std::future::Future;
use std::time::Duration;

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
                 (s3:PutObjectAcl with ACL, s3:DeleteObject with DELETE_FLAG) on its objects"
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

/// A small object read whole (the deploy manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// LastModified, in seconds since the Unix epoch.
    pub last_modified: i64,
}

/// DeleteObjects takes at most this many keys (S3's DeleteObjects reference).
pub const DELETE_BATCH: usize = 1000;

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
    /// of [`crate::etag::part_size`]; returns the ETag S3 gave it. When
    /// `stop` fires it returns [`StoreError::stopped`] promptly and leaves
    /// no incomplete multipart upload behind (one whose creation was under
    /// way is aborted as soon as its id is known).
    fn put(
        &self,
        upload: &Upload,
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

    /// A small object's bytes and LastModified (the deploy manifest, in
    /// this bucket or another); `None` if absent.
    fn get(
        &self,
        at: &Location,
    ) -> impl Future<Output = Result<Option<Fetched>, StoreError>> + Send;

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
