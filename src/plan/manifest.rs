//! The deploy manifest's decisions, pure: a small object recording, per
//! object the pipe wrote, the ETag S3 returned, the content hash the pipe
//! computed, the part size it used and a digest of the headers it set.
//! ListObjectsV2 shows neither headers nor (for SSE-KMS or foreign part
//! sizes) a usable hash; with the manifest a redeploy needs no HeadObject
//! for objects nobody touched since. Reading and writing it is
//! `run::manifest`'s job.
//!
//! Three rules make it safe to keep under a served prefix and true:
//! * **Private**: entries are indexed by HMAC-SHA256 of the key under a
//!   random salt stored with them, truncated to 128 bits. Testing a guessed
//!   key against it is what requesting the guessed URL does; no key, and no
//!   bucket or prefix, is written in clear.
//! * **Truthful**: an entry vouches for an object's content only while the
//!   listing shows the ETag it recorded, and for its headers only while the
//!   object's LastModified second is before the manifest's own, and no later
//!   than the time the manifest records it was written (see
//!   [`Previous::trusted`]). S3 keeps the ETag when only headers change, but
//!   not the LastModified.
//! * **Scoped**: a deploy replaces only the entries of the keys it covered;
//!   the entries of keys its filters or `ignore` rules left out are kept
//!   while they still hold (see [`next`]).
//!
//! It also holds the DELETE_GRACE marks of the keys kept with no local
//! file ([`Mark`]), indexed by the same digests.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::etag::{self, HashNeed, Hashed};
use crate::model::{
    ByKey, ETag, HeadersDigest, Key, LocalFile, ManifestEntry as Entry, RemoteObject, Trusted,
};

use super::Plan;
use super::grace::Mark;

/// How the pipe recognises its state objects: every key ending with this
/// is the pipe's, never site content. Listings drop them before anything
/// is compared, counted, deleted or invalidated (whichever key is current,
/// with MANIFEST on or off), and local files so named are not uploaded.
/// MANIFEST_KEY must end with it. A name rather than a folder or object
/// metadata, because only the key is in the listing: recognising a state
/// object costs no request.
pub const SUFFIX: &str = ".s3-cloudfront-deploy-manifest.json";
/// The manifest's name under the prefix, unless MANIFEST_KEY says otherwise.
pub const DEFAULT_KEY: &str = SUFFIX;
/// Version 1 (0.1.0) named keys in clear; version 2 indexes them by digest;
/// version 3 (0.4.0) writes each entry as an array ([`Entry`]'s JSON),
/// 40% fewer bytes to hold and to read. Versions 2 and 3 are read alike.
const VERSION: u32 = 3;
/// Bytes of the random salt (256 bits, HMAC-SHA256's key size).
pub const SALT_BYTES: usize = 32;
/// Bytes kept of each HMAC-SHA256: 128 bits, beyond any collision among
/// S3's keys.
const DIGEST_BYTES: usize = 16;
/// Seconds by which this machine's clock may run behind S3's before the
/// objects a deploy wrote fail [`Previous::trusted`]'s test against the
/// time its manifest records (and cost a HeadObject each on the next run).
/// Machines that keep NTP time agree within milliseconds; a restored
/// manifest is caught for every object rewritten more than this after it.
pub const CLOCK_TOLERANCE: i64 = 5;

/// The first bytes of a gzip stream (RFC 1952, section 2.3.1): JSON never
/// starts with them.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `key` names one of the pipe's state objects.
pub fn is_state_object(key: &str) -> bool {
    key.ends_with(SUFFIX)
}

/// Takes out of `items` those whose key names a state object, and returns
/// them (for listings: the manifests, current or former; for local files:
/// files that would overwrite one).
pub fn take_state_objects<T>(items: &mut Vec<T>, key: impl Fn(&T) -> &str) -> Vec<T> {
    // In place, in one pass (one `remove` each would cost a shift of the
    // listing per state object): what stays moves forward in order, the
    // state objects gather at the end.
    let mut kept = 0;
    for i in 0..items.len() {
        if !is_state_object(key(&items[i])) {
            items.swap(kept, i);
            kept += 1;
        }
    }
    let state = items.split_off(kept);
    items.shrink_to_fit();
    state
}

/// The random key of the manifest's digests, with HMAC's state keyed by
/// it: a digest then costs the text's hashing alone, not the key's too
/// (two of the four SHA-256 blocks of a key's digest, at every key).
#[derive(Clone)]
pub struct Salt {
    bytes: [u8; SALT_BYTES],
    /// Boxed: HMAC's state is larger than the rest of a manifest's header.
    keyed: Box<Hmac<Sha256>>,
}

impl Salt {
    pub fn new(bytes: [u8; SALT_BYTES]) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes any key size");
        Salt {
            bytes,
            keyed: Box::new(keyed),
        }
    }

    /// The digest of `text` in `domain`: HMAC-SHA256 under the salt,
    /// truncated to [`DIGEST_BYTES`]. The domain keeps a key's digest from
    /// ever equalling a destination's.
    fn digest(&self, domain: &str, text: &str) -> Digest {
        let mut mac = (*self.keyed).clone();
        mac.update(domain.as_bytes());
        mac.update(b":");
        mac.update(text.as_bytes());
        let mut digest = [0u8; DIGEST_BYTES];
        digest.copy_from_slice(&mac.finalize().into_bytes()[..DIGEST_BYTES]);
        Digest(digest)
    }

    fn key(&self, key: &str) -> Digest {
        self.digest("key", key)
    }
}

impl PartialEq for Salt {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Salt {}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Salt({})", hex::encode(self.bytes))
    }
}

/// The manifest, in its private form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    salt: Salt,
    /// Digest of the destination (`s3://bucket/prefix/`) it describes, in hex.
    destination: String,
    /// Entries by key digest.
    objects: ByDigest<Entry>,
    /// How many entries it had when read or made, kept when
    /// [`Previous::take_trusted`] lets them go.
    count: usize,
    /// DELETE_GRACE marks by key digest.
    pending: BTreeMap<Digest, Mark>,
    /// When the deploy that wrote it saved it, by its clock, in seconds
    /// since the Unix epoch (see [`Manifest::stamp`]); `None` before 0.6.0.
    written: Option<i64>,
}

/// A key's digest ([`Salt::digest`]): held as its bytes, written as hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Digest([u8; DIGEST_BYTES]);

impl Digest {
    /// The first 8 bytes, which order digests as the whole does.
    fn prefix(&self) -> [u8; 8] {
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&self.0[..8]);
        prefix
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 2 * DIGEST_BYTES];
        hex::encode_to_slice(self.0, &mut hex).expect("twice the bytes");
        serializer.serialize_str(std::str::from_utf8(&hex).expect("hex is ASCII"))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} hex digits", 2 * DIGEST_BYTES)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                let mut digest = [0u8; DIGEST_BYTES];
                hex::decode_to_slice(text, &mut digest)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))?;
                Ok(Digest(digest))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// Entries by key digest, sorted by digest: 56 bytes an entry, where a
/// B-tree filled one insert at a time, as JSON is read, takes about 160.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ByDigest<V>(Vec<(Digest, V)>);

impl<V> Default for ByDigest<V> {
    fn default() -> Self {
        ByDigest(Vec::new())
    }
}

