//! Reading and writing the deploy manifest; what it holds and when it is
//! trusted are `plan::manifest`'s decisions.

use std::time::Instant;

use crate::edge::store::{ObjectStore, StoreError};
use crate::model::{Location, ObjectSettings, Prefix, RemoteObject};
use crate::plan::manifest::{Manifest, Previous, Read, SALT_BYTES, Salt};

use super::events::{Event, Sink};

/// Reads the manifest at `at`. `state` holds the state objects the listing
/// of `prefix` showed: when the manifest would be among them and is not,
/// there is none, and no request is made. `None` when there is none, it
/// cannot be read, or it belongs to another destination (then every key
/// falls back to HeadObject, and the next write replaces it). A version 1
/// manifest comes back indexed under a new salt, to be rewritten.
pub async fn load<S: ObjectStore, E: Sink>(
    store: &S,
    at: &Location,
    prefix: &Prefix,
    state: &[RemoteObject],
    destination: &str,
    sink: &E,
) -> Result<Option<Previous>, StoreError> {
    let listed = at.bucket.is_none() && prefix.contains(&at.key);
    if listed && !state.iter().any(|s| s.key == at.key) {
        return Ok(None);
    }
    let Some(fetched) = store.get(at).await? else {
        return Ok(None);
    };
    Ok(match Manifest::read(&fetched.body, destination) {
        Read::Current(manifest) => Some(Previous {
            manifest,
            last_modified: fetched.last_modified,
            clear_text: false,
        }),
        Read::ClearText(entries) => {
            sink.event(&Event::ManifestInClearText { at });
            Some(Previous::migrate(
                entries,
                fresh_salt()?,
                destination,
                fetched.last_modified,
            ))
        }
        Read::OtherDestination => {
            sink.event(&Event::ManifestOfAnotherDestination { at });
            None
        }
        Read::Unreadable => {
            sink.event(&Event::ManifestUnreadable { at });
            None
        }
    })
}

/// A new random salt, from the operating system's generator.
pub fn fresh_salt() -> Result<Salt, StoreError> {
    let mut bytes = [0u8; SALT_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| StoreError {
        operation: "generating",
        target: "the deploy manifest's salt".into(),
        code: None,
        message: e.to_string(),
    })?;
    Ok(Salt::new(bytes))
}

/// Writes the manifest, last, after every upload and delete succeeded, and
/// no sooner than one clock step of the store (a second on S3) after
/// `settled`, the end of the deploy's last request: every object it
/// vouches for is then stamped in an earlier second than the manifest
/// itself, which is what [`Previous::trusted`] asks.
pub async fn save<S: ObjectStore, E: Sink>(
    store: &S,
    at: &Location,
    manifest: &Manifest,
    settled: Instant,
    sink: &E,
) -> Result<(), StoreError> {
    tokio::time::sleep_until((settled + store.clock_resolution()).into()).await;
    let settings = ObjectSettings {
        cache_control: Some("no-store".into()),
        ..ObjectSettings::default()
    };
    store
        .put_bytes(at, manifest.to_json(), "application/json", &settings)
        .await?;
    sink.event(&Event::ManifestWritten {
        at,
        entries: manifest.len(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_are_random() {
        assert_ne!(fresh_salt().unwrap(), fresh_salt().unwrap());
    }
}
