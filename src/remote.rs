//! Stage 3b: the bucket, behind a small trait this crate owns. The SDK types
//! stay in `remote::s3`; the planner and the executor see only these.

use std::future::Future;
use std::path::PathBuf;

use crate::config::ObjectSettings;
use crate::manifest::Headers;

#[cfg(test)]
pub mod memory;
pub mod s3;

/// Files at or above this size are uploaded in parts. 8 MiB is also aws-cli's
/// threshold and part size, so objects it uploaded compare without a HeadObject.
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// S3 allows at most this many parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// The part size this pipe uses for a file of `size` bytes: 8 MiB, grown in
/// whole MiB only when 10,000 parts would not hold the file.
pub fn part_size(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let min = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    min.max(MULTIPART_THRESHOLD)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub key: String,
    pub size: u64,
    /// The ETag without its quotes.
    pub etag: String,
}

/// One object to write: its body streamed from `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    pub content_type: String,
    pub settings: ObjectSettings,
}

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
            "Unreachable" => {
                "the S3 endpoint could not be reached: check the network, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL"
            }
            _ => return None,
        })
    }
}

/// A failed key of a batch delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// What the deploy needs from a bucket. Implemented by the real S3 client and,
/// in tests, by an in-memory store and a fault-injecting wrapper.
pub trait ObjectStore: Sync {
    /// Every object whose key starts with `prefix/` (every object when `prefix` is empty).
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<RemoteObject>, StoreError>> + Send;

    /// The size of part 1 of a multipart object, to recompute its ETag locally.
    fn first_part_size(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Writes one object, in parts of [`part_size`] when it reaches
    /// [`MULTIPART_THRESHOLD`]; returns the ETag S3 gave it, unquoted.
    fn put(&self, upload: &Upload) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// An object's bytes (for the small deploy manifest); `None` if absent.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// The headers an object is served with; `None` if absent.
    fn headers(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Headers>, StoreError>> + Send;

    /// Replaces an object's headers without re-uploading it (CopyObject onto
    /// itself, MetadataDirective=REPLACE); returns the new ETag.
    fn copy_in_place(
        &self,
        upload: &Upload,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Deletes up to 1,000 keys; returns the keys the store refused.
    fn delete(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<DeleteFailure>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_only_past_ten_thousand_parts() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(0), 8 * MIB);
        assert_eq!(part_size(80_000 * MIB), 8 * MIB);
        assert_eq!(part_size(80_000 * MIB + 1), 9 * MIB);
        let five_tib = 5 * 1024 * 1024 * MIB;
        assert!(five_tib.div_ceil(part_size(five_tib)) <= MAX_PARTS);
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