impl<V> ByDigest<V> {
    /// From pairs in any order (sorted ones cost one pass); of pairs with
    /// equal digests, which no manifest this pipe wrote has, one stays.
    fn new(mut pairs: Vec<(Digest, V)>) -> Self {
        // Unstable: a stable sort would borrow half the entries' size again.
        pairs.sort_unstable_by_key(|(digest, _)| *digest);
        pairs.dedup_by_key(|(digest, _)| *digest);
        pairs.shrink_to_fit();
        ByDigest(pairs)
    }

    #[cfg(test)]
    fn get(&self, digest: &Digest) -> Option<&V> {
        let at = self.0.binary_search_by_key(digest, |(d, _)| *d).ok()?;
        Some(&self.0[at].1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<V: Serialize> Serialize for ByDigest<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(d, v)| (d, v)))
    }
}

/// Reads [`ByDigest`] into a vector of `capacity` pairs from the start:
/// grown by doubling instead, a million entries would end in a vector of
/// 1,048,576 and pass through copies of half that size on the way.
struct ByDigestSeed<V> {
    capacity: usize,
    pairs: std::marker::PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> serde::de::DeserializeSeed<'de> for ByDigestSeed<V> {
    type Value = ByDigest<V>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for ByDigestSeed<V> {
    type Value = ByDigest<V>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("entries by key digest")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(self.capacity));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(ByDigest::new(pairs))
    }
}

/// The JSON form of [`Manifest`]. `pending` came with DELETE_GRACE, in the
/// same version: a manifest without it has no marks. Borrowed when written:
/// a copy of the entries would double the manifest's memory. Read by
/// [`StoredSeed`].
#[derive(Serialize)]
struct Stored<'a> {
    version: u32,
    salt: String,
    destination: String,
    objects: Cow<'a, ByDigest<Entry>>,
    #[serde(skip_serializing_if = "no_marks")]
    pending: Cow<'a, BTreeMap<Digest, Mark>>,
    /// Since 0.6.0, in the same version: earlier pipes ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    written: Option<i64>,
}

/// Reads [`Stored`], its entries into a vector of `capacity` from the start
/// ([`ByDigestSeed`]). Fields it does not know are skipped, as serde's
/// derive does.
struct StoredSeed {
    capacity: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for StoredSeed {
    type Value = Stored<'static>;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StoredSeed {
    type Value = Stored<'static>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a deploy manifest")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let (mut version, mut salt, mut destination, mut objects) = (None, None, None, None);
        let (mut pending, mut written) = (BTreeMap::new(), None);
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            match &*field {
                "version" => version = Some(map.next_value()?),
                "salt" => salt = Some(map.next_value()?),
                "destination" => destination = Some(map.next_value()?),
                "objects" => {
                    objects = Some(map.next_value_seed(ByDigestSeed {
                        capacity: self.capacity,
                        pairs: std::marker::PhantomData,
                    })?);
                }
                "pending" => pending = map.next_value()?,
                "written" => written = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Stored {
            version: version.ok_or_else(|| A::Error::missing_field("version"))?,
            salt: salt.ok_or_else(|| A::Error::missing_field("salt"))?,
            destination: destination.ok_or_else(|| A::Error::missing_field("destination"))?,
            objects: Cow::Owned(objects.ok_or_else(|| A::Error::missing_field("objects"))?),
            pending: Cow::Owned(pending),
            written,
        })
    }
}

// serde hands the field as it is declared.
#[allow(clippy::ptr_arg)]
fn no_marks(pending: &Cow<'_, BTreeMap<Digest, Mark>>) -> bool {
    pending.is_empty()
}

/// A manifest's body, keeping its first error: the connection's, told
/// apart from the gzip decoder's and the parser's, which only say the
/// object is not a manifest.
struct Watched<'e, R> {
    inner: R,
    failed: &'e std::cell::RefCell<Option<std::io::Error>>,
}

impl<R: std::io::Read> std::io::Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            self.failed.borrow_mut().get_or_insert(e);
            std::io::Error::new(kind, "the manifest's body failed")
        })
    }
}

/// What 0.1.0 wrote: entries by key, in clear.
#[derive(Deserialize)]
struct ClearText {
    version: u32,
    objects: BTreeMap<Key, Entry>,
}

/// What a manifest object holds, as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The private form, written for this destination.
    Current(Manifest),
    /// Version 1, keys in clear: to be rewritten in the private form now.
    ClearText(BTreeMap<Key, Entry>),
    /// The private form, written for another destination: two deploys
    /// share one MANIFEST_KEY.
    OtherDestination,
    /// Not a manifest this pipe can read.
    Unreadable,
}

impl Manifest {
    /// An empty manifest for `destination` (`s3://bucket/prefix/`).
    pub fn new(salt: Salt, destination: &str) -> Self {
        Manifest {
            destination: hex::encode(salt.digest("destination", destination).0),
            salt,
            objects: ByDigest::default(),
            count: 0,
            pending: BTreeMap::new(),
            written: None,
        }
    }

    /// Reads a manifest object written for `destination` as it arrives:
    /// gzip-compressed JSON ([`Manifest::to_stored`], since 0.7.0), parsed
    /// as it is inflated, never held whole, or plain JSON (every version
    /// before), read whole first. `expected` entries are made room for at
    /// once (the listed objects: a manifest has about one entry each).
    /// Errors: only those of reading `body` (a connection cut off); what
    /// is not a manifest is [`Read::Unreadable`].
    pub fn read_from(
        body: impl std::io::Read,
        destination: &str,
        expected: usize,
    ) -> std::io::Result<Read> {
        let failed = std::cell::RefCell::new(None);
        let read = Manifest::parse(
            Watched {
                inner: body,
                failed: &failed,
            },
            destination,
            expected,
        );
        // The body's own error, not what the decoder or the parser made of it.
        match failed.into_inner() {
            Some(e) => Err(e),
            None => Ok(read.expect("only the body fails a read")),
        }
    }

    /// [`Manifest::read_from`] of a body that keeps its own error; `None`
    /// when the body failed.
    fn parse(body: impl std::io::Read, destination: &str, expected: usize) -> Option<Read> {
        use std::io::Read as _;
        let mut body = std::io::BufReader::new(body);
        let mut magic = Vec::with_capacity(GZIP_MAGIC.len());
        let peeked = (&mut body)
            .take(GZIP_MAGIC.len() as u64)
            .read_to_end(&mut magic);
        let gzip = magic == GZIP_MAGIC;
        let mut body = std::io::Cursor::new(magic).chain(body);
        let seed = StoredSeed { capacity: expected };
        match peeked {
            Err(_) => None,
            Ok(_) if gzip => {
                let json = std::io::BufReader::new(flate2::read::GzDecoder::new(body));
                let mut json = serde_json::Deserializer::from_reader(json);
                let stored = serde::de::DeserializeSeed::deserialize(seed, &mut json);
                Some(
                    match stored.and_then(|stored| json.end().map(|()| stored)) {
                        Ok(stored) if matches!(stored.version, 2 | VERSION) => {
                            Manifest::from_stored(stored, destination)
                        }
                        _ => Read::Unreadable,
                    },
                )
            }
            Ok(_) => {
                let mut bytes = Vec::new();
                body.read_to_end(&mut bytes)
                    .ok()
                    .map(|_| Manifest::read_json(&bytes, seed, destination))
            }
        }
    }

    /// [`Manifest::read_from`] of bytes in memory, which no read can fail.
    #[cfg(test)]
    pub fn read(bytes: &[u8], destination: &str) -> Read {
        Manifest::read_from(bytes, destination, 0).expect("memory reads")
    }

