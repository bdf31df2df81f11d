//! The real bucket: [`ObjectStore`] over the AWS SDK for Rust.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective,
    ObjectCannedAcl, ObjectIdentifier, ServerSideEncryption, StorageClass,
};
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::etag::{in_parts, part_size};
use crate::model::{
    ETag, Headers, IncompleteUpload, Key, Location, ObjectSettings, Prefix, RemoteObject, Upload,
};
use crate::stop::Stop;

use super::listing::{self, Page, Query};
use super::store::{Body, DeleteFailure, Fetched, InFlight, ObjectStore, StoreError};

/// PutObject and CreateMultipartUpload take the same headers through
/// different builder types.
macro_rules! with_settings {
    ($request:expr, $upload:expr) => {{
        let s = &$upload.settings;
        $request
            .content_type(&*$upload.content_type)
            .set_cache_control(s.cache_control.clone())
            .set_content_encoding(s.content_encoding.clone())
            .set_expires(s.expires.map(DateTime::from_secs))
            .set_acl(s.acl.map(|a| ObjectCannedAcl::from(a.as_str())))
            .set_storage_class(s.storage_class.map(|c| StorageClass::from(c.as_str())))
            .set_content_language(s.content_language.clone())
            .set_content_disposition(s.content_disposition.clone())
            .set_metadata(
                (!s.metadata.is_empty()).then(|| s.metadata.clone().into_iter().collect()),
            )
            .set_server_side_encryption(s.sse.map(|e| ServerSideEncryption::from(e.as_str())))
            .set_ssekms_key_id(s.sse_kms_key_id.clone())
    }};
}

/// The headers of an object written from memory, shaped as
/// [`with_settings`] reads an [`Upload`].
struct Meta<'a> {
    content_type: &'a str,
    settings: &'a ObjectSettings,
}

pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// The store of a deploy's bucket; with none (only invalidating) a
    /// store that is never called.
    pub fn for_deploy(sdk: &aws_config::SdkConfig, deploy: Option<&crate::config::Deploy>) -> Self {
        deploy.map_or_else(
            || S3Store::new(sdk, "", false),
            |d| S3Store::new(sdk, &d.bucket, d.force_path_style),
        )
    }
}

/// How long an abort may take once a stop was requested: the run must end
/// within Bitbucket's grace period, and what is left is swept next time.
const ABORT_WITHIN: std::time::Duration = std::time::Duration::from_millis(1500);

