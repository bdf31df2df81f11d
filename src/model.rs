//! The vocabulary every layer speaks: keys, prefixes, ETags, headers and the
//! settings of an object. Nothing here imports the rest of the crate, so any
//! module can use these types without pulling in a stage.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use arcstr::ArcStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An S3 object key: the full name of an object in its bucket, prefix
/// included (`site/css/app.css`). At most 1,024 bytes of UTF-8 (S3's limit).
/// Clones share one allocation: the scan's key is the one the listing,
/// the evidence and the plan hold, at 8 bytes a copy. `arcstr`'s thin
/// pointer (length and count beside the text) rather than `Arc<str>`'s
/// 16-byte one: a key is held four or five times over at a million files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(ArcStr);

impl Key {
    pub fn new(key: impl Into<String>) -> Self {
        Key(ArcStr::from(key.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Key {
    fn from(key: &str) -> Self {
        Key(ArcStr::from(key))
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, |key| Key::from(key))
    }
}

/// Values by key, held as one vector sorted by key: 8 bytes of key and
/// the value an entry, where a hash map of a million keys reserves two
/// million slots (2^21, for its 7/8 load) and costs more than twice that.
/// Built once, then read: [`ByKey::get`] searches from where the last
/// lookup ended, so a walk in key order (the planner's) costs a few
/// comparisons a key, and any other order a binary search.
pub struct ByKey<V> {
    pairs: Vec<(Key, V)>,
    /// Where the last lookup ended: a hint, never a promise (an atomic, so
    /// that a shared map stays `Sync`; relaxed, since any value is safe).
    last: AtomicUsize,
}

impl<V> ByKey<V> {
    fn new(pairs: Vec<(Key, V)>) -> Self {
        ByKey {
            pairs,
            last: AtomicUsize::new(0),
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        let at = self.position(key).ok()?;
        Some(&self.pairs[at].1)
    }

    /// [`slice::binary_search`]'s answer, found by galloping forward from
    /// the last lookup's place when `key` sorts after it: O(log d) for a
    /// key d places on.
    fn position(&self, key: &str) -> Result<usize, usize> {
        let pairs = &self.pairs;
        let order = |at: usize| {
            let k = pairs[at].0.as_str();
            // The same allocation (keys are shared): equal, unread.
            if std::ptr::eq(k, key) {
                Ordering::Equal
            } else {
                k.cmp(key)
            }
        };
        let last = self.last.load(Relaxed).min(pairs.len());
        // The key's place is in `from..to`.
        let (from, to) = if last < pairs.len() && order(last) != Ordering::Greater {
            let (mut from, mut step) = (last, 1);
            loop {
                let probe = from + step;
                if probe >= pairs.len() || order(probe) == Ordering::Greater {
                    break (from, probe.min(pairs.len()));
                }
                from = probe;
                step *= 2;
            }
        } else {
            (0, last)
        };
        let found = pairs[from..to]
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .map(|at| from + at)
            .map_err(|at| from + at);
        self.last.store(found.unwrap_or_else(|at| at), Relaxed);
        found
    }

    /// The pairs, in key order.
    pub fn into_pairs(self) -> Vec<(Key, V)> {
        self.pairs
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.into_iter()
    }

    /// Takes out the entries `take` chooses (called once each, in key
    /// order). The taken stay where they are and the rest move out: a
    /// deploy takes nearly all, and then holds one copy, not two.
    pub fn take_where(&mut self, mut take: impl FnMut(&Key, &V) -> bool) -> ByKey<V> {
        let mut kept: Vec<(Key, V)> = self.pairs.extract_if(.., |(k, v)| !take(k, v)).collect();
        kept.shrink_to_fit();
        let mut taken = std::mem::replace(&mut self.pairs, kept);
        taken.shrink_to_fit();
        self.last.store(0, Relaxed);
        ByKey::new(taken)
    }

    /// Adds `more`; of two entries for one key, `more`'s stays.
    pub fn merge(&mut self, more: ByKey<V>) {
        if self.is_empty() {
            *self = more;
        } else if !more.is_empty() {
            let mut all = std::mem::take(&mut self.pairs);
            all.extend(more.pairs);
            *self = ByKey::from(all);
        }
    }
}

/// Sorted once; of two pairs with one key, the later stays, as when a
/// hash map is collected.
impl<V> From<Vec<(Key, V)>> for ByKey<V> {
    fn from(mut pairs: Vec<(Key, V)>) -> Self {
        // Stable, so that of equal keys the later one is last of its run.
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(later, kept);
                }
                same
            });
        }
        pairs.shrink_to_fit();
        ByKey::new(pairs)
    }
}