    /// The plain JSON that versions before 0.7.0 wrote, read.
    fn read_json(bytes: &[u8], seed: StoredSeed, destination: &str) -> Read {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        match serde_json::from_slice::<Version>(bytes).map(|v| v.version) {
            Ok(1) => match serde_json::from_slice::<ClearText>(bytes) {
                Ok(m) if m.version == 1 => Read::ClearText(m.objects),
                _ => Read::Unreadable,
            },
            Ok(2 | VERSION) => {
                let mut json = serde_json::Deserializer::from_slice(bytes);
                let stored = serde::de::DeserializeSeed::deserialize(seed, &mut json);
                match stored.and_then(|stored| json.end().map(|()| stored)) {
                    Ok(stored) => Manifest::from_stored(stored, destination),
                    Err(_) => Read::Unreadable,
                }
            }
            _ => Read::Unreadable,
        }
    }

    fn from_stored(stored: Stored, destination: &str) -> Read {
        let bytes = hex::decode(&stored.salt).ok();
        let Some(bytes) = bytes.and_then(|b| <[u8; SALT_BYTES]>::try_from(b).ok()) else {
            return Read::Unreadable;
        };
        let salt = Salt::new(bytes);
        if hex::encode(salt.digest("destination", destination).0) != stored.destination {
            return Read::OtherDestination;
        }
        Read::Current(Manifest {
            salt,
            destination: stored.destination,
            count: stored.objects.len(),
            objects: stored.objects.into_owned(),
            pending: stored.pending.into_owned(),
            written: stored.written,
        })
    }

    fn stored(&self) -> Stored<'_> {
        Stored {
            version: VERSION,
            salt: hex::encode(self.salt.bytes),
            destination: self.destination.clone(),
            objects: Cow::Borrowed(&self.objects),
            pending: Cow::Borrowed(&self.pending),
            written: self.written,
        }
    }

    /// The JSON form, as versions before 0.7.0 wrote it (and read it).
    #[cfg(test)]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.stored()).expect("a manifest always serialises")
    }

    /// The object's bytes: the JSON form, gzip-compressed as it is written
    /// (the object's Content-Encoding is `gzip`). A million entries take
    /// 41 bytes each instead of about 96 (`tests::scale`), to download and
    /// to hold while the listing is held: the key digests and ETags are
    /// random, the rest repeats.
    pub fn to_stored(&self) -> Vec<u8> {
        let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut json = std::io::BufWriter::new(gzip);
        serde_json::to_writer(&mut json, &self.stored()).expect("a manifest always serialises");
        let gzip = json.into_inner().expect("writing to memory does not fail");
        gzip.finish().expect("writing to memory does not fail")
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn salt(&self) -> &Salt {
        &self.salt
    }

    /// Records `now` (seconds since the Unix epoch, this machine's clock)
    /// as the time it is written: after every other write of its deploy,
    /// so no object it vouches for was stamped later (give or take
    /// [`CLOCK_TOLERANCE`]). A copy of it put back later (a restore) then
    /// still says when its deploy ran, although its LastModified is new.
    pub fn stamp(&mut self, now: i64) {
        self.written = Some(now);
    }

    /// An entry for every key of `entries`, given in any order.
    pub(crate) fn with_entries<'k>(
        salt: Salt,
        destination: &str,
        entries: impl IntoIterator<Item = (&'k str, Entry)>,
    ) -> Self {
        let entries = entries
            .into_iter()
            .map(|(key, e)| (salt.key(key), e))
            .collect();
        Manifest::by_digest(salt, destination, entries)
    }

    /// An entry for every digest of `entries` (of [`Salt::key`] under `salt`).
    fn by_digest(salt: Salt, destination: &str, entries: Vec<(Digest, Entry)>) -> Self {
        let mut manifest = Manifest::new(salt, destination);
        manifest.objects = ByDigest::new(entries);
        manifest.count = manifest.objects.len();
        manifest
    }

    #[cfg(test)]
    fn insert(&mut self, key: &str, entry: Entry) {
        let mut entries = std::mem::take(&mut self.objects).0;
        entries.retain(|(d, _)| *d != self.salt.key(key));
        entries.push((self.salt.key(key), entry));
        self.objects = ByDigest::new(entries);
        self.count = self.objects.len();
    }

    #[cfg(test)]
    fn mark(&mut self, key: &str, mark: Mark) {
        self.pending.insert(self.salt.key(key), mark);
    }
}

/// The manifest a deploy found, with what the evidence needs of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Previous {
    pub manifest: Manifest,
    /// The manifest object's LastModified, in seconds since the Unix epoch.
    pub last_modified: i64,
    /// It was read in clear text (version 1), so it is rewritten whatever
    /// the deploy changes.
    pub clear_text: bool,
}

impl Previous {
    /// A version 1 manifest, indexed anew under `salt`.
    pub fn migrate(
        entries: BTreeMap<Key, Entry>,
        salt: Salt,
        destination: &str,
        last_modified: i64,
    ) -> Self {
        let entries = entries.iter().map(|(key, e)| (key.as_str(), e.clone()));
        let manifest = Manifest::with_entries(salt, destination, entries);
        Previous {
            manifest,
            last_modified,
            clear_text: true,
        }
    }

    /// The entries still true of the listed objects, by key. An entry
    /// vouches for the content while the listing shows the ETag it recorded
    /// (another upload gives another ETag, except the same bytes in one
    /// part, which are the same content). It vouches for the headers only
    /// when the object's LastModified is in an earlier second than the
    /// manifest's: S3 stamps every PutObject and CopyObject, headers-only
    /// copies included, in whole seconds, and the pipe writes the manifest
    /// after every other write of a deploy and at least one second after
    /// the last of them (`run::manifest::save`). An object stamped in the
    /// manifest's second or later may have been written after it (a killed
    /// run of ours, another tool) and needs a HeadObject. So does one
    /// stamped more than [`CLOCK_TOLERANCE`] after the time the manifest
    /// records ([`Manifest::stamp`]): the manifest object is a copy put
    /// back later (a restore), whose new LastModified would otherwise
    /// vouch for headers changed since its deploy. A manifest that records
    /// a time more than [`CLOCK_TOLERANCE`] after its own LastModified was
    /// written by a clock ahead of S3's: it vouches for no headers.
    #[cfg(test)]
    pub fn trusted(&self, remote: &[RemoteObject]) -> ByKey<Trusted> {
        self.vouched(self.manifest.objects.0.clone(), remote)
    }

