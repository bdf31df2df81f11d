//! The deploy manifest: a small object under the prefix recording, per key,
//! the ETag S3 returned, the content hash the pipe computed, the part size
//! it used and a digest of the headers it set. ListObjectsV2 shows neither
//! headers nor (for SSE-KMS or foreign part sizes) a usable hash; with the
//! manifest a redeploy needs no HeadObject for keys nobody else touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::compare::{self, CompareError};
use crate::config::ObjectSettings;
use crate::deploy::Outcome;
use crate::local::LocalFile;
use crate::plan::{Hashed, Plan};
use crate::remote::{ObjectStore, RemoteObject, StoreError, Upload};

/// The manifest's key under the prefix, unless MANIFEST_KEY says otherwise.
pub const DEFAULT_KEY: &str = ".s3-cloudfront-deploy-manifest.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The ETag S3 returned when the pipe wrote the object, unquoted.
    pub etag: String,
    /// The content hash as the pipe computed it: the MD5, or with
    /// `part_size` the MD5 of the parts' MD5s and `-<parts>`.
    pub md5: String,
    pub part_size: Option<u64>,
    /// Digest of the headers the pipe set ([`headers_digest`]).
    pub headers: String,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub objects: BTreeMap<String, Entry>,
}

impl Manifest {
    pub fn new(objects: BTreeMap<String, Entry>) -> Self {
        Manifest {
            version: VERSION,
            objects,
        }
    }