/// Like a map's: panics when the key is missing.
impl<V> std::ops::Index<&Key> for ByKey<V> {
    type Output = V;
    fn index(&self, key: &Key) -> &V {
        self.get(key).expect("the key is in the map")
    }
}

impl<V> FromIterator<(Key, V)> for ByKey<V> {
    fn from_iter<I: IntoIterator<Item = (Key, V)>>(pairs: I) -> Self {
        ByKey::from(pairs.into_iter().collect::<Vec<_>>())
    }
}

impl<V, const N: usize> From<[(Key, V); N]> for ByKey<V> {
    fn from(pairs: [(Key, V); N]) -> Self {
        ByKey::from(Vec::from(pairs))
    }
}

impl<'a, V> IntoIterator for &'a ByKey<V> {
    type Item = (&'a Key, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (Key, V)>, fn(&'a (Key, V)) -> (&'a Key, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().map(|(k, v)| (k, v))
    }
}

impl<V> IntoIterator for ByKey<V> {
    type Item = (Key, V);
    type IntoIter = std::vec::IntoIter<(Key, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl<V> Default for ByKey<V> {
    fn default() -> Self {
        ByKey::new(Vec::new())
    }
}

impl<V: Clone> Clone for ByKey<V> {
    fn clone(&self) -> Self {
        ByKey::new(self.pairs.clone())
    }
}

impl<V: PartialEq> PartialEq for ByKey<V> {
    fn eq(&self, other: &Self) -> bool {
        self.pairs == other.pairs
    }
}

impl<V: Eq> Eq for ByKey<V> {}

impl<V: fmt::Debug> fmt::Debug for ByKey<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A value read from a JSON string through `make`, without an
/// intermediate `String` when the text needs no unescaping: a manifest
/// holds millions of them.
fn from_text<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    make: impl FnOnce(&str) -> T,
) -> Result<T, D::Error> {
    struct Text<F>(F);
    impl<T, F: FnOnce(&str) -> T> serde::de::Visitor<'_> for Text<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            Ok((self.0)(text))
        }
    }
    deserializer.deserialize_str(Text(make))
}

/// The key prefix a deploy owns, without leading or trailing `/`; empty for
/// the bucket's root. It owns the one rule for joining, stripping and
/// containing keys: `site` contains `site/a` but not `site2/a`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// `"/site/"`, `"site"` and `"site/"` are the same prefix.
    pub fn new(prefix: &str) -> Self {
        Prefix(prefix.trim_matches('/').to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The key of a path relative to the prefix, joined with exactly one `/`.
    pub fn join(&self, relative: &str) -> Key {
        if self.is_root() {
            Key::new(relative)
        } else {
            Key::new(format!("{}/{relative}", self.0))
        }
    }

    /// Bytes of [`Prefix::join`]'s key, without making it.
    pub fn join_len(&self, relative: &str) -> usize {
        if self.is_root() {
            relative.len()
        } else {
            self.0.len() + 1 + relative.len()
        }
    }

    /// The part of `key` after the prefix and its `/`; `None` when the key
    /// is not under the prefix.
    pub fn strip<'k>(&self, key: &'k str) -> Option<&'k str> {
        if self.is_root() {
            return Some(key);
        }
        key.strip_prefix(self.0.as_str())?.strip_prefix('/')
    }

    pub fn contains(&self, key: &str) -> bool {
        self.strip(key).is_some()
    }

    /// What ListObjectsV2 is asked for: `site/` (the `/` keeps `site2/` out),
    /// or nothing for the root.
    pub fn list_prefix(&self) -> String {
        if self.is_root() {
            String::new()
        } else {
            format!("{}/", self.0)
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entity tag as S3 reports it, without its quotes. Compared without
/// regard to case: hex digits are the same in either. A content hash is
/// held as its 16 bytes (and part count), 24 bytes in all, and written as
/// S3 writes it, lowercase hex; anything else is kept as given. In JSON
/// it is that text.
#[derive(Clone, Eq)]
pub struct ETag(Tag);

#[derive(Clone, PartialEq, Eq)]
enum Tag {
    /// An MD5 (`parts` 0) or the MD5 of `parts` parts' MD5s.
    Digest { md5: [u8; 16], parts: u32 },
    /// Not a content hash, or not in the form S3 writes one (a part count
    /// of 0 or with leading zeros): kept verbatim so it prints as read.
    Text(Box<str>),
}

/// What an ETag tells about the object's content (S3's "Checking object
/// integrity" guide: the ETag is the MD5 only for single-part uploads
/// without SSE-KMS or SSE-C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ETagKind {
    /// A single-part upload without SSE-KMS/SSE-C: the MD5 of the content.
    Md5,
    /// A multipart upload: the MD5 of the parts' MD5s, and the part count.
    Multipart { parts: u64 },
    /// Anything else (SSE-C, another store): it cannot be recomputed locally.
    Opaque,
}

impl ETag {
    /// From a header value or listing field, quoted or not.
    pub fn new(etag: &str) -> Self {
        let text = etag.trim().trim_matches('"');
        let md5 = |hex: &str| {
            let mut md5 = [0u8; 16];
            hex::decode_to_slice(hex, &mut md5).ok().map(|()| md5)
        };
        let digest = match text.split_once('-') {
            None => md5(text).map(|md5| (md5, 0)),
            Some((hex, parts)) => {
                let count = parts.parse::<u32>().ok().filter(|&n| n > 0);
                // Only the canonical count, so that the text reads back.
                let count = count.filter(|n| n.to_string() == parts);
                md5(hex).zip(count)
            }
        };
        ETag(match digest {
            Some((md5, parts)) => Tag::Digest { md5, parts },
            None => Tag::Text(text.into()),
        })
    }

    /// Whether it was read from empty text.
    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Tag::Text(text) if text.is_empty())
    }

    pub fn kind(&self) -> ETagKind {
        match self.0 {
            Tag::Digest { parts: 0, .. } => ETagKind::Md5,
            Tag::Digest { parts, .. } => ETagKind::Multipart {
                parts: parts.into(),
            },
            Tag::Text(_) => ETagKind::Opaque,
        }
    }
}

