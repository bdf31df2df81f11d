//! The deploy manifest's decisions, pure: a small object recording, per
//! key, the ETag S3 returned, the content hash the pipe computed, the part
//! size it used and a digest of the headers it set. ListObjectsV2 shows
//! neither headers nor (for SSE-KMS or foreign part sizes) a usable hash;
//! with the manifest a redeploy needs no HeadObject for keys nobody else
//! touched. Reading and writing it is `run::manifest`'s job.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::etag::{self, HashNeed, Hashed};
use crate::model::{ETag, HeadersDigest, Key, LocalFile, ManifestEntry as Entry, RemoteObject};

use super::Plan;

/// The manifest's key under the prefix, unless MANIFEST_KEY says otherwise.
pub const DEFAULT_KEY: &str = ".s3-cloudfront-deploy-manifest.json";
const VERSION: u32 = 1;

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub objects: BTreeMap<Key, Entry>,
}

impl Manifest {
    pub fn new(objects: BTreeMap<Key, Entry>) -> Self {
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
    pub fn trusted(&self, remote: &[RemoteObject]) -> HashMap<Key, Entry> {
        let listed: HashMap<&str, &ETag> =
            remote.iter().map(|r| (r.key.as_str(), &r.etag)).collect();
        self.objects
            .iter()
            .filter(|(key, e)| listed.get(key.as_str()) == Some(&&e.etag))
            .map(|(key, e)| (key.clone(), e.clone()))
            .collect()
    }
}

/// Takes the manifest's own object out of the listing: it is not part of
/// the site, so it is never compared, deleted or invalidated. Returns
/// whether it was there.
pub fn hide(remote: &mut Vec<RemoteObject>, key: &Key) -> bool {
    let before = remote.len();
    remote.retain(|r| r.key != *key);
    remote.len() != before
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
pub struct Evidence<'a> {
    pub trusted: &'a HashMap<Key, Entry>,
    pub remote: &'a [RemoteObject],
    pub hashes: &'a HashMap<Key, Hashed>,
    pub remote_headers: &'a HashMap<Key, HeadersDigest>,
    /// The ETag S3 gave each key the deploy wrote.
    pub written: &'a HashMap<Key, ETag>,
}

/// The manifest after a successful deploy: an entry for every key the pipe
/// knows to be as it left it.
pub fn next(plan: &Plan, evidence: &Evidence) -> Manifest {
    let listed: HashMap<&str, &ETag> = evidence
        .remote
        .iter()
        .map(|r| (r.key.as_str(), &r.etag))
        .collect();
    let entry = |etag: &ETag, hash: &Hashed, headers: &HeadersDigest| Entry {
        etag: etag.clone(),
        md5: hash.etag.clone(),
        part_size: hash.part_size,
        headers: headers.clone(),
    };
    let mut objects = BTreeMap::new();
    for (key, _) in &plan.skips {
        let known = evidence.trusted.get(key).cloned().or_else(|| {
            let (etag, hash, headers) = (
                listed.get(key.as_str())?,
                evidence.hashes.get(key)?,
                evidence.remote_headers.get(key)?,
            );
            Some(entry(etag, hash, headers))
        });
        if let Some(e) = known {
            objects.insert(key.clone(), e);
        }
    }
    for u in plan.uploads.iter().chain(&plan.copies) {
        let key = &u.upload.key;
        if let (Some(etag), Some(hash)) = (evidence.written.get(key), evidence.hashes.get(key)) {
            objects.insert(key.clone(), entry(etag, hash, &u.upload.headers().digest()));
        }
    }
    for key in &plan.kept {
        if let Some(e) = evidence.trusted.get(key) {
            objects.insert(key.clone(), e.clone());
        }
    }
    Manifest::new(objects)
}

/// Whether the manifest must be written: only when it would change.
pub fn needs_write(previous: Option<&Manifest>, next: &Manifest) -> bool {
    previous != Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(etag: &str) -> Entry {
        Entry {
            etag: ETag::new(etag),
            md5: ETag::new("m"),
            part_size: None,
            headers: HeadersDigest::of_text("h"),
        }
    }

    fn listed(key: &str, etag: &str) -> RemoteObject {
        RemoteObject {
            key: Key::new(key),
            size: 1,
            etag: ETag::new(etag),
        }
    }

    #[test]
    fn only_entries_matching_the_listing_are_trusted() {
        let m = Manifest::new(BTreeMap::from([
            (Key::new("a"), entry("e1")),
            (Key::new("b"), entry("e2")),
            (Key::new("gone"), entry("e3")),
        ]));
        let m = Manifest::parse(&m.to_json()).unwrap();
        let trusted = m.trusted(&[listed("a", "E1"), listed("b", "overwritten")]);
        assert_eq!(trusted.keys().collect::<Vec<_>>(), [&Key::new("a")]);
    }

    #[test]
    fn unreadable_or_other_versions_are_ignored() {
        assert!(Manifest::parse(b"not json").is_none());
        assert!(Manifest::parse(br#"{"version": 99, "objects": {}}"#).is_none());
    }

    #[test]
    fn the_manifest_is_hidden_from_the_listing() {
        let mut remote = vec![listed("p/a", "1"), listed("p/.m.json", "2")];
        assert!(hide(&mut remote, &Key::new("p/.m.json")));
        assert_eq!(remote, [listed("p/a", "1")]);
        assert!(!hide(&mut remote, &Key::new("p/.m.json")));
    }

    #[test]
    fn unchanged_manifests_are_not_rewritten() {
        let m = Manifest::new(BTreeMap::from([(Key::new("a"), entry("e1"))]));
        assert!(needs_write(None, &m));
        assert!(!needs_write(
            Some(&Manifest::parse(&m.to_json()).unwrap()),
            &m
        ));
    }
}