    /// A manifest from another version, or unreadable, is no manifest: every
    /// key falls back to HeadObject, and the next write replaces it.
    pub fn parse(bytes: &[u8]) -> Option<Manifest> {
        serde_json::from_slice::<Manifest>(bytes)
            .ok()
            .filter(|m| m.version == VERSION)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// The entries still true of the bucket: those whose ETag is the one
    /// the listing shows. Anything else was written by someone else since.
    pub fn trusted(&self, listed: &HashMap<&str, &str>) -> HashMap<String, Entry> {
        self.objects
            .iter()
            .filter(|(key, e)| listed.get(key.as_str()) == Some(&e.etag.as_str()))
            .map(|(key, e)| (key.clone(), e.clone()))
            .collect()
    }
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
}

/// A short digest of headers: equal headers, equal digests.
pub fn headers_digest(h: &Headers) -> String {
    let mut hash = Md5::new();
    let fields = [
        &h.content_type,
        &h.cache_control,
        &h.content_encoding,
        &h.content_language,
        &h.content_disposition,
    ];
    for f in fields {
        hash.update(f.as_deref().unwrap_or("\u{0}").as_bytes());
        hash.update(b"\n");
    }
    hash.update(
        h.expires
            .map(|e| e.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    for (k, v) in &h.metadata {
        hash.update(format!("\n{}={v}", k.to_ascii_lowercase()).as_bytes());
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Takes the manifest out of the listing (it is not part of the site: never
/// compared, deleted or invalidated) and reads it.
pub async fn load<S: ObjectStore>(
    store: &S,
    key: &str,
    remote: &mut Vec<RemoteObject>,
) -> Result<Option<Manifest>, StoreError> {
    let Some(i) = remote.iter().position(|r| r.key == key) else {
        return Ok(None);
    };
    remote.swap_remove(i);
    let manifest = store
        .get(key)
        .await?
        .and_then(|bytes| Manifest::parse(&bytes));
    if manifest.is_none() {
        tracing::warn!("The deploy manifest {key} is unreadable: it will be rewritten");
    }
    Ok(manifest)
}

/// Writes the manifest, last, after every upload and delete succeeded.
pub async fn save<S: ObjectStore>(
    store: &S,
    key: &str,
    manifest: &Manifest,
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
        key: key.to_string(),
        path: file.path().to_path_buf(),
        size: json.len() as u64,
        content_type: "application/json".into(),
        settings: ObjectSettings {
            cache_control: Some("no-store".into()),
            ..ObjectSettings::default()
        },
    };
    store.put(&upload).await?;
    tracing::info!(
        "Deploy manifest written: {} entries",
        manifest.objects.len()
    );
    Ok(())
}

/// What the deploy learnt about each key, for the next manifest.
pub struct Evidence<'a> {
    pub trusted: &'a HashMap<String, Entry>,
    pub remote: &'a [RemoteObject],
    pub hashes: HashMap<String, Hashed>,
    pub remote_headers: &'a HashMap<String, String>,
}

/// After a successful deploy: hashes the uploaded files as S3 saw them,
/// builds the next manifest and writes it, unless nothing changed.
pub async fn update<S: ObjectStore>(
    store: &S,
    key: &str,
    previous: Option<&Manifest>,
    local: &[LocalFile],
    plan: &Plan,
    done: &Outcome,
    mut evidence: Evidence<'_>,
) -> Result<(), CompareError> {
    let uploaded: HashSet<&str> = plan.uploads.iter().map(|u| u.upload.key.as_str()).collect();
    let needs = local
        .iter()
        .filter(|f| uploaded.contains(f.key.as_str()))
        .map(|f| (f, compare::as_uploaded(f)))
        .collect();
    evidence
        .hashes
        .extend(compare::local_etags(store, needs).await?);
    let next = next(
        plan,
        evidence.trusted,
        evidence.remote,
        &evidence.hashes,
        evidence.remote_headers,
        &done.etags,
    );
    if previous != Some(&next) {
        save(store, key, &next).await?;
    }
    Ok(())
}

/// The manifest after a successful deploy: an entry for every key the pipe
/// knows to be as it left it.
pub fn next(
    plan: &Plan,
    trusted: &HashMap<String, Entry>,
    remote: &[RemoteObject],
    hashes: &HashMap<String, Hashed>,
    remote_headers: &HashMap<String, String>,
    written: &HashMap<String, String>,
) -> Manifest {
    let listed: HashMap<&str, &str> = remote
        .iter()
        .map(|r| (r.key.as_str(), r.etag.as_str()))
        .collect();
    let entry = |etag: &str, hash: &Hashed, headers: &str| Entry {
        etag: etag.to_string(),
        md5: hash.etag.clone(),
        part_size: hash.part_size,
        headers: headers.to_string(),
    };
    let mut objects = BTreeMap::new();
    for (key, _) in &plan.skips {
        let known = trusted.get(key).cloned().or_else(|| {
            let (etag, hash, headers) = (
                listed.get(key.as_str())?,
                hashes.get(key)?,
                remote_headers.get(key)?,
            );
            Some(entry(etag, hash, headers))
        });
        if let Some(e) = known {
            objects.insert(key.clone(), e);
        }
    }
    for u in plan.uploads.iter().chain(&plan.copies) {
        let key = &u.upload.key;
        if let (Some(etag), Some(hash)) = (written.get(key), hashes.get(key)) {
            let headers = headers_digest(&Headers::of(&u.upload.content_type, &u.upload.settings));
            objects.insert(key.clone(), entry(etag, hash, &headers));
        }
    }
    for key in &plan.kept {
        if let Some(e) = trusted.get(key) {
            objects.insert(key.clone(), e.clone());
        }
    }
    Manifest::new(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(etag: &str) -> Entry {
        Entry {
            etag: etag.into(),
            md5: "m".into(),
            part_size: None,
            headers: "h".into(),
        }
    }

    #[test]
    fn only_entries_matching_the_listing_are_trusted() {
        let m = Manifest::new(BTreeMap::from([
            ("a".to_string(), entry("e1")),
            ("b".to_string(), entry("e2")),
            ("gone".to_string(), entry("e3")),
        ]));
        let m = Manifest::parse(&m.to_json()).unwrap();
        let listed = HashMap::from([("a", "e1"), ("b", "overwritten")]);
        let trusted = m.trusted(&listed);
        assert_eq!(trusted.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn unreadable_or_other_versions_are_ignored() {
        assert!(Manifest::parse(b"not json").is_none());
        assert!(Manifest::parse(br#"{"version": 99, "objects": {}}"#).is_none());
    }

    #[test]
    fn digest_changes_with_any_header() {
        let base = Headers::of("text/html", &ObjectSettings::default());
        let d = headers_digest(&base);
        assert_eq!(d, headers_digest(&base.clone()));
        let mut other = base.clone();
        other.cache_control = Some("no-cache".into());
        assert_ne!(d, headers_digest(&other));
        let mut meta = base.clone();
        meta.metadata.insert("Team".into(), "web".into());
        let mut lower = base;
        lower.metadata.insert("team".into(), "web".into());
        assert_eq!(
            headers_digest(&meta),
            headers_digest(&lower),
            "S3 lowercases metadata names"
        );
    }
}