impl PartialEq for ETag {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Tag::Text(a), Tag::Text(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Tag::Digest { md5, parts } => {
                // One write of the hex (a manifest writes millions), not
                // one formatted write per byte.
                let mut hex = [0u8; 32];
                hex::encode_to_slice(md5, &mut hex).expect("twice the bytes");
                f.write_str(std::str::from_utf8(&hex).expect("hex is ASCII"))?;
                if *parts > 0 {
                    write!(f, "-{parts}")?;
                }
                Ok(())
            }
            Tag::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({:?})", self.to_string())
    }
}

impl Serialize for ETag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ETag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, ETag::new)
    }
}

/// Enums whose values are the strings S3's API takes, with the list of
/// every value for error messages.
macro_rules! api_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value S3 calls `text`, exactly (S3's values are case-sensitive).
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }

            /// `a, b, c`: what the error message lists.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

api_enum!(
    /// A canned ACL (S3's "Canned ACL" table; what `aws s3 sync --acl` takes).
    Acl {
        Private = "private",
        PublicRead = "public-read",
        PublicReadWrite = "public-read-write",
        AuthenticatedRead = "authenticated-read",
        AwsExecRead = "aws-exec-read",
        BucketOwnerRead = "bucket-owner-read",
        BucketOwnerFullControl = "bucket-owner-full-control",
    }
);

api_enum!(
    /// A storage class a PutObject may ask for.
    StorageClass {
        Standard = "STANDARD",
        ReducedRedundancy = "REDUCED_REDUNDANCY",
        StandardIa = "STANDARD_IA",
        OnezoneIa = "ONEZONE_IA",
        IntelligentTiering = "INTELLIGENT_TIERING",
        Glacier = "GLACIER",
        DeepArchive = "DEEP_ARCHIVE",
        GlacierIr = "GLACIER_IR",
    }
);

api_enum!(
    /// Server-side encryption (`--sse`).
    Sse {
        Aes256 = "AES256",
        Kms = "aws:kms",
        KmsDsse = "aws:kms:dsse",
    }
);

/// Headers and storage options set on an uploaded object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    pub acl: Option<Acl>,
    pub storage_class: Option<StorageClass>,
    pub cache_control: Option<String>,
    /// Seconds since the Unix epoch; sent as an HTTP date.
    pub expires: Option<i64>,
    pub content_encoding: Option<String>,
    /// Replaces the Content-Type chosen by extension (`--content-type`).
    pub content_type: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    /// `x-amz-meta-*` headers, without the prefix.
    pub metadata: BTreeMap<String, String>,
    pub sse: Option<Sse>,
    pub sse_kms_key_id: Option<String>,
}