    /// [`Previous::trusted`] of `entries` (the manifest's, in digest order).
    fn vouched(&self, entries: Vec<(Digest, Entry)>, remote: &[RemoteObject]) -> ByKey<Trusted> {
        let salt = &self.manifest.salt;
        // The listed keys' digests in digest order, walked beside the
        // entries (in the same order): a search per key would jump through
        // a million entries at random, a cache miss at every step. Each by
        // its first 8 bytes and its position in a u32: 12 bytes a key, not
        // 20; a key found by those is checked against its whole digest.
        let mut digests: Vec<([u8; 8], u32)> = remote
            .iter()
            .zip(0u32..)
            .map(|(r, at)| (salt.key(&r.key).prefix(), at))
            .collect();
        digests.sort_unstable();
        let stamped_before = match self.manifest.written {
            None => self.last_modified,
            // Written after it was stored, by its own account: the clock
            // that wrote it ran ahead of S3's, so its record bounds nothing
            // (a copy put back later would pass) and vouches for no headers.
            Some(_) if self.written_ahead() => i64::MIN,
            Some(w) => self
                .last_modified
                .min(w.saturating_add(CLOCK_TOLERANCE + 1)),
        };
        let mut next = 0;
        // Each entry becomes its key's trusted entry where it stands: an
        // entry and a trusted entry are the same size, so std collects
        // them into the entries' own memory, and the peak holds one of
        // the two, not both (56 bytes a key at a million).
        let mut trusted: Vec<(u32, Trusted)> = entries
            .into_iter()
            .filter_map(|(digest, entry)| {
                let prefix = digest.prefix();
                while digests.get(next).is_some_and(|(p, _)| *p < prefix) {
                    next += 1;
                }
                // Keys that share the first 8 bytes (about one pair in a
                // trillion at a million keys) stay for the next entry.
                let same = digests[next..].iter().take_while(|(p, _)| *p == prefix);
                let (_, at) = same
                    .copied()
                    .find(|(_, at)| salt.key(&remote[*at as usize].key) == digest)?;
                let r = &remote[at as usize];
                (entry.etag == r.etag).then(|| {
                    let trusted = Trusted {
                        entry,
                        headers: r.last_modified < stamped_before,
                    };
                    (at, trusted)
                })
            })
            .collect();
        drop(digests);
        // Into the listing's order, which is the keys': by position, in
        // place (the listing has each key once), then named, in place too.
        trusted.sort_unstable_by_key(|(at, _)| *at);
        let trusted: Vec<(Key, Trusted)> = trusted
            .into_iter()
            .map(|(at, t)| (remote[at as usize].key.clone(), t))
            .collect();
        ByKey::from(trusted)
    }

    /// Seconds from the time the manifest records ([`Manifest::stamp`]) to
    /// its LastModified: about 0; far more for a copy put back later.
    /// `None` before 0.6.0.
    pub fn stored_after(&self) -> Option<i64> {
        let written = self.manifest.written?;
        Some(self.last_modified.saturating_sub(written))
    }

    /// Whether the manifest records a time more than [`CLOCK_TOLERANCE`]
    /// after its own LastModified: the clock that wrote it ran ahead of S3's.
    pub fn written_ahead(&self) -> bool {
        self.stored_after().is_some_and(|s| s < -CLOCK_TOLERANCE)
    }

    /// [`Previous::trusted`], letting go of the entries: a deploy reads
    /// them once, and they are 56 bytes a key. [`next_if_needed`] still knows
    /// how many there were.
    pub fn take_trusted(&mut self, remote: &[RemoteObject]) -> ByKey<Trusted> {
        let entries = std::mem::take(&mut self.manifest.objects).0;
        self.vouched(entries, remote)
    }

    /// The DELETE_GRACE marks of the listed keys, as read now
    /// ([`Mark::read`]: a mark the last deploy made starts no earlier than
    /// the manifest's LastModified + 1 s). Marks of keys no longer listed
    /// are gone with their objects.
    pub fn marks(&self, remote: &[RemoteObject]) -> ByKey<Mark> {
        let pending = &self.manifest.pending;
        // A digest of every listed key costs a second of CPU at a million.
        if pending.is_empty() {
            return ByKey::default();
        }
        remote
            .iter()
            .filter_map(|r| {
                let mark = pending.get(&self.manifest.salt.key(&r.key))?;
                Some((r.key.clone(), mark.read(self.last_modified)))
            })
            .collect()
    }
}

/// The uploaded files to hash for the next manifest, the way S3 computed
/// the ETag of this pipe's upload.
pub fn hashes_for_next<'a>(local: &'a [LocalFile], plan: &Plan) -> Vec<(&'a LocalFile, HashNeed)> {
    let uploaded: HashSet<&str> = plan.uploads.iter().map(|u| u.upload.key.as_str()).collect();
    local
        .iter()
        .filter(|f| uploaded.contains(f.key.as_str()))
        .map(|f| (f, etag::as_uploaded(f.size)))
        .collect()
}

/// What a deploy learnt about each key, for the next manifest.
#[cfg_attr(test, derive(Clone))]
pub struct Evidence<'a> {
    /// [`Previous::trusted`] over the whole listing, outside the deploy's
    /// scope too: given up to the next manifest, whose entries it becomes
    /// in its own memory.
    pub trusted: ByKey<Trusted>,
    /// The listing of the deploy's scope.
    pub remote: &'a [RemoteObject],
    pub hashes: &'a ByKey<Hashed>,
    pub remote_headers: &'a ByKey<HeadersDigest>,
    /// The ETag S3 gave each key the deploy wrote.
    pub written: &'a HashMap<Key, ETag>,
    /// [`Previous::marks`] over the whole listing, outside the deploy's
    /// scope too.
    pub marks: &'a ByKey<Mark>,
}

/// The manifest a deploy leaves.
pub struct Next {
    pub manifest: Manifest,
    /// Entries whose evidence is this deploy's own (a write, a HeadObject)
    /// rather than an entry carried over: the objects may be stamped in the
    /// old manifest's second or later, so only a new manifest vouches for
    /// their headers.
    #[cfg_attr(
        not(test),
        allow(
            dead_code,
            reason = "read by needs_write, which tests hold next_if_needed to"
        )
    )]
    pub renewed: usize,
}

/// The manifest after a successful deploy, under `salt`: an entry for
/// every key the pipe knows to be as it left it. The keys the deploy
/// covered (uploaded, fixed, skipped, deleted) get entries from this
/// deploy's evidence; every other listed key, left out by filters or
/// `ignore` rules or kept without DELETE_FLAG, keeps its entry while that
/// still vouches for content and headers.
///
/// DELETE_GRACE marks: the plan's pending deletes get theirs, as judged;
/// the keys left out of the deploy keep theirs as they were; a key of the
/// deploy's scope that is not pending (deleted, back in the folder, or kept
/// without DELETE_FLAG) has none.
pub fn next(salt: Salt, destination: &str, plan: &Plan, evidence: Evidence) -> Next {
    // Gathered, then sorted once: inserting one by one into the sorted
    // entries would move them all at every key. Each with its key's digest
    // at once: a million keys held twice (by name, then by digest) would
    // cost 80 MB more at the peak. This deploy's own entries first (few,
    // usually), then the trusted entries carried over, each made a manifest
    // entry where it stands: the two pairs are the same size, so std
    // collects them into the trusted entries' memory, and the peak holds
    // one copy, not two (56 bytes a key).
    let mut renewed: Vec<(Digest, Entry)> = Vec::new();
    each_renewed(plan, &evidence, |key, entry| {
        renewed.push((salt.key(key), entry));
    });
    let pending = next_marks(&salt, plan, &evidence);
    let replaced = Replaced::of(plan);
    let mut entries: Vec<(Digest, Entry)> = evidence
        .trusted
        .into_pairs()
        .into_iter()
        .filter(|(key, t)| t.headers && !replaced.contains(key))
        .map(|(key, t)| (salt.key(&key), t.entry))
        .collect();
    let count = renewed.len();
    entries.append(&mut renewed);
    let mut manifest = Manifest::by_digest(salt, destination, entries);
    manifest.pending = pending;
    Next {
        manifest,
        renewed: count,
    }
}

