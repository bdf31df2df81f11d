//! Between listing and planning: hash the local files whose remote object has
//! the same size, the way that object's ETag was computed. This is the only
//! stage that reads file contents before the upload.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use crate::local::{LocalFile, etag};
use crate::plan::{HashNeed, Hashed};
use crate::remote::{ObjectStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path} to hash it: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The ETag each needed file would have on S3, by key. Files whose remote
/// part size cannot be learnt are left out, and the planner uploads them.
pub async fn local_etags<S: ObjectStore>(
    store: &S,
    needs: Vec<(&LocalFile, HashNeed)>,
) -> Result<HashMap<String, Hashed>, CompareError> {
    // Hashing is CPU- and disk-bound: one blocking task per core. HeadObject
    // calls for foreign part sizes overlap with it.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    futures::stream::iter(needs)
        .map(|(file, need)| async move {
            let parts = match need {
                HashNeed::Md5 => None,
                HashNeed::Parts(size) => Some(size),
                HashNeed::PartsOfRemote => match store.first_part_size(&file.key).await? {
                    Some(size) => Some(size),
                    None => return Ok(None),
                },
            };
            let path = file.path.clone();
            let hashed = tokio::task::spawn_blocking(move || etag(&path, parts))
                .await
                .expect("hashing does not panic");
            let etag = hashed.map_err(|source| CompareError::Read {
                path: file.path.clone(),
                source,
            })?;
            Ok(Some((
                file.key.clone(),
                Hashed {
                    etag,
                    part_size: parts,
                },
            )))
        })
        .buffer_unordered(workers)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await
}

/// The header digests of `keys`, read with one HeadObject each.
pub async fn remote_headers<S: ObjectStore>(
    store: &S,
    keys: Vec<String>,
    concurrency: usize,
) -> Result<HashMap<String, String>, StoreError> {
    futures::stream::iter(keys)
        .map(|key| async move {
            let headers = store.headers(&key).await?;
            Ok(headers.map(|h| (key, crate::manifest::headers_digest(&h))))
        })
        .buffer_unordered(concurrency)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await
}

/// How an uploaded file is hashed for the manifest: as S3 computed its ETag
/// from this pipe's upload.
pub fn as_uploaded(file: &LocalFile) -> HashNeed {
    if file.size >= crate::remote::MULTIPART_THRESHOLD {
        HashNeed::Parts(crate::remote::part_size(file.size))
    } else {
        HashNeed::Md5
    }
}