/// The headers an object is served with, as the pipe sets them and as
/// HeadObject reports them, in one canonical form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub expires: Option<i64>,
    pub metadata: BTreeMap<String, String>,
}

/// A short digest of [`Headers`]: equal headers, equal digests. 8 bytes,
/// written as 16 hex digits in the deploy manifest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeadersDigest([u8; 8]);

impl HeadersDigest {
    /// A digest standing for `text`: distinct texts, distinct digests. For
    /// a manifest field that is not 16 hex digits (none this pipe wrote),
    /// which then matches no headers, and for tests.
    pub fn of_text(text: &str) -> Self {
        use md5::{Digest, Md5};
        let mut digest = [0u8; 8];
        digest.copy_from_slice(&Md5::digest(text.as_bytes())[..8]);
        HeadersDigest(digest)
    }
}

impl fmt::Display for HeadersDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for HeadersDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeadersDigest({self})")
    }
}

impl Serialize for HeadersDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HeadersDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, |text| {
            let mut digest = [0u8; 8];
            match hex::decode_to_slice(text, &mut digest) {
                Ok(()) => HeadersDigest(digest),
                Err(_) => HeadersDigest::of_text(text),
            }
        })
    }
}

impl Headers {
    pub fn of(content_type: &str, s: &ObjectSettings) -> Headers {
        Headers {
            content_type: Some(content_type.to_string()),
            cache_control: s.cache_control.clone(),
            content_encoding: s.content_encoding.clone(),
            content_language: s.content_language.clone(),
            content_disposition: s.content_disposition.clone(),
            expires: s.expires,
            metadata: s.metadata.clone(),
        }
    }

    /// S3 lowercases metadata names, so `Team` and `team` digest alike.
    pub fn digest(&self) -> HeadersDigest {
        use md5::{Digest, Md5};
        let mut hash = Md5::new();
        let fields = [
            &self.content_type,
            &self.cache_control,
            &self.content_encoding,
            &self.content_language,
            &self.content_disposition,
        ];
        for f in fields {
            hash.update(f.as_deref().unwrap_or("\u{0}").as_bytes());
            hash.update(b"\n");
        }
        hash.update(
            self.expires
                .map(|e| e.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        for (k, v) in &self.metadata {
            hash.update(format!("\n{}={v}", k.to_ascii_lowercase()).as_bytes());
        }
        let mut digest = [0u8; 8];
        digest.copy_from_slice(&hash.finalize()[..8]);
        HeadersDigest(digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// What the deploy manifest knows of one object the pipe wrote: 40 bytes.
pub struct ManifestEntry {
    /// The ETag S3 returned when the pipe wrote the object.
    pub etag: ETag,
    /// The content hash and part size when either is not what a single
    /// part upload has (the ETag, no part size): the pipe's own uploads of
    /// files under 8 MiB, nearly all of a site, have neither. Boxed: 8
    /// bytes an entry instead of 32, in every copy of the entry.
    other: Option<Box<Other>>,
    /// Digest of the headers the pipe set.
    pub headers: HeadersDigest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Other {
    md5: ETag,
    part_size: Option<std::num::NonZeroU64>,
}

impl ManifestEntry {
    pub fn new(
        etag: ETag,
        md5: ETag,
        part_size: Option<std::num::NonZeroU64>,
        headers: HeadersDigest,
    ) -> Self {
        ManifestEntry {
            other: (md5 != etag || part_size.is_some()).then(|| Box::new(Other { md5, part_size })),
            etag,
            headers,
        }
    }

    /// The content hash as the pipe computed it: the MD5, or with
    /// [`ManifestEntry::part_size`] the MD5 of the parts' MD5s and `-<parts>`.
    pub fn md5(&self) -> &ETag {
        self.other.as_ref().map_or(&self.etag, |o| &o.md5)
    }

    /// Bytes of each part but the last, for a multipart upload (never 0).
    pub fn part_size(&self) -> Option<std::num::NonZeroU64> {
        self.other.as_ref().and_then(|o| o.part_size)
    }
}

/// Written as `[etag, md5, part_size, headers]`, with `md5` empty when it
/// is the ETag (the pipe's own uploads: nearly always) and `part_size` 0
/// when there is none: about 60 bytes of JSON an entry, where the fields by
/// name took 130. Read in either form (manifests before version 3 name
/// the fields).
impl Serialize for ManifestEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut entry = serializer.serialize_tuple(4)?;
        entry.serialize_element(&self.etag)?;
        match self.md5() {
            md5 if *md5 == self.etag => entry.serialize_element("")?,
            md5 => entry.serialize_element(md5)?,
        }
        entry.serialize_element(&self.part_size().map_or(0, std::num::NonZeroU64::get))?;
        entry.serialize_element(&self.headers)?;
        entry.end()
    }
}

impl<'de> Deserialize<'de> for ManifestEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, value::MapAccessDeserializer};
        /// The form before version 3.
        #[derive(Deserialize)]
        struct Named {
            etag: ETag,
            md5: ETag,
            part_size: Option<std::num::NonZeroU64>,
            headers: HeadersDigest,
        }
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ManifestEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[etag, md5, part_size, headers], or those fields by name")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ManifestEntry, A::Error> {
                let short = |n| A::Error::invalid_length(n, &"4 elements");
                let etag: ETag = seq.next_element()?.ok_or_else(|| short(0))?;
                let md5: ETag = seq.next_element()?.ok_or_else(|| short(1))?;
                let part_size: u64 = seq.next_element()?.ok_or_else(|| short(2))?;
                let headers = seq.next_element()?.ok_or_else(|| short(3))?;
                let md5 = if md5.is_empty() { etag.clone() } else { md5 };
                let part_size = std::num::NonZeroU64::new(part_size);
                Ok(ManifestEntry::new(etag, md5, part_size, headers))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ManifestEntry, A::Error> {
                let n = Named::deserialize(MapAccessDeserializer::new(map))?;
                Ok(ManifestEntry::new(n.etag, n.md5, n.part_size, n.headers))
            }
        }
        deserializer.deserialize_any(Entry)
    }
}