/// [`next`], when [`needs_write`] would say it must be written; decided
/// before it is built, so that a redeploy that changed nothing (the usual
/// one) never holds a second copy of every entry.
pub fn next_if_needed(
    salt: Salt,
    destination: &str,
    previous: Option<&Previous>,
    plan: &Plan,
    evidence: Evidence,
) -> Option<Next> {
    if let Some(p) = previous {
        let mut renewed = 0;
        each_renewed(plan, &evidence, |_, _| renewed += 1);
        let mut entries = renewed;
        each_carried(plan, &evidence, |_, _| entries += 1);
        let pending = next_marks(&salt, plan, &evidence);
        if !changed(p, entries, renewed, &pending) {
            return None;
        }
    }
    Some(next(salt, destination, plan, evidence))
}

/// The keys a deploy wrote or deleted, whose old entries are not carried
/// over. Sorted and searched: a third of a hash set's memory, and few keys.
struct Replaced<'p>(Vec<&'p str>);

impl<'p> Replaced<'p> {
    fn of(plan: &'p Plan) -> Self {
        let mut keys: Vec<&str> = (plan.uploads.iter().chain(&plan.copies))
            .map(|u| u.upload.key.as_str())
            .chain(plan.deletes.iter().map(|d| d.key.as_str()))
            .collect();
        keys.sort_unstable();
        Replaced(keys)
    }

    fn contains(&self, key: &str) -> bool {
        self.0.binary_search(&key).is_ok()
    }
}

/// Calls `found` with each trusted entry the next manifest ([`next`])
/// carries over as it was: one that vouches for the headers, unless the
/// deploy replaced or deleted its object (a skip keeps it).
fn each_carried(plan: &Plan, evidence: &Evidence, mut found: impl FnMut(&Key, &Trusted)) {
    let replaced = Replaced::of(plan);
    for (key, t) in &evidence.trusted {
        if t.headers && !replaced.contains(key) {
            found(key, t);
        }
    }
}

/// Calls `found` with each entry of the next manifest ([`next`]) that this
/// deploy's own evidence vouches for (see [`Next::renewed`]): skips whose
/// headers a HeadObject read, and writes. No key is also carried over
/// ([`each_carried`]).
fn each_renewed(plan: &Plan, evidence: &Evidence, mut found: impl FnMut(&Key, Entry)) {
    // Built only when an entry needs it: not on a redeploy whose skips the
    // manifest vouches for, where it would cost a map of every key.
    let listed = std::cell::LazyCell::new(|| listed_etags(evidence));
    // What the content is: as hashed now, or as a trusted entry recorded it.
    let content = |key: &Key| {
        let hashed = evidence.hashes.get(key).map(|h| (&h.etag, h.part_size));
        hashed.or_else(|| {
            let t = evidence.trusted.get(key)?;
            Some((t.entry.md5(), t.entry.part_size()))
        })
    };
    let entry =
        |etag: &ETag, (md5, part_size): (&ETag, Option<NonZeroU64>), headers: &HeadersDigest| {
            Entry::new(etag.clone(), md5.clone(), part_size, *headers)
        };
    let vouched = |key: &str| evidence.trusted.get(key).is_some_and(|t| t.headers);

    for (key, _) in plan.skips.iter().filter(|(key, _)| !vouched(key)) {
        let headers = evidence.remote_headers.get(key);
        let made = headers.and_then(|h| Some(entry(listed.get(key.as_str())?, content(key)?, h)));
        if let Some(e) = made {
            found(key, e);
        }
    }
    for u in plan.uploads.iter().chain(&plan.copies) {
        let key = &u.upload.key;
        if let (Some(etag), Some(content)) = (evidence.written.get(key), content(key)) {
            let headers = u.upload.headers().digest();
            found(key, entry(etag, content, &headers));
        }
    }
}

/// The listed ETag of each key in the deploy's scope.
fn listed_etags<'a>(evidence: &Evidence<'a>) -> HashMap<&'a str, &'a ETag> {
    evidence
        .remote
        .iter()
        .map(|r| (r.key.as_str(), &r.etag))
        .collect()
}

/// The DELETE_GRACE marks of the next manifest: the plan's pending
/// deletes, as judged, and the marks of keys the deploy did not list (left
/// out by filters) as they were; a listed key that is not pending has none.
fn next_marks(salt: &Salt, plan: &Plan, evidence: &Evidence) -> BTreeMap<Digest, Mark> {
    let mut marks = BTreeMap::new();
    if !evidence.marks.is_empty() {
        let listed = listed_etags(evidence);
        for (key, mark) in evidence.marks {
            if !listed.contains_key(key.as_str()) {
                marks.insert(salt.key(key), *mark);
            }
        }
    }
    for p in &plan.pending {
        marks.insert(salt.key(&p.key), p.mark);
    }
    marks
}

/// Whether the manifest must be written: when there was none, when it was
/// in clear text, when an entry changed, when this deploy's own evidence
/// vouches for an entry (see [`Next::renewed`]), or when a DELETE_GRACE
/// mark changed (a deploy that covers a marked key counts in it). A run
/// asks [`next_if_needed`], which decides the same before building it.
#[cfg(test)]
pub fn needs_write(previous: Option<&Previous>, next: &Next) -> bool {
    previous.is_none_or(|p| changed(p, next.manifest.len(), next.renewed, &next.manifest.pending))
}

