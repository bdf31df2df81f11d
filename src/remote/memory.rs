//! In-memory stores for unit tests: a bucket in a map, and a wrapper that
//! fails chosen calls, so the executor's failure rules run without a network.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use super::{
    DeleteFailure, MULTIPART_THRESHOLD, ObjectStore, RemoteObject, StoreError, Upload, part_size,
};
use crate::local::etag;
use crate::manifest::Headers;

#[derive(Default)]
pub struct MemoryStore {
    pub objects: Mutex<BTreeMap<String, (RemoteObject, Upload)>>,
    /// Every write, in order, as `PUT key` / `DELETE key`.
    pub log: Mutex<Vec<String>>,
}

impl MemoryStore {
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
    pub fn writes(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl ObjectStore for MemoryStore {
    async fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, StoreError> {
        let start = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(self
            .objects
            .lock()
            .unwrap()
            .values()
            .filter(|(o, _)| o.key.starts_with(&start))
            .map(|(o, _)| o.clone())
            .collect())
    }

    async fn first_part_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .filter(|(o, _)| o.size >= MULTIPART_THRESHOLD)
            .map(|(o, _)| part_size(o.size).min(o.size)))
    }

    async fn put(&self, upload: &Upload) -> Result<String, StoreError> {
        let parts = (upload.size >= MULTIPART_THRESHOLD).then(|| part_size(upload.size));
        let etag = etag(&upload.path, parts).map_err(|e| StoreError {
            operation: "reading",
            target: upload.path.display().to_string(),
            code: None,
            message: e.to_string(),
        })?;
        let object = RemoteObject {
            key: upload.key.clone(),
            size: upload.size,
            etag: etag.clone(),
        };
        self.log.lock().unwrap().push(format!("PUT {}", upload.key));
        self.objects
            .lock()
            .unwrap()
            .insert(upload.key.clone(), (object, upload.clone()));
        Ok(etag)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .get(key)
            .map(|(_, u)| std::fs::read(&u.path).unwrap_or_default()))
    }

    async fn headers(&self, key: &str) -> Result<Option<Headers>, StoreError> {
        self.log.lock().unwrap().push(format!("HEAD {key}"));
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .get(key)
            .map(|(_, u)| Headers::of(&u.content_type, &u.settings)))
    }

    async fn copy_in_place(&self, upload: &Upload) -> Result<String, StoreError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("COPY {}", upload.key));
        let mut objects = self.objects.lock().unwrap();
        let (object, stored) = objects
            .get_mut(&upload.key)
            .expect("copy of an existing object");
        stored.content_type = upload.content_type.clone();
        stored.settings = upload.settings.clone();
        Ok(object.etag.clone())
    }

    async fn delete(&self, keys: &[String]) -> Result<Vec<DeleteFailure>, StoreError> {
        assert!(
            keys.len() <= 1000,
            "a DeleteObjects batch holds at most 1,000 keys"
        );
        for key in keys {
            self.log.lock().unwrap().push(format!("DELETE {key}"));
            self.objects.lock().unwrap().remove(key);
        }
        Ok(Vec::new())
    }
}

/// Wraps a store and fails every `put` of the keys in `fail_puts`.
pub struct FaultyStore<S> {
    pub inner: S,
    pub fail_puts: HashSet<String>,
}

impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn first_part_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.inner.first_part_size(key).await
    }
    async fn put(&self, upload: &Upload) -> Result<String, StoreError> {
        if self.fail_puts.contains(&upload.key) {
            return Err(StoreError {
                operation: "PutObject",
                target: upload.key.clone(),
                code: Some("InternalError".into()),
                message: "injected fault".into(),
            });
        }
        self.inner.put(upload).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn headers(&self, key: &str) -> Result<Option<Headers>, StoreError> {
        self.inner.headers(key).await
    }
    async fn copy_in_place(&self, upload: &Upload) -> Result<String, StoreError> {
        self.inner.copy_in_place(upload).await
    }
    async fn delete(&self, keys: &[String]) -> Result<Vec<DeleteFailure>, StoreError> {
        self.inner.delete(keys).await
    }
}