/// A file of the folder, as the object it should become. Its relative
/// path is the end of its key, and its bytes are at LOCAL_PATH joined with
/// that path unless stored elsewhere: a million files hold one copy of
/// each name, 32 bytes and the key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The full object key: prefix, `/`, the NFC-normalised relative path.
    pub key: Key,
    /// Where in `key` the relative path starts.
    relative_at: u32,
    /// LOCAL_PATH, shared by every file of a scan; when `elsewhere`, the
    /// path of the bytes to upload itself. (`Arc<PathBuf>`: a thin
    /// pointer, 8 bytes a file where `Arc<Path>` takes 16.)
    base: Arc<PathBuf>,
    /// The bytes to upload are not at `base/relative` but at `base`: a
    /// name on disk that is not NFC, a compressed copy, a precompressed
    /// sibling. Rare: a flag in what would be padding, where a pointer of
    /// its own took 8 bytes a file.
    elsewhere: bool,
    /// Bytes of [`LocalFile::path`].
    pub size: u64,
    /// The Content-Encoding of the bytes when they are compressed.
    pub encoding: Option<Encoding>,
}

/// A Content-Encoding the pipe serves compressed bytes with: one byte in
/// every file, where its name took 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Br,
}

impl Encoding {
    /// The header's value (RFC 9110, section 8.4.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }
}

impl LocalFile {
    /// The file at `root/relative` (`relative`: `/` separators, NFC), whose
    /// key is `prefix`'s join with `relative`.
    pub fn new(root: Arc<PathBuf>, prefix: &Prefix, relative: &str, size: u64) -> Self {
        let key = prefix.join(relative);
        let relative_at = u32::try_from(key.len() - relative.len()).expect("keys are short");
        LocalFile {
            key,
            relative_at,
            base: root,
            elsewhere: false,
            size,
            encoding: None,
        }
    }

    /// The path relative to LOCAL_PATH with `/` separators, as filters see it.
    pub fn relative(&self) -> &str {
        &self.key[self.relative_at as usize..]
    }

    /// The bytes to upload: the file itself, or what [`LocalFile::set_path`] named.
    pub fn path(&self) -> PathBuf {
        match self.elsewhere {
            true => self.base.as_ref().clone(),
            false => self.base.join(self.relative()),
        }
    }

    /// Where the bytes to upload are, when not at LOCAL_PATH/relative.
    pub fn set_path(&mut self, path: PathBuf) {
        if path != self.path() {
            self.base = Arc::new(path);
            self.elsewhere = true;
        }
    }
}

/// S3's limit on a key: 1,024 bytes of UTF-8 (S3 User Guide, "Naming
/// Amazon S3 objects").
pub const MAX_KEY_BYTES: usize = 1024;

