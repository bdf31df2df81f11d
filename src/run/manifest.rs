//! Reading and writing the deploy manifest; what it holds and when it is
//! trusted are `plan::manifest`'s decisions.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::edge::store::{Fetched, ObjectStore, StoreError};
use crate::model::{Location, ObjectSettings, Prefix, RemoteObject};
use crate::plan::manifest::{Manifest, Previous, Read, SALT_BYTES, Salt};

use super::events::{Event, Sink};

/// What GetObject of the manifest at `at` returned (`fetched`: it is
/// requested alongside the listing, so a small change costs no round trip
/// for it), when it matters. `state` holds the state objects the listing
/// of `prefix` showed: when the manifest would be among them and is not,
/// there is none, and what the GetObject said (even an error: a role
/// without s3:GetObject) does not matter.
pub fn found(
    fetched: Result<Option<Fetched>, StoreError>,
    at: &Location,
    prefix: &Prefix,
    state: &[RemoteObject],
) -> Result<Option<Fetched>, StoreError> {
    let listed = at.bucket.is_none() && prefix.contains(&at.key);
    if listed && !state.iter().any(|s| s.key == at.key) {
        return Ok(None);
    }
    fetched
}

/// The manifest [`found`] found, read: `None` when it cannot be read or
/// belongs to another destination (then every key falls back to
/// HeadObject, and the next write replaces it). A version 1 manifest comes
/// back indexed under a new salt, to be rewritten.
pub fn read<E: Sink>(
    fetched: Fetched,
    at: &Location,
    destination: &str,
    sink: &E,
) -> Result<Option<Previous>, StoreError> {
    Ok(match Manifest::read(&fetched.body, destination) {
        Read::Current(manifest) => {
            let put_back = manifest
                .written()
                .map_or(0, |w| fetched.last_modified.saturating_sub(w));
            if put_back > PUT_BACK {
                sink.event(&Event::ManifestPutBack {
                    at,
                    seconds: put_back,
                });
            }
            Some(Previous {
                manifest,
                last_modified: fetched.last_modified,
                clear_text: false,
            })
        }
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

/// Seconds between the time a manifest records and its LastModified past
/// which the run says so: more than the upload of the largest manifest
/// takes, so only a copy put back later (or a clock far behind S3's) shows.
const PUT_BACK: i64 = 60;

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

/// How far past the store's next clock step the manifest is written: S3's
/// clock and ours agree within this when both keep NTP time.
const CLOCK_MARGIN: Duration = Duration::from_millis(100);

/// How long to wait, at `now`, so that a write lands in a later clock step
/// of the store (`resolution`: a second on S3) than one that ended at
/// `settled` (both since the Unix epoch): until the next step after
/// `settled`, plus [`CLOCK_MARGIN`].
fn until_next_step(settled: Duration, now: Duration, resolution: Duration) -> Duration {
    if resolution.is_zero() {
        return Duration::ZERO;
    }
    let step = resolution.as_nanos();
    let next = (settled.as_nanos() / step + 1) * step;
    let next = Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX)) + CLOCK_MARGIN;
    next.saturating_sub(now)
}

/// Writes the manifest, last, after every upload and delete succeeded, in
/// a later clock step of the store (a second on S3) than `settled`, the
/// end of the deploy's last upload or copy (`None`: it wrote nothing, so
/// nothing to wait for; the deletes, the hashing of what was uploaded and
/// the invalidation all happen inside the wait): every object it vouches for is then
/// stamped in an earlier second than the manifest itself, so the next run
/// trusts them without a HeadObject. [`Previous::trusted`] never trusts an
/// object stamped in the manifest's second or later, so a clock that
/// disagrees with S3's costs HeadObject calls, never a wrong skip.
pub async fn save<S: ObjectStore, E: Sink>(
    store: &S,
    at: &Location,
    mut manifest: Manifest,
    settled: Option<Instant>,
    sink: &E,
) -> Result<(), StoreError> {
    if let Some(settled) = settled {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let settled_at = now.saturating_sub(settled.elapsed());
        tokio::time::sleep(until_next_step(settled_at, now, store.clock_resolution())).await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    manifest.stamp(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
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
    fn the_manifest_waits_for_the_next_second_and_no_longer() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        // The last write ended at 10.3 s: the manifest goes at 11.1 s.
        assert_eq!(until_next_step(ms(10_300), ms(10_400), s(1)), ms(700));
        assert_eq!(
            until_next_step(ms(10_300), ms(11_500), s(1)),
            Duration::ZERO
        );
        assert_eq!(until_next_step(ms(10_000), ms(10_000), s(1)), ms(1100));
        assert_eq!(
            until_next_step(ms(10_300), ms(10_400), Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn the_manifest_read_alongside_the_listing_counts_only_if_listed() {
        let at = Location {
            bucket: None,
            key: "site/.s3-cloudfront-deploy-manifest.json".into(),
        };
        let prefix = Prefix::new("site");
        let denied = || {
            Err(StoreError {
                operation: "GetObject",
                target: at.key.to_string(),
                code: Some("AccessDenied".into()),
                message: "Access Denied".into(),
            })
        };
        // Not in the listing: there is none, whatever GetObject said.
        assert!(found(denied(), &at, &prefix, &[]).unwrap().is_none());
        // Listed: GetObject's error is the deploy's.
        let listed = RemoteObject {
            key: at.key.clone(),
            size: 10,
            etag: crate::model::ETag::new("\"e\""),
            last_modified: 0,
        };
        let failed = found(denied(), &at, &prefix, &[listed]);
        assert_eq!(failed.unwrap_err().code.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn salts_are_random() {
        assert_ne!(fresh_salt().unwrap(), fresh_salt().unwrap());
    }
}