/// Whether a manifest of `entries` entries, `renewed` of them by this
/// deploy's evidence, with the marks `pending`, differs from `previous`.
fn changed(
    previous: &Previous,
    entries: usize,
    renewed: usize,
    pending: &BTreeMap<Digest, Mark>,
) -> bool {
    previous.clear_text
        || renewed > 0
        // Nothing renewed: every entry of the next manifest is one of the
        // previous, carried over as it was (`each_carried`), so they differ
        // only when some were not carried over.
        || previous.manifest.count != entries
        || previous.manifest.pending != *pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectSettings, Upload};
    use crate::plan::grace::{Expiry, PendingDelete};
    use crate::plan::{PlannedDelete, PlannedUpload, Reason, Skip, Wave};

    const DEST: &str = "s3://b/site/";
    /// The manifest's own LastModified in these tests.
    const WRITTEN: i64 = 1_000;

    fn salt(byte: u8) -> Salt {
        Salt::new([byte; SALT_BYTES])
    }

    fn entry(etag: &str) -> Entry {
        Entry::new(
            ETag::new(etag),
            ETag::new("m"),
            None,
            HeadersDigest::of_text("h"),
        )
    }

    fn listed(key: &str, etag: &str, last_modified: i64) -> RemoteObject {
        RemoteObject {
            key: Key::new(key),
            size: 1,
            etag: ETag::new(etag),
            last_modified,
        }
    }

    fn previous(entries: &[(&str, Entry)]) -> Previous {
        let mut manifest = Manifest::new(salt(1), DEST);
        for (key, e) in entries {
            manifest.insert(key, e.clone());
        }
        Previous {
            manifest,
            last_modified: WRITTEN,
            clear_text: false,
        }
    }

    fn read_back(m: &Manifest) -> Manifest {
        match Manifest::read(&m.to_json(), DEST) {
            Read::Current(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_key_is_written_in_clear() {
        let mut m = Manifest::new(salt(7), DEST);
        m.insert("site/press/embargoed-launch.html", entry("e1"));
        let json = String::from_utf8(m.to_json()).unwrap();
        for clear in ["embargoed", "press", "site/", "s3://"] {
            assert!(!json.contains(clear), "{clear} in {json}");
        }
        assert_eq!(read_back(&m), m);
        // Another salt, other digests: nothing to look up across sites.
        let mut other = Manifest::new(salt(8), DEST);
        other.insert("site/press/embargoed-launch.html", entry("e1"));
        assert_ne!(m.objects.0[0].0, other.objects.0[0].0);
    }

    /// [`Previous::take_trusted`] and [`next`] turn entries into trusted
    /// entries and back in their own memory: std's collect does so only
    /// while the pairs have one size and one alignment.
    #[test]
    fn entries_and_trusted_entries_fit_in_each_others_memory() {
        use std::mem::{align_of, size_of};
        let entry = (size_of::<(Digest, Entry)>(), align_of::<(Digest, Entry)>());
        assert_eq!(
            (size_of::<(u32, Trusted)>(), align_of::<(u32, Trusted)>()),
            entry
        );
        assert_eq!(
            (size_of::<(Key, Trusted)>(), align_of::<(Key, Trusted)>()),
            entry
        );
    }

    /// What 0.7.0 writes is the JSON, gzip-compressed; what earlier
    /// versions wrote (plain JSON) still reads the same; a stream cut short
    /// or another gzip is not a manifest.
    #[test]
    fn the_stored_form_is_the_json_gzip_compressed_and_plain_json_still_reads() {
        use std::io::Read as _;
        let mut m = Manifest::new(salt(5), DEST);
        m.insert("site/a.css", entry("e1"));
        m.insert("site/b.css", entry("e2"));
        m.stamp(WRITTEN);
        let stored = m.to_stored();
        assert!(stored.starts_with(&GZIP_MAGIC));
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&stored[..])
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(json, m.to_json());
        assert_eq!(Manifest::read(&stored, DEST), Read::Current(m.clone()));
        assert_eq!(Manifest::read(&m.to_json(), DEST), Read::Current(m));
        let cut = &stored[..stored.len() - 10];
        assert_eq!(Manifest::read(cut, DEST), Read::Unreadable);
        let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut other, br#"{"version":1,"objects":{}}"#).unwrap();
        let other = other.finish().unwrap();
        assert_eq!(Manifest::read(&other, DEST), Read::Unreadable);
    }

    /// A body whose connection fails is an error of the read, whatever the
    /// decoder makes of the bytes it lacks; a body that ends early is a
    /// manifest cut short: unreadable.
    #[test]
    fn a_failed_body_is_an_error_and_a_short_one_unreadable() {
        struct Failing<'a>(&'a [u8]);
        impl std::io::Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "reset",
                    ));
                }
                std::io::Read::read(&mut self.0, buf)
            }
        }
        let mut m = Manifest::new(salt(5), DEST);
        for i in 0..100 {
            m.insert(&format!("site/{i}.css"), entry(&format!("e{i}")));
        }
        for stored in [m.to_stored(), m.to_json()] {
            let half = &stored[..stored.len() / 2];
            let error = Manifest::read_from(Failing(half), DEST, 0).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
            assert_eq!(
                Manifest::read_from(half, DEST, 0).unwrap(),
                Read::Unreadable
            );
            let whole = Manifest::read_from(&stored[..], DEST, 1_000).unwrap();
            assert_eq!(whole, Read::Current(m.clone()));
        }
    }

    /// Text as 0.2.0 and 0.3.0 wrote it (version 2: digests and ETags in
    /// hex, headers digest in 16 hex digits, fields by name) reads the
    /// same as version 3, which is written back byte for byte.
    #[test]
    fn a_manifest_in_either_written_form_reads_and_version_3_writes_back_unchanged() {
        let s = salt(3);
        // HMAC-SHA256 as Python's hmac module computes it: written digests
        // stay the same whatever the implementation.
        let a = hex::encode(s.key("site/a").0);
        assert_eq!(a, "ce45c382fbc56562b4c0cf114bf40a39");
        let mut digests = [s.key("site/a"), s.key("site/b")].map(|d| hex::encode(d.0));
        digests.sort();
        let md5 = "0cc175b9c0f1b6a831c399e269772661";
        let header = format!(
            r#""salt":"{}","destination":"{}","objects":{{"#,
            hex::encode([3u8; SALT_BYTES]),
            hex::encode(s.digest("destination", DEST).0),
        );
        let v2 = format!(
            concat!(
                r#"{{"version":2,{header}"#,
                r#""{}":{{"etag":"{md5}","md5":"{md5}","part_size":null,"headers":"00112233445566ff"}},"#,
                r#""{}":{{"etag":"kms-opaque","md5":"{md5}-2","part_size":8388608,"headers":"0123456789abcdef"}}}}}}"#
            ),
            digests[0],
            digests[1],
            header = header,
            md5 = md5,
        );
        let v3 = format!(
            concat!(
                r#"{{"version":3,{header}"#,
                r#""{}":["{md5}","",0,"00112233445566ff"],"#,
                r#""{}":["kms-opaque","{md5}-2",8388608,"0123456789abcdef"]}}}}"#
            ),
            digests[0],
            digests[1],
            header = header,
            md5 = md5,
        );
        let Read::Current(from_v2) = Manifest::read(v2.as_bytes(), DEST) else {
            panic!("not read: {v2}")
        };
        let Read::Current(from_v3) = Manifest::read(v3.as_bytes(), DEST) else {
            panic!("not read: {v3}")
        };
        assert_eq!(from_v2.len(), 2);
        assert_eq!(from_v2, from_v3);
        assert_eq!(String::from_utf8(from_v2.to_json()).unwrap(), v3);
        // An entry cut short or too long is not a manifest entry.
        for bad in [r#"["e","",0]"#, r#"["e","",0,"00112233445566ff",1]"#] {
            let cut = v3.replacen(
                r#"["kms-opaque","0cc175b9c0f1b6a831c399e269772661-2",8388608,"0123456789abcdef"]"#,
                bad,
                1,
            );
            assert_eq!(
                Manifest::read(cut.as_bytes(), DEST),
                Read::Unreadable,
                "{cut}"
            );
        }
    }

    #[test]
    fn a_manifest_of_another_destination_is_not_used() {
        let m = Manifest::new(salt(1), "s3://b/staging/");
        assert_eq!(Manifest::read(&m.to_json(), DEST), Read::OtherDestination);
    }

    #[test]
    fn version_1_is_read_for_migration_and_the_unreadable_is_ignored() {
        let v1 = br#"{"version":1,"objects":{"site/a":{"etag":"e1","md5":"m","part_size":null,"headers":"h"}}}"#;
        let Read::ClearText(entries) = Manifest::read(v1, DEST) else {
            panic!("version 1 not read")
        };
        let migrated = Previous::migrate(entries, salt(2), DEST, WRITTEN);
        assert!(migrated.clear_text);
        let trusted = migrated.trusted(&[listed("site/a", "e1", WRITTEN - 1)]);
        assert_eq!(trusted[&Key::new("site/a")].entry, entry("e1"));
        assert!(
            !String::from_utf8(migrated.manifest.to_json())
                .unwrap()
                .contains("site/a")
        );
        for bad in [
            &b"not json"[..],
            br#"{"version": 99, "objects": {}}"#,
            br#"{"version": 2, "salt": "zz", "destination": "", "objects": {}}"#,
        ] {
            assert_eq!(Manifest::read(bad, DEST), Read::Unreadable);
        }
    }

    /// Whether each trusted entry vouches for its object's headers, by key.
    fn vouched(trusted: &ByKey<Trusted>) -> BTreeMap<&str, bool> {
        trusted
            .iter()
            .map(|(k, t)| (k.as_str(), t.headers))
            .collect()
    }

    #[test]
    fn the_etag_vouches_for_content_and_an_older_stamp_for_headers() {
        let p = previous(&[
            ("old", entry("e1")),
            ("same-second", entry("e2")),
            ("later", entry("e3")),
            ("overwritten", entry("e4")),
            ("gone", entry("e5")),
        ]);
        let trusted = p.trusted(&[
            listed("old", "E1", WRITTEN - 1),
            // S3 stamps whole seconds: in the manifest's own second, the
            // object may have been written after it.
            listed("same-second", "e2", WRITTEN),
            listed("later", "e3", WRITTEN + 60),
            listed("overwritten", "other", WRITTEN - 1),
            listed("unknown", "e1", WRITTEN - 1),
        ]);
        let headers = vouched(&trusted);
        assert_eq!(
            headers,
            BTreeMap::from([("later", false), ("old", true), ("same-second", false)])
        );
    }

    #[test]
    fn a_manifest_put_back_later_vouches_only_for_headers_as_old_as_its_deploy() {
        // Written at WRITTEN - 600 by its deploy's clock, its object was put
        // back (restored) at WRITTEN.
        let mut p = previous(&[
            ("untouched", entry("e1")),
            ("within-tolerance", entry("e2")),
            ("fixed-since", entry("e3")),
        ]);
        let deployed = WRITTEN - 600;
        p.manifest.stamp(deployed);
        assert_eq!(read_back(&p.manifest).written, Some(deployed));
        let trusted = p.trusted(&[
            listed("untouched", "e1", deployed - 1),
            // This machine's clock a little behind S3's.
            listed("within-tolerance", "e2", deployed + CLOCK_TOLERANCE),
            // Its headers changed by a later deploy, after this manifest.
            listed("fixed-since", "e3", deployed + CLOCK_TOLERANCE + 1),
        ]);
        let headers = vouched(&trusted);
        assert_eq!(
            headers,
            BTreeMap::from([
                ("fixed-since", false),
                ("untouched", true),
                ("within-tolerance", true)
            ])
        );
        // A stamp ahead of the manifest's LastModified by more than the
        // tolerance (the writer's clock ahead of S3's) bounds nothing: a copy
        // put back later would pass it, so no headers are vouched for.
        p.manifest.stamp(WRITTEN + CLOCK_TOLERANCE + 1);
        let ahead = p.trusted(&[listed("untouched", "e1", deployed - 1)]);
        assert!(!ahead[&Key::new("untouched")].headers);
        // Within the tolerance, the manifest's own second still bounds it.
        p.manifest.stamp(WRITTEN + CLOCK_TOLERANCE);
        let near = p.trusted(&[
            listed("untouched", "e1", WRITTEN - 1),
            listed("within-tolerance", "e2", WRITTEN),
        ]);
        assert_eq!(
            vouched(&near),
            BTreeMap::from([("untouched", true), ("within-tolerance", false)])
        );
    }

    #[test]
    fn state_objects_are_recognised_by_their_suffix() {
        let mut remote = vec![
            listed("p/a", "1", 0),
            listed("p/.s3-cloudfront-deploy-manifest.json", "2", 0),
            listed("p/meta/old.s3-cloudfront-deploy-manifest.json", "3", 0),
            listed("p/s3-cloudfront-deploy-manifest.json.bak", "4", 0),
        ];
        let state = take_state_objects(&mut remote, |r| &r.key);
        assert_eq!(state.len(), 2);
        assert_eq!(
            remote,
            [
                listed("p/a", "1", 0),
                listed("p/s3-cloudfront-deploy-manifest.json.bak", "4", 0)
            ]
        );
    }

    fn upload(key: &str) -> PlannedUpload {
        PlannedUpload {
            upload: Upload {
                key: Key::new(key),
                path: key.into(),
                size: 1,
                content_type: "text/html".into(),
                settings: ObjectSettings::default(),
            },
            reason: Reason::New,
            wave: Wave::Assets,
        }
    }

    fn hashed(md5: &str) -> Hashed {
        Hashed {
            etag: ETag::new(md5),
            part_size: None,
        }
    }

    #[test]
    fn only_what_the_deploy_covered_is_replaced() {
        let p = previous(&[
            ("page.html", entry("p1")),
            ("left-out.css", entry("c1")),
            ("left-out-touched.css", entry("t1")),
            ("deleted.js", entry("d1")),
            ("kept.js", entry("k1")),
        ]);
        let everything = [
            listed("page.html", "p1", WRITTEN - 5),
            listed("left-out.css", "c1", WRITTEN - 5),
            listed("left-out-touched.css", "t1", WRITTEN + 5),
            listed("deleted.js", "d1", WRITTEN - 5),
            listed("kept.js", "k1", WRITTEN - 5),
        ];
        let trusted = p.trusted(&everything);
        let plan = Plan {
            uploads: vec![upload("page.html")],
            deletes: vec![PlannedDelete {
                key: Key::new("deleted.js"),
                size: 1,
            }],
            kept: vec![Key::new("kept.js")],
            ..Plan::default()
        };
        let hashes = ByKey::from([(Key::new("page.html"), hashed("p2"))]);
        let written = HashMap::from([(Key::new("page.html"), ETag::new("p2"))]);
        let next = next(
            p.manifest.salt().clone(),
            DEST,
            &plan,
            Evidence {
                trusted,
                remote: &everything[..1],
                hashes: &hashes,
                remote_headers: &ByKey::default(),
                written: &written,
                marks: &ByKey::default(),
            },
        );
        assert_eq!(next.renewed, 1);
        let m = &next.manifest;
        let has = |key: &str| m.objects.get(&m.salt.key(key)).map(|e| e.etag.to_string());
        assert_eq!(has("page.html").as_deref(), Some("p2"));
        assert_eq!(has("left-out.css").as_deref(), Some("c1"));
        assert_eq!(has("kept.js").as_deref(), Some("k1"));
        // Changed after the manifest: its headers are no longer known.
        assert_eq!(has("left-out-touched.css"), None);
        assert_eq!(has("deleted.js"), None);
        assert_eq!(m.len(), 3);
        assert!(needs_write(Some(&p), &next));
    }

    /// The manifest a deploy that skipped every listed key leaves.
    fn after_skips(p: &Previous, remote: &[RemoteObject], heads: &ByKey<HeadersDigest>) -> Next {
        let plan = Plan {
            skips: remote
                .iter()
                .map(|r| (r.key.clone(), Skip::Unchanged))
                .collect(),
            ..Plan::default()
        };
        let hashes = ByKey::default();
        let written = HashMap::new();
        let evidence = Evidence {
            trusted: p.trusted(remote),
            remote,
            hashes: &hashes,
            remote_headers: heads,
            written: &written,
            marks: &ByKey::default(),
        };
        agreed(p, &plan, &evidence)
    }

    /// [`next`], after checking that [`next_if_needed`] decides as
    /// [`needs_write`] does, without building it first.
    fn agreed(p: &Previous, plan: &Plan, evidence: &Evidence) -> Next {
        let made = next(p.manifest.salt().clone(), DEST, plan, evidence.clone());
        let if_needed = next_if_needed(
            p.manifest.salt().clone(),
            DEST,
            Some(p),
            plan,
            evidence.clone(),
        );
        let wanted = needs_write(Some(p), &made).then(|| made.manifest.clone());
        assert_eq!(if_needed.map(|n| n.manifest), wanted);
        made
    }

    #[test]
    fn taken_entries_are_let_go_and_still_tell_whether_to_write() {
        let mut p = previous(&[("a", entry("e1")), ("b", entry("e2"))]);
        let remote = [
            listed("a", "e1", WRITTEN - 1),
            listed("b", "e2", WRITTEN - 1),
        ];
        let trusted = p.take_trusted(&remote);
        assert_eq!(trusted.len(), 2);
        assert!(p.trusted(&remote).is_empty(), "the entries are let go");
        let after = |skipped: &[RemoteObject], deleted: &[RemoteObject]| {
            let plan = Plan {
                skips: skipped
                    .iter()
                    .map(|r| (r.key.clone(), Skip::Unchanged))
                    .collect(),
                deletes: deleted
                    .iter()
                    .map(|r| PlannedDelete {
                        key: r.key.clone(),
                        size: 1,
                    })
                    .collect(),
                ..Plan::default()
            };
            let evidence = Evidence {
                trusted: trusted.clone(),
                remote: &remote,
                hashes: &ByKey::default(),
                remote_headers: &ByKey::default(),
                written: &HashMap::new(),
                marks: &ByKey::default(),
            };
            agreed(&p, &plan, &evidence)
        };
        assert!(!needs_write(Some(&p), &after(&remote, &[])));
        assert!(needs_write(Some(&p), &after(&remote[..1], &remote[1..])));
    }

    #[test]
    fn skips_keep_trusted_entries_or_take_the_head_objects_evidence() {
        let p = previous(&[("fresh", entry("f")), ("touched", entry("t"))]);
        let remote = [
            listed("fresh", "f", WRITTEN - 1),
            listed("touched", "t", WRITTEN + 1),
        ];
        let heads = ByKey::from([(Key::new("touched"), HeadersDigest::of_text("h"))]);
        let renewed = after_skips(&p, &remote, &heads);
        // The same entries, but `touched` is vouched for by a HeadObject
        // made after the old manifest: only a new one keeps it from
        // costing a HeadObject again.
        assert_eq!(renewed.manifest, p.manifest);
        assert_eq!(renewed.renewed, 1);
        assert!(needs_write(Some(&p), &renewed));
        // Without the HeadObject's evidence, the entry is dropped.
        let dropped = after_skips(&p, &remote, &ByKey::default());
        assert_eq!(dropped.manifest.len(), 1);
        assert!(needs_write(Some(&p), &dropped));

        let remote = [
            listed("fresh", "f", WRITTEN - 1),
            listed("touched", "t", WRITTEN - 1),
        ];
        let carried = after_skips(&p, &remote, &ByKey::default());
        assert_eq!(carried.renewed, 0);
        assert!(!needs_write(Some(&p), &carried), "nothing to rewrite");
    }

    #[test]
    fn a_clear_text_manifest_is_rewritten_even_when_nothing_changed() {
        let mut p = previous(&[]);
        let unchanged = Next {
            manifest: p.manifest.clone(),
            renewed: 0,
        };
        assert!(!needs_write(Some(&p), &unchanged));
        p.clear_text = true;
        assert!(needs_write(Some(&p), &unchanged));
        assert!(needs_write(None, &unchanged));
    }

    fn mark(since: i64, deploys: u32, provisional: bool) -> Mark {
        Mark {
            since,
            deploys,
            provisional,
        }
    }

    fn pending(key: &str, mark: Mark) -> PendingDelete {
        PendingDelete {
            key: Key::new(key),
            size: 1,
            mark,
            expiry: Expiry {
                until: None,
                deploys_left: Some(1),
            },
        }
    }

    #[test]
    fn grace_marks_are_private_read_against_the_stamp_and_scoped() {
        let mut p = previous(&[]);
        for (key, m) in [
            ("site/app.1.js", mark(WRITTEN - 100, 0, true)),
            ("site/app.0.js", mark(WRITTEN - 900, 1, false)),
            ("site/left-out/old.css", mark(WRITTEN - 900, 0, true)),
            ("site/deleted-by-hand.js", mark(WRITTEN - 900, 0, false)),
            ("site/back.js", mark(WRITTEN - 900, 0, false)),
        ] {
            p.manifest.mark(key, m);
        }
        let json = String::from_utf8(p.manifest.to_json()).unwrap();
        assert!(!json.contains("app.") && !json.contains("site/"), "{json}");
        assert!(json.contains(r#""provisional":true"#), "{json}");
        assert_eq!(read_back(&p.manifest), p.manifest);

        let everything = [
            listed("site/app.1.js", "e", WRITTEN - 5),
            listed("site/app.0.js", "e", WRITTEN - 5),
            listed("site/left-out/old.css", "e", WRITTEN - 5),
            listed("site/back.js", "e", WRITTEN - 5),
        ];
        let marks = p.marks(&everything);
        // Made by the deploy that wrote the manifest: it started no later
        // than the manifest's second ends. An older mark keeps its time.
        assert_eq!(
            marks[&Key::new("site/app.1.js")],
            mark(WRITTEN + 1, 0, false)
        );
        assert_eq!(
            marks[&Key::new("site/app.0.js")],
            mark(WRITTEN - 900, 1, false)
        );
        assert!(!marks.contains_key(&Key::new("site/deleted-by-hand.js")));

        // A deploy that excludes left-out/: app.1.js pending once more,
        // app.0.js's grace over (deleted), back.js back in the folder.
        let plan = Plan {
            skips: vec![(Key::new("site/back.js"), Skip::Unchanged)],
            deletes: vec![PlannedDelete {
                key: Key::new("site/app.0.js"),
                size: 1,
            }],
            pending: vec![pending("site/app.1.js", mark(WRITTEN + 1, 1, false))],
            ..Plan::default()
        };
        let scoped = [&everything[..2], &everything[3..]].concat();
        let next = next(
            p.manifest.salt().clone(),
            DEST,
            &plan,
            Evidence {
                trusted: ByKey::default(),
                remote: &scoped,
                hashes: &ByKey::default(),
                remote_headers: &ByKey::default(),
                written: &HashMap::new(),
                marks: &marks,
            },
        );
        let m = &next.manifest;
        let has = |key: &str| m.pending.get(&m.salt.key(key)).copied();
        assert_eq!(has("site/app.1.js"), Some(mark(WRITTEN + 1, 1, false)));
        // Left out of the deploy: not counted, kept as read.
        assert_eq!(
            has("site/left-out/old.css"),
            Some(mark(WRITTEN + 1, 0, false))
        );
        assert_eq!(has("site/app.0.js"), None);
        assert_eq!(has("site/back.js"), None);
        assert_eq!(m.pending.len(), 2);
        assert!(needs_write(Some(&p), &next));
    }

    #[test]
    fn a_deploy_that_moves_a_mark_rewrites_the_manifest() {
        let mut p = previous(&[]);
        p.manifest.mark("a.js", mark(WRITTEN - 9, 0, false));
        let same = Next {
            manifest: p.manifest.clone(),
            renewed: 0,
        };
        assert!(!needs_write(Some(&p), &same));
        let mut counted = same.manifest.clone();
        counted.mark("a.js", mark(WRITTEN - 9, 1, false));
        let counted = Next {
            manifest: counted,
            renewed: 0,
        };
        assert!(needs_write(Some(&p), &counted));
        // Without marks the manifest is as before DELETE_GRACE, and one
        // written then reads back with none.
        let plain = Manifest::new(salt(1), DEST);
        assert!(
            !String::from_utf8(plain.to_json())
                .unwrap()
                .contains("pending")
        );
        assert_eq!(read_back(&plain), plain);
    }
}