/// Something in LOCAL_PATH that cannot become an object. Every one is
/// gathered and reported together, before any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    /// The path relative to LOCAL_PATH with `/` separators, NFC, bytes that
    /// are not UTF-8 written `\xNN`; `.` for LOCAL_PATH itself.
    pub relative: String,
    pub cause: ScanCause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanCause {
    /// A symbolic link whose target does not exist.
    BrokenLink {
        target: String,
    },
    /// A link to a folder that contains it, or a chain of links that never
    /// ends.
    LinkLoop {
        target: String,
    },
    /// Opening or reading the file failed; the system's message.
    UnreadableFile(String),
    /// Listing the folder failed; the system's message.
    UnreadableFolder(String),
    /// A FIFO, socket or device: there are no bytes to upload.
    NotAFile(&'static str),
    NotUtf8,
    /// A control character (U+0000-U+001F, U+007F), which S3 advises
    /// against and its XML requests (listing, batch delete) cannot carry.
    ControlCharacter(char),
    /// A key of whitespace alone (a file named ` ` at the bucket's root):
    /// S3 stores it, but the AWS SDK takes it for a missing key and sends
    /// no request (seen with U+0020, U+00A0, U+2003, U+3000).
    BlankKey,
    /// The key, prefix included, is longer than [`MAX_KEY_BYTES`]; for a
    /// folder, so is every key under it.
    KeyTooLong {
        bytes: usize,
        folder: bool,
    },
    /// Names of the folder that normalise (NFC) to the same path, so to the
    /// same key, as found on disk.
    SameKey {
        names: Vec<String>,
    },
}

impl ScanCause {
    /// The cause's name, as the report's `kind` and the console say it.
    pub fn kind(&self) -> &'static str {
        match self {
            ScanCause::BrokenLink { .. } => "broken symbolic link",
            ScanCause::LinkLoop { .. } => "symbolic link loop",
            ScanCause::UnreadableFile(_) => "unreadable file",
            ScanCause::UnreadableFolder(_) => "unreadable folder",
            ScanCause::NotAFile(_) => "not a regular file",
            ScanCause::NotUtf8 => "name not valid UTF-8",
            ScanCause::ControlCharacter(_) | ScanCause::BlankKey => "name S3 cannot take",
            ScanCause::KeyTooLong { .. } => "key longer than 1,024 bytes",
            ScanCause::SameKey { .. } => "two names for one key",
        }
    }
}

/// `text` with the characters `escape` picks written as `\\u{..}`.
fn escaped_chars(text: &str, escape: impl Fn(char) -> bool) -> String {
    text.chars()
        .map(|c| {
            if escape(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `broken symbolic link: docs/old → ../missing`: the kind, the path, and
/// what the kind needs said.
impl fmt::Display for ScanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters escaped, so that a name prints on one line.
        let path = escaped_chars(&self.relative, |c| c.is_ascii_control());
        write!(f, "{}: ", self.cause.kind())?;
        match &self.cause {
            ScanCause::BrokenLink { target } => write!(f, "{path} → {target}"),
            ScanCause::LinkLoop { target } => write!(f, "{path} → {target}"),
            ScanCause::UnreadableFile(error) | ScanCause::UnreadableFolder(error) => {
                write!(f, "{path} ({error})")
            }
            ScanCause::NotAFile(what) => write!(f, "{path} (a {what})"),
            ScanCause::NotUtf8 => write!(f, "{path} (S3 keys are UTF-8)"),
            ScanCause::ControlCharacter(c) => {
                write!(f, "{path} (control character U+{:04X})", *c as u32)
            }
            ScanCause::BlankKey => {
                let codes: Vec<String> = path
                    .chars()
                    .map(|c| format!("U+{:04X}", c as u32))
                    .collect();
                write!(
                    f,
                    "\"{path}\" ({}: a key of whitespace alone, which the AWS SDK does not send)",
                    codes.join(" ")
                )
            }
            ScanCause::KeyTooLong {
                bytes,
                folder: false,
            } => {
                write!(f, "{path} ({bytes} bytes with the prefix)")
            }
            ScanCause::KeyTooLong {
                bytes,
                folder: true,
            } => write!(
                f,
                "{path}/ (a folder: its keys have {bytes} bytes or more with the prefix)"
            ),
            ScanCause::SameKey { names } => {
                // Beyond ASCII escaped too: the spellings must be told apart.
                let names: Vec<String> = names
                    .iter()
                    .map(|n| escaped_chars(n, |c| !c.is_ascii() || c.is_ascii_control()))
                    .collect();
                write!(
                    f,
                    "{path} ({}: the names differ only in Unicode normalisation)",
                    names.join(", ")
                )
            }
        }
    }
}

/// An object as ListObjectsV2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub key: Key,
    /// Bytes.
    pub size: u64,
    pub etag: ETag,
    /// LastModified, in seconds since the Unix epoch: S3 stamps whole
    /// seconds, and stamps an object anew on every PutObject and CopyObject,
    /// headers-only copies included.
    pub last_modified: i64,
}

/// Where one object lives: a key in the deploy's bucket, or in another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// `None`: the deploy's own bucket (S3_BUCKET).
    pub bucket: Option<String>,
    pub key: Key,
}

