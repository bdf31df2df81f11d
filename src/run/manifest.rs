//! Reading and writing the deploy manifest; what it holds and when it is
//! trusted are `plan::manifest`'s decisions.

use crate::edge::store::{ObjectStore, StoreError};
use crate::model::{Key, ObjectSettings, RemoteObject, Upload};
use crate::plan::manifest::{self, Manifest};

use crate::stop::Stop;

use super::events::{Event, Sink};

/// Takes the manifest out of the listing and reads it; `None` when there is
/// none or it cannot be read (then every key falls back to HeadObject).
pub async fn load<S: ObjectStore, E: Sink>(
    store: &S,
    key: &Key,
    remote: &mut Vec<RemoteObject>,
    sink: &E,
) -> Result<Option<Manifest>, StoreError> {
    if !manifest::hide(remote, key) {
        return Ok(None);
    }
    let read = store.get(key).await?.and_then(|b| Manifest::parse(&b));
    if read.is_none() {
        sink.event(&Event::ManifestUnreadable { key });
    }
    Ok(read)
}

/// Writes the manifest, last, after every upload and delete succeeded.
pub async fn save<S: ObjectStore, E: Sink>(
    store: &S,
    key: &Key,
    manifest: &Manifest,
    sink: &E,
) -> Result<(), StoreError> {
    let json = manifest.to_json();
    let file = tempfile::NamedTempFile::new().and_then(|mut f| {
        std::io::Write::write_all(&mut f, &json)?;
        Ok(f)
    });
    let file = file.map_err(|e| StoreError {
        operation: "writing",
        target: "the deploy manifest".into(),
        code: None,
        message: e.to_string(),
    })?;
    let upload = Upload {
        key: key.clone(),
        path: file.path().to_path_buf(),
        size: json.len() as u64,
        content_type: "application/json".into(),
        settings: ObjectSettings {
            cache_control: Some("no-store".into()),
            ..ObjectSettings::default()
        },
    };
    // Written after every other write: a stop has been checked by then.
    store.put(&upload, &Stop::never()).await?;
    sink.event(&Event::ManifestWritten {
        key,
        entries: manifest.objects.len(),
    });
    Ok(())
}