impl S3Store {
    /// A store for `bucket`. Retries follow the SDK configuration's
    /// attempts and mode, per request: the SDK's shared retry quota (500
    /// tokens, 5 per failed retry) would give up on a deploy of thousands
    /// of requests through a few percent of 503 SlowDown, so this client
    /// has a partition of its own without one.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: &str, force_path_style: bool) -> Self {
        use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
        let partition = RetryPartition::custom("s3-cloudfront-deploy")
            .token_bucket(TokenBucket::unlimited())
            .build();
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(force_path_style)
            .retry_partition(partition)
            .build();
        S3Store {
            client: Client::from_conf(conf),
            bucket: bucket.to_string(),
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The bucket of `at`: its own, or the deploy's.
    /// GetObject of `range` (RFC 9110's `bytes=` form) of the object at `at`.
    fn get_range(
        &self,
        at: &Location,
        range: String,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        let bucket = self.bucket_of(at);
        let request = self.client.get_object().bucket(bucket).key(at.key.as_str());
        request.range(range)
    }

    fn bucket_of<'a>(&'a self, at: &'a Location) -> &'a str {
        at.bucket.as_deref().unwrap_or(&self.bucket)
    }

    async fn put_single(&self, upload: &Upload) -> Result<ETag, StoreError> {
        let fail = |e| store_error("PutObject", self.url(&upload.key), e);
        let body = ByteStream::from_path(&upload.path)
            .await
            .map_err(|e| local_read_error(upload, e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .body(body);
        let out = with_settings!(request, upload).send().await.map_err(fail)?;
        Ok(ETag::new(out.e_tag().unwrap_or_default()))
    }

    async fn put_multipart(
        &self,
        upload: &Upload,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<ETag, StoreError> {
        let stopped = |op, signal| StoreError::stopped(op, self.url(&upload.key), signal);
        let turn = flight
            .request_unless_stopped(stop)
            .await
            .map_err(|signal| stopped("CreateMultipartUpload", signal))?;
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .checksum_algorithm(ChecksumAlgorithm::Crc32);
        // A creation under way when a stop comes gets a grace: its id is
        // needed to abort it. One that takes longer is left to the sweep.
        let created = stop
            .finish_within(with_settings!(request, upload).send())
            .await
            .map_err(|signal| stopped("CreateMultipartUpload", signal))?
            .map_err(|e| store_error("CreateMultipartUpload", self.url(&upload.key), e))?;
        drop(turn);
        let incomplete = IncompleteUpload {
            key: upload.key.clone(),
            upload_id: created.upload_id().unwrap_or_default().to_string(),
            initiated: None,
        };
        // A stop that came while the upload was being created is seen here,
        // first, so that the upload is aborted before any part is sent.
        let result = match stop.requested() {
            Some(signal) => Err(stopped("CreateMultipartUpload", signal)),
            None => {
                self.upload_parts(upload, &incomplete.upload_id, flight, stop)
                    .await
            }
        };
        if result.is_err() {
            // An unfinished upload is billed until aborted; the error that
            // matters to the user is the part's, so this one is only logged.
            let aborted = tokio::time::timeout(ABORT_WITHIN, self.abort_upload(&incomplete)).await;
            match aborted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(
                    "could not abort the multipart upload of {}: {e}",
                    upload.key
                ),
                Err(_) => tracing::warn!(
                    "the abort of the multipart upload of {} took too long: a later deploy aborts it once \
                     it is older than ABORT_INCOMPLETE_UPLOADS_AFTER",
                    upload.key
                ),
            }
        }
        result
    }

    /// The parts (dropped at once on a stop: the caller aborts the upload),
    /// then their completion (given the grace: S3 may be completing it).
    async fn upload_parts(
        &self,
        upload: &Upload,
        upload_id: &str,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<ETag, StoreError> {
        let stopped = |op, signal| StoreError::stopped(op, self.url(&upload.key), signal);
        let size = part_size(upload.size);
        let count = upload.size.div_ceil(size).max(1);
        let parts = futures::stream::iter(0..count)
            .map(|i| async move {
                let number = i32::try_from(i + 1).expect("at most 10,000 parts");
                let offset = i * size;
                let length = size.min(upload.size - offset);
                let _turn = flight.part(length).await;
                let body = ByteStream::read_from()
                    .path(&upload.path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| local_read_error(upload, e))?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(upload.key.as_str())
                    .upload_id(upload_id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        store_error(
                            "UploadPart",
                            format!("{} part {number}", self.url(&upload.key)),
                            e,
                        )
                    })?;
                Ok::<_, StoreError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(String::from))
                        .set_checksum_crc32(out.checksum_crc32().map(String::from))
                        .build(),
                )
            })
            .buffer_unordered(flight.parts_at_once(size))
            .try_collect::<Vec<CompletedPart>>();
        let mut parts: Vec<CompletedPart> = tokio::select! {
            biased;
            signal = stop.wait() => return Err(stopped("UploadPart", signal)),
            parts = parts => parts?,
        };
        parts.sort_by_key(|p| p.part_number());
        let turn = flight
            .request_unless_stopped(stop)
            .await
            .map_err(|signal| stopped("CompleteMultipartUpload", signal))?;
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send();
        let out = stop
            .finish_within(complete)
            .await
            .map_err(|signal| stopped("CompleteMultipartUpload", signal))?
            .map_err(|e| store_error("CompleteMultipartUpload", self.url(&upload.key), e))?;
        drop(turn);
        Ok(ETag::new(out.e_tag().unwrap_or_default()))
    }
}

impl ObjectStore for S3Store {
    async fn list(&self, prefix: &Prefix) -> Result<Vec<RemoteObject>, StoreError> {
        let page = |q: Query| async move {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&q.prefix)
                .set_delimiter(q.delimiter.then(|| listing::DELIMITER.to_string()))
                .set_start_after(q.start_after)
                .set_continuation_token(q.token)
                .send()
                .await
                .map_err(|e| store_error("ListObjectsV2", self.url(&q.prefix), e))?;
            let objects = page
                .contents()
                .iter()
                .map(|o| RemoteObject {
                    key: Key::new(o.key().unwrap_or_default()),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: ETag::new(o.e_tag().unwrap_or_default()),
                    // Unknown reads as the latest: then no manifest entry
                    // vouches for the object's headers.
                    last_modified: o.last_modified().map_or(i64::MAX, DateTime::secs),
                })
                .collect();
            let prefixes = page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(String::from))
                .collect();
            // A truncated page without a token cannot be continued: S3
            // always sends one, and the SDK's paginator stops there too.
            let next = page
                .is_truncated()
                .unwrap_or(false)
                .then(|| page.next_continuation_token().map(String::from))
                .flatten();
            Ok(Page {
                objects,
                prefixes,
                next,
            })
        };
        listing::list(&prefix.list_prefix(), |o| o.key.as_str(), page).await
    }

    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .part_number(1)
            .send()
            .await
            .map_err(|e| store_error("HeadObject", self.url(key), e))?;
        Ok(out
            .parts_count()
            .filter(|n| *n > 0)
            .and(out.content_length())
            .map(|n| n.max(0) as u64))
    }

    async fn put(
        &self,
        upload: &Upload,
        flight: &InFlight,
        stop: &Stop,
    ) -> Result<ETag, StoreError> {
        if in_parts(upload.size) {
            return self.put_multipart(upload, flight, stop).await;
        }
        let stopped = |signal| StoreError::stopped("PutObject", self.url(&upload.key), signal);
        // A PutObject cut short creates nothing; one S3 is completing is
        // seen through, so that the report says it was done.
        let _turn = flight.request_unless_stopped(stop).await.map_err(stopped)?;
        stop.finish_within(self.put_single(upload))
            .await
            .unwrap_or_else(|signal| Err(stopped(signal)))
    }

    async fn incomplete_uploads(
        &self,
        prefix: &Prefix,
    ) -> Result<Vec<IncompleteUpload>, StoreError> {
        let list_prefix = prefix.list_prefix();
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&list_prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| store_error("ListMultipartUploads", self.url(&list_prefix), e))?;
            for u in page.uploads() {
                let key = Key::new(u.key().unwrap_or_default());
                // The listing is by prefix; this keeps `site2/` out of `site`.
                if prefix.contains(&key) {
                    found.push(IncompleteUpload {
                        key,
                        upload_id: u.upload_id().unwrap_or_default().to_string(),
                        initiated: u.initiated().map(|t| t.secs()),
                    });
                }
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(found);
            }
            key_marker = page.next_key_marker().map(String::from);
            id_marker = page.next_upload_id_marker().map(String::from);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(found);
            }
        }
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<(), StoreError> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.upload_id)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already gone: completed or aborted by someone else.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            Err(e) => Err(store_error(
                "AbortMultipartUpload",
                self.url(&upload.key),
                e,
            )),
        }
    }

    async fn get(&self, at: &Location, first: u64) -> Result<Option<Fetched>, StoreError> {
        let url = || format!("s3://{}/{}", self.bucket_of(at), at.key);
        let range = format!("bytes=0-{}", first.saturating_sub(1));
        let result = self.get_range(at, range).send().await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // Only an empty object has no byte 0 (RFC 9110, 15.5.17).
            Err(e) if e.code() == Some("InvalidRange") => {
                return Ok(Some(Fetched {
                    head: Vec::new(),
                    size: 0,
                    etag: ETag::new(""),
                    last_modified: i64::MIN,
                }));
            }
            Err(e) => return Err(store_error("GetObject", url(), e)),
        };
        // Unknown reads as the earliest: then the manifest vouches for no
        // object's headers.
        let last_modified = out.last_modified().map_or(i64::MIN, DateTime::secs);
        let etag = ETag::new(out.e_tag().unwrap_or_default());
        // `bytes 0-<last>/<size>`; a server that ignores the range sends
        // the whole object without one.
        let size = out
            .content_range()
            .and_then(|range| range.rsplit_once('/')?.1.parse::<u64>().ok());
        // Appended chunk by chunk into one buffer of the announced length:
        // collecting the chunks, then joining them, held the body twice.
        let announced = out.content_length().and_then(|n| u64::try_from(n).ok());
        let reserve = announced.unwrap_or(0).min(first);
        let mut head = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
        let mut chunks = out.body;
        while let Some(chunk) = chunks.try_next().await.map_err(|e| cut_off(url(), e))? {
            head.extend_from_slice(&chunk);
        }
        Ok(Some(Fetched {
            size: size.unwrap_or(head.len() as u64),
            head,
            etag,
            last_modified,
        }))
    }

    async fn get_rest(&self, at: &Location, from: u64, etag: &ETag) -> Result<Body, StoreError> {
        let url = format!("s3://{}/{}", self.bucket_of(at), at.key);
        let out = self
            .get_range(at, format!("bytes={from}-"))
            .if_match(format!("\"{etag}\""))
            .send()
            .await
            .map_err(|e| store_error("GetObject", url.clone(), e))?;
        // `bytes <from>-<last>/<size>`; a server that ignores the range
        // sends the whole object without one, whose first bytes are skipped.
        let start = out.content_range().map(|range| {
            let first = range.trim_start_matches("bytes ").split('-').next();
            first.and_then(|n| n.parse::<u64>().ok())
        });
        let skip = match start {
            None => from,
            Some(Some(start)) if start == from => 0,
            Some(_) => {
                return Err(StoreError {
                    operation: "GetObject",
                    target: url,
                    code: Some("InvalidRange".into()),
                    message: format!(
                        "S3 answered another range than bytes={from}-: {}",
                        out.content_range().unwrap_or_default()
                    ),
                });
            }
        };
        let body = tokio_util::io::SyncIoBridge::new(out.body.into_async_read());
        Ok(Box::new(Skipped { inner: body, skip }))
    }

    async fn put_bytes(
        &self,
        at: &Location,
        body: Vec<u8>,
        content_type: &str,
        settings: &ObjectSettings,
    ) -> Result<(), StoreError> {
        let bucket = self.bucket_of(at);
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(at.key.as_str())
            .body(ByteStream::from(body));
        let meta = Meta {
            content_type,
            settings,
        };
        with_settings!(request, meta)
            .send()
            .await
            .map_err(|e| store_error("PutObject", format!("s3://{bucket}/{}", at.key), e))?;
        Ok(())
    }

    fn clock_resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    async fn headers(&self, key: &Key) -> Result<Option<Headers>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(store_error("HeadObject", self.url(key), e)),
        };
        #[allow(deprecated)] // `expires` is the parsed header; its replacement is a string
        let expires = out.expires().map(|d| d.secs());
        Ok(Some(Headers {
            content_type: out.content_type().map(String::from),
            cache_control: out.cache_control().map(String::from),
            content_encoding: out.content_encoding().map(String::from),
            content_language: out.content_language().map(String::from),
            content_disposition: out.content_disposition().map(String::from),
            expires,
            metadata: out
                .metadata()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }))
    }

    async fn copy_in_place(&self, upload: &Upload) -> Result<ETag, StoreError> {
        // The copy source is `bucket/key`, URL-encoded except for the `/`s.
        let source = format!("{}/{}", self.bucket, encode_key(&upload.key));
        let request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace);
        let out = with_settings!(request, upload)
            .send()
            .await
            .map_err(|e| store_error("CopyObject", self.url(&upload.key), e))?;
        Ok(ETag::new(
            out.copy_object_result()
                .and_then(|r| r.e_tag())
                .unwrap_or_default(),
        ))
    }

    async fn delete(&self, keys: &[Key]) -> Result<Vec<DeleteFailure>, StoreError> {
        let fail = |e| store_error("DeleteObjects", self.url(&keys[0]), e);
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k.as_str()).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(SdkError::construction_failure(e)))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| fail(SdkError::construction_failure(e)))?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(fail)?;
        Ok(out
            .errors()
            .iter()
            .map(|e| DeleteFailure {
                key: Key::new(e.key().unwrap_or_default()),
                code: e.code().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect())
    }
}

