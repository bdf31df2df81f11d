//! The evidence the planner asked for: local hashes computed the way each
//! remote ETag was (the only reads of file contents before the upload), and
//! header digests read with HeadObject.

use futures::{StreamExt, TryStreamExt};

use crate::edge::store::{ObjectStore, StoreError};
use crate::etag::{self, HashNeed, Hashed};
use crate::model::{ByKey, HeadersDigest, Key, LocalFile};

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
) -> Result<ByKey<Hashed>, CompareError> {
    // Hashing is CPU- and disk-bound: one blocking task per core. HeadObject
    // calls for foreign part sizes overlap with it.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    futures::stream::iter(needs)
        .map(|(file, need)| async move {
            let parts = match need {
                HashNeed::Md5 => None,
                HashNeed::Parts(size) => Some(size),
                // A first part of 0 bytes gives no hash to compare: uploaded.
                HashNeed::PartsOfRemote => match store.first_part_size(&file.key).await? {
                    Some(size) if size > 0 => Some(size),
                    _ => return Ok(None),
                },
            };
            let path = file.path();
            let hashed = tokio::task::spawn_blocking(move || etag::of_file(&path, parts))
                .await
                .expect("hashing does not panic");
            let etag = hashed.map_err(|source| CompareError::Read {
                path: file.path(),
                source,
            })?;
            Ok(Some((
                file.key.clone(),
                Hashed {
                    etag,
                    part_size: parts.and_then(std::num::NonZeroU64::new),
                },
            )))
        })
        .buffer_unordered(workers)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect::<Vec<_>>()
        .await
        .map(ByKey::from)
}

/// Of `needs`, those `ready` holds hashed the way each asks: moved out of
/// `ready` (one copy of each hash in memory) and returned, with the needs
/// left to compute. One merge walk of both in key order, in place: a map
/// of the needs and a second vector of the hashes cost 72 bytes a file
/// at the peak.
pub fn take_ready<'a>(
    mut needs: Vec<(&'a LocalFile, HashNeed)>,
    ready: &mut ByKey<Hashed>,
) -> (ByKey<Hashed>, Vec<(&'a LocalFile, HashNeed)>) {
    // The planner's needs come in key order; others are put in it.
    if !needs.is_sorted_by(|a, b| a.0.key <= b.0.key) {
        needs.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    }
    let mut wanted = needs.iter().peekable();
    let moved = ready.take_where(|key, hashed| {
        while wanted.next_if(|(f, _)| f.key < *key).is_some() {}
        wanted
            .peek()
            .is_some_and(|(f, need)| f.key == *key && hashed.answers(*need))
    });
    needs.retain(|(f, need)| !moved.get(&f.key).is_some_and(|h| h.answers(*need)));
    needs.shrink_to_fit();
    (moved, needs)
}

/// The header digests of `keys`, read with one HeadObject each.
pub async fn remote_headers<S: ObjectStore>(
    store: &S,
    keys: Vec<Key>,
    concurrency: usize,
) -> Result<ByKey<HeadersDigest>, StoreError> {
    futures::stream::iter(keys)
        .map(|key| async move {
            let headers = store.headers(&key).await?;
            Ok(headers.map(|h| (key, h.digest())))
        })
        .buffer_unordered(concurrency)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect::<Vec<_>>()
        .await
        .map(ByKey::from)
}
