//! Reading and writing the deploy manifest; what it holds and when it is
//! trusted are `plan::manifest`'s decisions.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::edge::store::{Body, Fetched, ObjectStore, StoreError};
use crate::model::{Location, ObjectSettings, Prefix, RemoteObject};
use crate::plan::manifest::{Manifest, Previous, Read, SALT_BYTES, Salt};

use super::events::{Event, LastWrites, Sink};

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

/// Bytes of the manifest fetched alongside the listing, in its first
/// GetObject: a manifest of up to about 100,000 entries (41 bytes each,
/// compressed) costs no round trip of its own. A larger one is read on,
/// in a second GetObject once the listing's keys are let go, and parsed as
/// it arrives: held whole beside the listing, a million entries took
/// 41 MB at the deploy's peak (`tests::scale`).
pub const FIRST_BYTES: u64 = 4 << 20;

/// The manifest [`found`] found, read (the rest of it fetched from `store`
/// when the first GetObject did not hold it all): `None` when it cannot be
/// read or belongs to another destination (then every key falls back to
/// HeadObject, and the next write replaces it). A version 1 manifest comes
/// back indexed under a new salt, to be rewritten. `listed` objects are
/// about as many entries as it holds. Errors: the rest's GetObject or its
/// connection failed, or the manifest was replaced in between (another
/// deploy to the same destination).
pub async fn read<S: ObjectStore, E: Sink>(
    store: &S,
    fetched: Fetched,
    at: &Location,
    destination: &str,
    listed: usize,
    sink: &E,
) -> Result<Option<Previous>, StoreError> {
    let last_modified = fetched.last_modified;
    let read = parse(store, fetched, at, destination, listed).await?;
    Ok(match read {
        Read::Current(manifest) => {
            let previous = Previous {
                manifest,
                last_modified,
                clear_text: false,
            };
            let stored_after = previous.stored_after().unwrap_or(0);
            if stored_after > PUT_BACK {
                sink.event(&Event::ManifestPutBack {
                    at,
                    seconds: stored_after,
                });
            } else if previous.written_ahead() {
                sink.event(&Event::ManifestWrittenAhead {
                    at,
                    seconds: -stored_after,
                });
            }
            Some(previous)
        }
        Read::ClearText(entries) => {
            sink.event(&Event::ManifestInClearText { at });
            Some(Previous::migrate(
                entries,
                fresh_salt()?,
                destination,
                last_modified,
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

/// How many times the rest of a manifest is read when its connection
/// breaks mid-body: each read is a new GetObject (with the SDK's own
/// attempts), and the SDK retries no body once it has begun.
const BODY_ATTEMPTS: usize = 3;

/// [`read`]'s parse of `fetched` and the rest of its object, read again
/// from where `fetched` stopped when the connection breaks.
async fn parse<S: ObjectStore>(
    store: &S,
    fetched: Fetched,
    at: &Location,
    destination: &str,
    listed: usize,
) -> Result<Read, StoreError> {
    let whole = fetched.is_whole();
    let from = fetched.head.len() as u64;
    let head: std::sync::Arc<[u8]> = fetched.head.into();
    let mut attempt = 1;
    loop {
        let head = std::io::Cursor::new(head.clone());
        let body: Body = if whole {
            Box::new(head)
        } else {
            let rest = store.get_rest(at, from, &fetched.etag).await;
            Box::new(std::io::Read::chain(
                head,
                rest.map_err(|e| replaced(e, at))?,
            ))
        };
        let destination = destination.to_owned();
        // The body arrives as it is parsed: a blocking read, on a thread
        // of its own.
        let read =
            tokio::task::spawn_blocking(move || Manifest::read_from(body, &destination, listed));
        match read.await.expect("reading the manifest does not panic") {
            Ok(read) => return Ok(read),
            Err(_) if attempt < BODY_ATTEMPTS => attempt += 1,
            Err(e) => {
                return Err(StoreError {
                    operation: "GetObject",
                    target: at.to_string(),
                    code: Some("Interrupted".into()),
                    message: format!(
                        "the connection broke while the deploy manifest was read, {attempt} times ({e}); nothing was written: run the deploy again"
                    ),
                });
            }
        }
    }
}

/// The rest's GetObject refused because the manifest changed since its
/// first bytes were read, said so.
fn replaced(e: StoreError, at: &Location) -> StoreError {
    match e.code.as_deref() {
        Some("PreconditionFailed" | "NoSuchKey") => StoreError {
            message: format!(
                "the deploy manifest {at} was replaced or deleted while this deploy read it: another deploy to the same destination ran at the same time; let it finish, then run this one again"
            ),
            ..e
        },
        _ => e,
    }
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

/// How the deploy's writes ended, for the manifest that follows them.
#[derive(Debug, Default)]
pub struct Settled {
    pub writes: LastWrites,
    /// How many of them the next run may read with HeadObject rather than
    /// wait for the clock now: one round of requests (CONCURRENCY), or none.
    pub head_budget: usize,
}

/// Entries past which a manifest waits for the clock whatever the deploy
/// wrote: about 1.9 MB of JSON, which the next run would rewrite after
/// reading the few objects' headers again, costing more than the wait.
pub const SMALL_MANIFEST: usize = 20_000;

/// [`Settled::head_budget`] of a deploy with `concurrency` requests in
/// flight that left `excluded` files and objects out (filters, `ignore`
/// rules) and whose manifest has `entries`: one round of HeadObject calls,
/// or none when the deploy left keys out (the next deploy may be the other
/// pass of a two-pass deploy, which drops the entries it cannot vouch for
/// outside its scope) or the manifest is large.
pub fn head_budget(concurrency: usize, excluded: usize, entries: usize) -> usize {
    if excluded == 0 && entries <= SMALL_MANIFEST {
        concurrency
    } else {
        0
    }
}

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

/// How long before `now` (since the Unix epoch) a write must have ended
/// to be stamped in an earlier clock step of the store (`resolution`: a
/// second on S3) than a write made now: since the step began, plus
/// [`CLOCK_MARGIN`]. `None`: every write has its own step.
fn step_began(now: Duration, resolution: Duration) -> Option<Duration> {
    if resolution.is_zero() {
        return None;
    }
    let step = resolution.as_nanos();
    let began = Duration::from_nanos(u64::try_from(now.as_nanos() / step * step).unwrap_or(0));
    Some(now.saturating_sub(began) + CLOCK_MARGIN)
}

/// Writes the manifest, last, after every upload and delete succeeded.
/// [`Previous::trusted`] never trusts the headers of an object stamped in
/// the manifest's clock step (a second on S3) or later: it may have been
/// written after the manifest (a killed run of ours, another tool). So
/// when more of the deploy's uploads and copies than one round of
/// HeadObject calls (`settled.head_budget`) ended in the step a write now
/// would be stamped in, the manifest waits for the next step: every object
/// it vouches for is then stamped earlier, and the next run trusts them
/// all without a HeadObject (the deletes, the hashing of what was uploaded
/// and the invalidation happen inside the wait). With that few or none,
/// it is written at once: a wait of half a second on average saved now,
/// for at most one round of HeadObject calls on the next run. A clock
/// that disagrees with S3's costs HeadObject calls, never a wrong skip.
pub async fn save<S: ObjectStore, E: Sink>(
    store: &S,
    at: &Location,
    mut manifest: Manifest,
    settled: &Settled,
    sink: &E,
) -> Result<(), StoreError> {
    if let Some(last) = settled.writes.last() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let resolution = store.clock_resolution();
        // An instant the clock cannot name counts as sharing: then it waits.
        let sharing = step_began(now, resolution).map_or(0, |ago| {
            let from = Instant::now().checked_sub(ago);
            from.map_or(usize::MAX, |from| settled.writes.since(from))
        });
        if sharing > settled.head_budget {
            let settled_at = now.saturating_sub(last.elapsed());
            tokio::time::sleep(until_next_step(settled_at, now, resolution)).await;
        }
    }
    manifest.stamp(store.now());
    let settings = ObjectSettings {
        cache_control: Some("no-store".into()),
        content_encoding: Some("gzip".into()),
        ..ObjectSettings::default()
    };
    store
        .put_bytes(at, manifest.to_stored(), "application/json", &settings)
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
    use crate::edge::failure::{FailureStore, Op};
    use crate::edge::memory::MemoryStore;
    use crate::model::{ETag, Key, ManifestEntry};
    use crate::plan::manifest::Salt;
    use crate::run::events::Listeners;

    const DESTINATION: &str = "s3://bucket/site/";

    /// A manifest of `entries` entries, its stored bytes at `at` in `store`.
    async fn stored(store: &MemoryStore, at: &Location, entries: usize, salt: u8) -> Manifest {
        let keys: Vec<String> = (0..entries).map(|i| format!("site/page{i}.html")).collect();
        let entries = keys.iter().zip(0u32..).map(|(key, i)| {
            let etag = ETag::new(&format!("{:032x}", u128::from(i) << 64 | u128::from(salt)));
            let headers =
                crate::model::Headers::of("text/html", &ObjectSettings::default()).digest();
            let entry = ManifestEntry::new(etag.clone(), etag, None, headers);
            (key.as_str(), entry)
        });
        let manifest = Manifest::with_entries(Salt::new([salt; SALT_BYTES]), DESTINATION, entries);
        let settings = ObjectSettings::default();
        store
            .put_bytes(at, manifest.to_stored(), "application/json", &settings)
            .await
            .unwrap();
        manifest
    }

    fn manifest_at() -> Location {
        let key = format!("site/{}", crate::plan::manifest::DEFAULT_KEY);
        Location::here(Key::new(key.as_str()))
    }

    async fn read_back<S: ObjectStore>(
        store: &S,
        fetched: Fetched,
        at: &Location,
    ) -> Result<Option<Previous>, StoreError> {
        read(store, fetched, at, DESTINATION, 0, &Listeners(vec![])).await
    }

    /// A manifest larger than the first GetObject's range is read on in a
    /// second, from where the first stopped, and reads as a whole one does.
    #[tokio::test]
    async fn a_manifest_past_the_first_bytes_is_read_on_in_a_second_get() {
        let at = manifest_at();
        let inner = MemoryStore::default();
        let written = stored(&inner, &at, 2_000, 1).await;
        let store = FailureStore::new(inner, |_: &Op| None);
        let first = 1_000;
        let fetched = store.get(&at, first).await.unwrap().unwrap();
        assert_eq!(fetched.head.len(), 1_000);
        assert!(fetched.size > 10_000, "{} bytes", fetched.size);
        let previous = read_back(&store, fetched, &at).await.unwrap().unwrap();
        assert_eq!(previous.manifest, written);
        assert_eq!(store.calls("GetObject"), 2);

        let whole = store.get(&at, FIRST_BYTES).await.unwrap().unwrap();
        assert!(whole.is_whole());
        let previous = read_back(&store, whole, &at).await.unwrap().unwrap();
        assert_eq!(previous.manifest, written);
        assert_eq!(
            store.calls("GetObject"),
            3,
            "a whole one takes one GetObject"
        );
    }

    /// A connection that breaks mid-body is read again, from where the
    /// first GetObject stopped, up to [`BODY_ATTEMPTS`] times; past them the
    /// deploy fails and says what broke, not that S3 could not be reached.
    #[tokio::test]
    async fn a_body_cut_mid_way_is_read_again_and_fails_only_when_it_keeps_breaking() {
        use std::sync::atomic::Ordering::SeqCst;
        let at = manifest_at();
        let inner = MemoryStore::default();
        let written = stored(&inner, &at, 2_000, 1).await;
        let store = FailureStore::new(inner, |_: &Op| None);
        store.cut_bodies.store(BODY_ATTEMPTS - 1, SeqCst);
        let fetched = store.get(&at, 1_000).await.unwrap().unwrap();
        let previous = read_back(&store, fetched, &at).await.unwrap().unwrap();
        assert_eq!(previous.manifest, written);
        assert_eq!(store.calls("GetObject"), 1 + BODY_ATTEMPTS);

        store.cut_bodies.store(BODY_ATTEMPTS, SeqCst);
        let fetched = store.get(&at, 1_000).await.unwrap().unwrap();
        let error = read_back(&store, fetched, &at).await.unwrap_err();
        assert_eq!(error.code.as_deref(), Some("Interrupted"));
        assert!(
            error.message.contains("run the deploy again"),
            "{}",
            error.message
        );
    }

    /// Replaced between the two GetObjects (another deploy wrote its own),
    /// the manifest is neither mixed from two objects nor taken as
    /// unreadable: the deploy stops and says why.
    #[tokio::test]
    async fn a_manifest_replaced_between_its_two_reads_stops_the_deploy_and_says_why() {
        let at = manifest_at();
        let store = MemoryStore::default();
        stored(&store, &at, 2_000, 1).await;
        let fetched = store.get(&at, 1_000).await.unwrap().unwrap();
        stored(&store, &at, 2_000, 2).await;
        let error = read_back(&store, fetched, &at).await.unwrap_err();
        assert_eq!(error.code.as_deref(), Some("PreconditionFailed"));
        assert!(
            error
                .message
                .contains("another deploy to the same destination"),
            "{}",
            error.message
        );
    }

    /// A failure of the second GetObject is the deploy's failure, not a
    /// manifest to ignore (which would cost a HeadObject per object).
    #[tokio::test]
    async fn a_failed_second_get_fails_the_deploy() {
        let at = manifest_at();
        let inner = MemoryStore::default();
        stored(&inner, &at, 2_000, 1).await;
        let first = std::sync::atomic::AtomicBool::new(true);
        let store = FailureStore::new(inner, |op: &Op| {
            let later = !first.swap(false, std::sync::atomic::Ordering::SeqCst);
            later.then(|| op.internal_error())
        });
        let fetched = store.get(&at, 1_000).await.unwrap().unwrap();
        let error = read_back(&store, fetched, &at).await.unwrap_err();
        assert_eq!(error.code.as_deref(), Some("InternalError"));
    }

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
    fn writes_share_the_step_since_it_began_and_the_margin_before() {
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        assert_eq!(step_began(ms(10_300), s(1)), Some(ms(400)));
        assert_eq!(step_began(ms(10_000), s(1)), Some(ms(100)));
        assert_eq!(step_began(ms(10_300), Duration::ZERO), None);
        let start = Instant::now();
        let mut writes = LastWrites::default();
        for at in [0, 100, 900, 3_000, 3_050, 3_400] {
            writes.record(start + ms(at));
        }
        assert_eq!(writes.last(), Some(start + ms(3_400)));
        assert_eq!(writes.since(start + ms(3_050)), 2);
        assert_eq!(writes.since(start + ms(3_401)), 0);
        // Ends long before the last are let go: only the last 2.5 s count.
        assert_eq!(writes.since(start), 4);
    }

    #[test]
    fn only_a_small_whole_prefix_deploy_leaves_heads_to_the_next_run() {
        assert_eq!(head_budget(128, 0, 2_000), 128);
        assert_eq!(head_budget(128, 0, SMALL_MANIFEST), 128);
        // A pass of a two-pass deploy.
        assert_eq!(head_budget(128, 1, 2_000), 0);
        // The next run would rewrite a large manifest to renew a few entries.
        assert_eq!(head_budget(128, 0, SMALL_MANIFEST + 1), 0);
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