impl Location {
    pub fn here(key: Key) -> Self {
        Location { bucket: None, key }
    }
}

/// `key` in the deploy's bucket, `s3://bucket/key` in another.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bucket {
            None => write!(f, "{}", self.key),
            Some(bucket) => write!(f, "s3://{bucket}/{}", self.key),
        }
    }
}

/// A manifest entry the listing bears out (`plan::manifest` decides which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub entry: ManifestEntry,
    /// Its headers too: nothing wrote the object since the manifest, so the
    /// headers are the ones the entry recorded. When `false`, only the
    /// content is known, and a HeadObject reads the headers.
    pub headers: bool,
}

/// A multipart upload that was started and neither completed nor aborted:
/// S3 bills its parts until it is aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    pub key: Key,
    pub upload_id: String,
    /// When it was initiated, in seconds since the Unix epoch.
    pub initiated: Option<i64>,
}

/// One object to write: its body streamed from `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: Key,
    pub path: PathBuf,
    /// Bytes of `path`.
    pub size: u64,
    pub content_type: String,
    pub settings: ObjectSettings,
}

impl Upload {
    pub fn headers(&self) -> Headers {
        Headers::of(&self.content_type, &self.settings)
    }
}

/// A value that must never be printed: its Debug is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";

    #[test]
    fn by_key_finds_what_a_map_would() {
        let k = Key::new;
        // Out of order, one key twice: the later value stays, as in a map.
        let mut map: ByKey<u32> = [(k("b"), 1), (k("a"), 2), (k("b"), 3), (k("c"), 4)]
            .into_iter()
            .collect();
        assert_eq!(map.len(), 3);
        assert_eq!(
            (map.get("a"), map.get("b"), map.get("c")),
            (Some(&2), Some(&3), Some(&4))
        );
        assert_eq!(map.get("d"), None);
        assert_eq!(map[&k("b")], 3);
        let keys: Vec<&str> = map.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);

        let odd = map.take_where(|_, v| v % 2 == 1);
        assert_eq!(odd.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [3]);
        assert_eq!(map.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [2, 4]);

        map.merge(ByKey::from([(k("c"), 40), (k("0"), 0)]));
        let all: Vec<(&str, u32)> = map.iter().map(|(key, v)| (key.as_str(), *v)).collect();
        assert_eq!(all, [("0", 0), ("a", 2), ("c", 40)]);
        let mut empty = ByKey::default();
        empty.merge(odd);
        assert_eq!(empty.get("b"), Some(&3));
    }

    proptest::proptest! {
        /// Whatever the order of lookups (the planner's walk in key order,
        /// backwards, at random), each finds what a binary search finds:
        /// where the last one ended is only where the next one starts.
        #[test]
        fn by_key_lookups_in_any_order_agree_with_a_map(
            keys in proptest::collection::btree_set("[a-e]{0,3}", 0..40),
            lookups in proptest::collection::vec("[a-e]{0,3}", 0..60),
            walk in proptest::bool::ANY,
        ) {
            let map: std::collections::BTreeMap<String, usize> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
            let by_key: ByKey<usize> =
                map.iter().map(|(k, v)| (Key::new(k.as_str()), *v)).collect();
            let mut lookups = lookups;
            if walk {
                lookups.sort();
            }
            for key in &lookups {
                proptest::prop_assert_eq!(by_key.get(key), map.get(key));
            }
            // Its own keys, which it finds by address.
            for (key, v) in &by_key {
                proptest::prop_assert_eq!(by_key.get(key), Some(v));
            }
        }
    }

    /// A million files hold a million of each: what a field costs shows
    /// here first.
    #[test]
    fn what_every_file_holds_stays_small() {
        assert_eq!(std::mem::size_of::<LocalFile>(), 32);
        assert_eq!(std::mem::size_of::<RemoteObject>(), 48);
        assert_eq!(std::mem::size_of::<ETag>(), 24);
        assert_eq!(std::mem::size_of::<Key>(), 8);
        assert_eq!(std::mem::size_of::<ManifestEntry>(), 40);
        assert_eq!(std::mem::size_of::<Trusted>(), 48);
    }

    #[test]
    fn prefix_joins_strips_and_contains() {
        let site = Prefix::new("/site/");
        assert_eq!(site.as_str(), "site");
        assert_eq!(site.join("a/b.css").as_str(), "site/a/b.css");
        assert_eq!(site.join_len("a/b.css"), "site/a/b.css".len());
        assert_eq!(site.strip("site/a"), Some("a"));
        assert_eq!(site.strip("site2/a"), None);
        assert_eq!(site.strip("site"), None);
        assert!(!site.contains("other/site/a"));
        assert_eq!(site.list_prefix(), "site/");
        let root = Prefix::new("");
        assert_eq!(root.join("a").as_str(), "a");
        assert_eq!(root.join_len("a"), 1);
        assert_eq!(root.strip("a/b"), Some("a/b"));
        assert_eq!(root.list_prefix(), "");
    }

    #[test]
    fn etags_are_unquoted_compared_without_case_and_classified() {
        assert_eq!(ETag::new("\"abc\"").to_string(), "abc");
        assert_eq!(ETag::new(A), ETag::new(&A.to_uppercase()));
        assert_eq!(ETag::new(A).kind(), ETagKind::Md5);
        assert_eq!(
            ETag::new(&format!("{A}-3")).kind(),
            ETagKind::Multipart { parts: 3 }
        );
        for opaque in [format!("{A}-0"), "abc".into(), format!("{A}-x")] {
            assert_eq!(ETag::new(&opaque).kind(), ETagKind::Opaque, "{opaque}");
        }
    }

    #[test]
    fn etags_print_as_s3_writes_them_and_read_back_from_json() {
        let upper = ETag::new(&format!("\"{}-12\"", A.to_uppercase()));
        assert_eq!(upper.to_string(), format!("{A}-12"));
        // Not in S3's form: kept as given, compared without case.
        for text in [
            format!("{A}-012"),
            format!("{A}-0"),
            "W/abc".into(),
            "".into(),
        ] {
            assert_eq!(ETag::new(&text).to_string(), text);
        }
        assert_eq!(ETag::new("Opaque"), ETag::new("oPAQUE"));
        assert_ne!(ETag::new(A), ETag::new(&format!("{A}-1")));
        let json = serde_json::to_string(&upper).unwrap();
        assert_eq!(json, format!("\"{A}-12\""));
        assert_eq!(serde_json::from_str::<ETag>(&json).unwrap(), upper);
        let key: Key = serde_json::from_str("\"site/caf\\u00e9\"").unwrap();
        assert_eq!(key.as_str(), "site/caf\u{e9}");
    }

    #[test]
    fn header_digests_read_back_from_json_and_odd_text_matches_nothing() {
        let d = Headers::of("text/html", &ObjectSettings::default()).digest();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<HeadersDigest>(&json).unwrap(), d);
        let odd: HeadersDigest = serde_json::from_str("\"stale\"").unwrap();
        assert_eq!(odd, HeadersDigest::of_text("stale"));
        assert_ne!(odd, d);
    }

    #[test]
    fn api_enums_round_trip_and_list_their_values() {
        assert_eq!(Acl::parse("public-read"), Some(Acl::PublicRead));
        assert_eq!(Acl::parse("PUBLIC-READ"), None);
        assert!(Acl::names().starts_with("private, public-read"));
        assert_eq!(Sse::parse("aws:kms").map(Sse::as_str), Some("aws:kms"));
        assert_eq!(StorageClass::ALL.len(), 8);
    }

    #[test]
    fn digest_changes_with_any_header_but_not_metadata_case() {
        let base = Headers::of("text/html", &ObjectSettings::default());
        let d = base.digest();
        assert_eq!(d.to_string().len(), 16);
        let mut other = base.clone();
        other.cache_control = Some("no-cache".into());
        assert_ne!(d, other.digest());
        let mut meta = base.clone();
        meta.metadata.insert("Team".into(), "web".into());
        let mut lower = base;
        lower.metadata.insert("team".into(), "web".into());
        assert_eq!(meta.digest(), lower.digest());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("topsecret")), "Secret(***)");
    }
}