/// What CopySource leaves unencoded: RFC 3986's unreserved characters and
/// the `/`s between the bucket and the key's folders (S3's CopyObject
/// reference: "The value must be URL-encoded").
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, COPY_SOURCE).to_string()
}

fn local_read_error(upload: &Upload, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        operation: "reading",
        target: upload.path.display().to_string(),
        code: None,
        message: format!("{e} (was the file changed or removed during the deploy?)"),
    }
}

/// A body whose first `skip` bytes are not wanted, left out as it is read.
struct Skipped<R> {
    inner: R,
    skip: u64,
}

impl<R: std::io::Read> std::io::Read for Skipped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.skip > 0 {
            let skipped =
                std::io::copy(&mut (&mut self.inner).take(self.skip), &mut std::io::sink())?;
            if skipped < self.skip {
                // Shorter than what was already read: the object changed.
                return Ok(0);
            }
            self.skip = 0;
        }
        self.inner.read(buf)
    }
}

/// A body cut off on its way: the connection, not S3, failed.
fn cut_off(target: String, e: aws_sdk_s3::primitives::ByteStreamError) -> StoreError {
    StoreError {
        operation: "GetObject",
        target,
        code: Some("Unreachable".into()),
        message: e.to_string(),
    }
}

fn store_error<E, R>(operation: &'static str, target: String, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let (code, message) = super::sdk_error::describe(&err);
    StoreError {
        operation,
        target,
        code,
        message,
    }
}
