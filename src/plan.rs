//! Stage 4: the plan. Pure functions only: given what is local, what is
//! remote and the hashes gathered for the files that need one, decide what
//! to upload, skip and delete, and why. Execution never re-decides.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::config::{MaxDelete, ObjectSettings};
use crate::content_type::content_type;
use crate::filter::Filters;
use crate::local::LocalFile;
use crate::manifest::{Entry, Headers, headers_digest};
use crate::remote::{RemoteObject, Upload, part_size};
use crate::rules::{self, Rules};

/// What an ETag tells about the object's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etag<'a> {
    /// A single-part upload without SSE-KMS/SSE-C: the MD5 of the content.
    Md5(&'a str),
    /// A multipart upload: the MD5 of the parts' MD5s, and the part count.
    Multipart { parts: u64 },
    /// Anything else (SSE-C, other stores): it cannot be recomputed locally.
    Opaque,
}

pub fn classify(etag: &str) -> Etag<'_> {
    let is_md5 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match etag.split_once('-') {
        None if is_md5(etag) => Etag::Md5(etag),
        Some((md5, parts)) if is_md5(md5) => match parts.parse() {
            Ok(parts) if parts > 0 => Etag::Multipart { parts },
            _ => Etag::Opaque,
        },
        _ => Etag::Opaque,
    }
}

/// The local files and remote objects the filters and `ignore` rules let
/// through; excluded remote keys are thereby never compared and never deleted.
pub fn apply_filters(
    local: Vec<LocalFile>,
    remote: Vec<RemoteObject>,
    prefix: &str,
    filters: &Filters,
    rules: &Rules,
) -> (Vec<LocalFile>, Vec<RemoteObject>, usize) {
    if filters.is_empty() && !rules.0.iter().any(|r| r.ignore) {
        return (local, remote, 0);
    }
    let included = |relative: &str| {
        filters.includes(relative) && !rules.first_match(relative).is_some_and(|r| r.ignore)
    };
    let before = local.len() + remote.len();
    let local: Vec<LocalFile> = local
        .into_iter()
        .filter(|f| included(&f.relative))
        .collect();
    let strip = |key: &str| -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            key.strip_prefix(prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(key)
                .to_string()
        }
    };
    let remote: Vec<RemoteObject> = remote
        .into_iter()
        .filter(|r| included(&strip(&r.key)))
        .collect();
    let excluded = before - local.len() - remote.len();
    (local, remote, excluded)
}

/// Why a plan's deletes were refused before any write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteRefused {
    #[error(
        "LOCAL_PATH is empty and DELETE_FLAG would delete all {remote} objects under the prefix: refusing. \
         Check that the build produced files; to really empty the prefix, set ALLOW_DELETE_ALL to true"
    )]
    EmptyFolder { remote: usize },
    #[error(
        "the plan deletes {deletes} of {remote} remote objects, more than MAX_DELETE allows ({limit}): refusing \
         before any change. Check LOCAL_PATH and the filters; if this is intended, raise MAX_DELETE \
         (a number, or a percentage such as 100%)"
    )]
    TooMany {
        deletes: usize,
        remote: usize,
        limit: usize,
    },
    #[error(
        "the plan deletes {deletes} of {remote} remote objects, more than half of them and more than the \
         {local} files LOCAL_PATH holds: refusing before any change, as this is what a broken build or a wrong \
         LOCAL_PATH looks like. If this is intended, set MAX_DELETE (a number, or a percentage such as 100%)"
    )]
    MostlyGone {
        deletes: usize,
        remote: usize,
        local: usize,
    },
    #[error("refusing to delete {0}: it is outside the deploy prefix")]
    OutsidePrefix(String),
}

/// The delete guard: a pure check of the plan against the limits.
pub fn check_deletes(
    plan: &Plan,
    remote: usize,
    local: usize,
    prefix: &str,
    max: MaxDelete,
    allow_delete_all: bool,
) -> Result<(), DeleteRefused> {
    let inside = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    if let Some(outside) = plan.deletes.iter().find(|d| !d.key.starts_with(&inside)) {
        return Err(DeleteRefused::OutsidePrefix(outside.key.clone()));
    }
    if plan.deletes.is_empty() || allow_delete_all {
        return Ok(());
    }
    if local == 0 {
        return Err(DeleteRefused::EmptyFolder { remote });
    }
    let deletes = plan.deletes.len();
    let limit = match max {
        MaxDelete::Count(n) => n,
        MaxDelete::Fraction(f) => (remote as f64 * f).floor() as usize,
        MaxDelete::Default if deletes * 2 > remote && deletes > local => {
            return Err(DeleteRefused::MostlyGone {
                deletes,
                remote,
                local,
            });
        }
        MaxDelete::Default => return Ok(()),
    };
    if deletes > limit {
        return Err(DeleteRefused::TooMany {
            deletes,
            remote,
            limit,
        });
    }
    Ok(())
}

/// A local file's content hash, as S3 would compute its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub etag: String,
    /// The part size of a multipart ETag; `None` for a plain MD5.
    pub part_size: Option<u64>,
}

/// How a local file must be hashed to compare with its remote ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashNeed {
    /// The MD5 of the whole file.
    Md5,
    /// The multipart ETag with this part size.
    Parts(u64),
    /// The multipart ETag with the part size of the remote object's first
    /// part, which only a HeadObject can tell.
    PartsOfRemote,
}

/// The files worth hashing: only those whose remote object has the same size
/// and a comparable ETag. Everything else is decided without reading a byte.
pub fn hashes_needed<'a>(
    local: &'a [LocalFile],
    remote: &[RemoteObject],
    size_only: bool,
    trusted: &HashMap<String, Entry>,
) -> Vec<(&'a LocalFile, HashNeed)> {
    if size_only {
        return Vec::new();
    }
    let remote: HashMap<&str, &RemoteObject> = remote.iter().map(|r| (r.key.as_str(), r)).collect();
    local
        .iter()
        .filter_map(|file| {
            let obj = remote
                .get(file.key.as_str())
                .filter(|r| r.size == file.size)?;
            // The manifest knows how the pipe hashed this object, whatever
            // its ETag looks like (SSE-KMS, foreign part sizes).
            if let Some(entry) = trusted.get(&file.key) {
                return Some((file, entry.part_size.map_or(HashNeed::Md5, HashNeed::Parts)));
            }
            let need = match classify(&obj.etag) {
                Etag::Md5(_) => HashNeed::Md5,
                Etag::Multipart { parts } if file.size.div_ceil(part_size(file.size)) == parts => {
                    HashNeed::Parts(part_size(file.size))
                }
                Etag::Multipart { .. } => HashNeed::PartsOfRemote,
                Etag::Opaque => return None,
            };
            Some((file, need))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    New,
    SizeChanged {
        remote: u64,
        local: u64,
    },
    ContentChanged,
    /// The ETag is not an MD5 the pipe can recompute (SSE-C, a foreign store).
    NotComparable(String),
    Unchanged,
    /// Same size, not compared further (`--size-only`).
    SameSize,
    /// Same content, other headers.
    HeadersChanged,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::New => write!(f, "new file"),
            Reason::SizeChanged { remote, local } => {
                write!(f, "size changed ({remote} → {local} bytes)")
            }
            Reason::ContentChanged => write!(f, "content changed (same size, different MD5)"),
            Reason::NotComparable(etag) => {
                write!(
                    f,
                    "remote ETag {etag:?} is not a content hash (SSE-KMS/SSE-C?), so it cannot be compared"
                )
            }
            Reason::Unchanged => write!(f, "unchanged (same content hash)"),
            Reason::SameSize => write!(f, "same size (--size-only)"),
            Reason::HeadersChanged => write!(f, "same content, headers changed"),
        }
    }
}

/// Uploads go in two waves so that no visitor gets a new page that points
/// at an asset not uploaded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wave {
    Assets,
    EntryDocuments,
}

/// Documents a visitor or crawler enters by: uploaded after everything else.
pub const ENTRY_DOCUMENTS: &[&str] = &[
    "*.html",
    "*.htm",
    "sitemap*.xml",
    "robots.txt",
    "sw.js",
    "service-worker.js",
    "*.webmanifest",
    "manifest.json",
];

/// The wave of a file, by its name (the part after the last `/`).
pub fn wave(relative: &str, entry_documents: &globset::GlobSet) -> Wave {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    if entry_documents.is_match(name) {
        Wave::EntryDocuments
    } else {
        Wave::Assets
    }
}

pub fn entry_document_globs(
    patterns: &[impl AsRef<str>],
) -> Result<globset::GlobSet, globset::Error> {
    let mut set = globset::GlobSetBuilder::new();
    for p in patterns {
        set.add(
            globset::GlobBuilder::new(p.as_ref())
                .case_insensitive(true)
                .build()?,
        );
    }
    set.build()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpload {
    pub upload: Upload,
    pub reason: Reason,
    pub wave: Wave,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDelete {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub uploads: Vec<PlannedUpload>,
    /// Same content, other headers: fixed in place with CopyObject.
    pub copies: Vec<PlannedUpload>,
    /// Keys left as they are, with why.
    pub skips: Vec<(String, Reason)>,
    pub deletes: Vec<PlannedDelete>,
    /// Remote objects with no local file, kept because DELETE_FLAG is off.
    pub kept: Vec<String>,
}

pub struct PlanInput<'a> {
    pub local: &'a [LocalFile],
    pub remote: &'a [RemoteObject],
    /// The ETag each hashed local file would have, by key (see [`hashes_needed`]).
    pub local_etags: &'a HashMap<String, Hashed>,
    pub settings: &'a ObjectSettings,
    pub delete: bool,
    /// Compare sizes only (`--size-only`): equal sizes are unchanged.
    pub size_only: bool,
    /// Entry documents to upload last; `None` uploads in one wave.
    pub entry_documents: Option<&'a globset::GlobSet>,
    /// Per-file headers; `settings` fill what a rule leaves out.
    pub rules: &'a Rules,
    /// Manifest entries whose ETag matches the listing.
    pub trusted: &'a HashMap<String, Entry>,
    /// Header digests read with HeadObject, for keys without a trusted entry.
    pub remote_headers: &'a HashMap<String, String>,
}

/// Whether a file's content differs from its object's, from the evidence:
/// sizes, the hashes computed, and the trusted manifest entries.
fn content(
    file: &LocalFile,
    obj: Option<&RemoteObject>,
    local_etags: &HashMap<String, Hashed>,
    trusted: &HashMap<String, Entry>,
    size_only: bool,
) -> Reason {
    match obj {
        None => Reason::New,
        Some(obj) if obj.size != file.size => Reason::SizeChanged {
            remote: obj.size,
            local: file.size,
        },
        Some(_) if size_only => Reason::SameSize,
        Some(obj) => {
            let known = trusted.get(&file.key).map_or(&obj.etag, |e| &e.md5);
            match local_etags.get(&file.key) {
                Some(local) if local.etag.eq_ignore_ascii_case(known) => Reason::Unchanged,
                Some(_) => Reason::ContentChanged,
                None => Reason::NotComparable(obj.etag.clone()),
            }
        }
    }
}

/// The keys whose content is unchanged but whose headers only a HeadObject
/// can tell: those without a trusted manifest entry.
pub fn heads_needed(input: &PlanInput) -> Vec<String> {
    let remote: HashMap<&str, &RemoteObject> =
        input.remote.iter().map(|r| (r.key.as_str(), r)).collect();
    input
        .local
        .iter()
        .filter(|f| !input.trusted.contains_key(&f.key))
        .filter(|f| {
            let obj = remote.get(f.key.as_str()).copied();
            content(f, obj, input.local_etags, input.trusted, input.size_only) == Reason::Unchanged
        })
        .map(|f| f.key.clone())
        .collect()
}

/// The object a file should become: its key, bytes and headers.
fn upload_of(file: &LocalFile, input: &PlanInput) -> Upload {
    let mut settings = rules::merge(input.settings, input.rules.first_match(&file.relative));
    if let Some(encoding) = file.encoding {
        settings.content_encoding = Some(encoding.to_string());
    }
    Upload {
        key: file.key.clone(),
        path: file.path.clone(),
        size: file.size,
        // By the original name: a compressed file keeps its type.
        content_type: settings
            .content_type
            .clone()
            .unwrap_or_else(|| content_type(&file.key)),
        settings,
    }
}

/// The largest object CopyObject can copy onto itself.
pub const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

pub fn plan(input: &PlanInput) -> Plan {
    let mut remote: BTreeMap<&str, &RemoteObject> =
        input.remote.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut plan = Plan::default();
    for file in input.local {
        let obj = remote.remove(file.key.as_str());
        let reason = content(file, obj, input.local_etags, input.trusted, input.size_only);
        let upload = upload_of(file, input);
        let wave = input
            .entry_documents
            .map_or(Wave::Assets, |globs| wave(&file.relative, globs));
        if matches!(reason, Reason::Unchanged | Reason::SameSize) {
            let wanted = headers_digest(&Headers::of(&upload.content_type, &upload.settings));
            let actual = input
                .trusted
                .get(&file.key)
                .map(|e| &e.headers)
                .or_else(|| input.remote_headers.get(&file.key));
            if actual.is_some_and(|a| *a != wanted) {
                let fix = PlannedUpload {
                    upload,
                    reason: Reason::HeadersChanged,
                    wave,
                };
                // CopyObject stops at 5 GB: larger objects get their new
                // headers by a new upload.
                if file.size > COPY_LIMIT {
                    plan.uploads.push(fix);
                } else {
                    plan.copies.push(fix);
                }
            } else {
                plan.skips.push((file.key.clone(), reason));
            }
            continue;
        }
        plan.uploads.push(PlannedUpload {
            upload,
            reason,
            wave,
        });
    }
    plan.uploads.sort_by_key(|u| u.wave);
    plan.copies.sort_by_key(|u| u.wave);
    for (key, obj) in remote {
        if input.delete {
            plan.deletes.push(PlannedDelete {
                key: key.to_string(),
                size: obj.size,
            });
        } else {
            plan.kept.push(key.to_string());
        }
    }
    plan
}

impl Plan {
    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.upload.size).sum()
    }

    /// Keys whose cached copies go stale: replaced or deleted. New keys are
    /// not in any cache.
    pub fn changed_keys(&self) -> Vec<String> {
        let replaced = self
            .uploads
            .iter()
            .filter(|u| u.reason != Reason::New)
            .chain(&self.copies)
            .map(|u| u.upload.key.clone());
        replaced
            .chain(self.deletes.iter().map(|d| d.key.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MIB: u64 = 1024 * 1024;

    fn file(key: &str, size: u64) -> LocalFile {
        LocalFile {
            key: key.into(),
            relative: key.into(),
            path: PathBuf::from("/site").join(key),
            size,
            encoding: None,
        }
    }

    fn obj(key: &str, size: u64, etag: &str) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            size,
            etag: etag.into(),
        }
    }

    fn entry_documents() -> globset::GlobSet {
        entry_document_globs(ENTRY_DOCUMENTS).unwrap()
    }

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const B: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    fn run(
        local: &[LocalFile],
        remote: &[RemoteObject],
        etags: &[(&str, &str)],
        delete: bool,
    ) -> Plan {
        let etags = etags
            .iter()
            .map(|(k, v)| {
                let hashed = Hashed {
                    etag: v.to_string(),
                    part_size: None,
                };
                (k.to_string(), hashed)
            })
            .collect();
        plan(&PlanInput {
            local,
            remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete,
            size_only: false,
            entry_documents: Some(&entry_documents()),
            rules: &Rules::default(),
            trusted: &HashMap::new(),
            remote_headers: &HashMap::new(),
        })
    }

    fn reasons(p: &Plan) -> Vec<(&str, &Reason)> {
        p.uploads
            .iter()
            .map(|u| (u.upload.key.as_str(), &u.reason))
            .collect()
    }

    #[test]
    fn classifies_etags() {
        assert_eq!(classify(A), Etag::Md5(A));
        assert_eq!(classify(&format!("{A}-3")), Etag::Multipart { parts: 3 });
        assert_eq!(classify(&format!("{A}-0")), Etag::Opaque);
        assert_eq!(classify("abc"), Etag::Opaque);
        assert_eq!(classify(&format!("{A}-x")), Etag::Opaque);
    }

    #[test]
    fn hashes_only_same_size_comparable_objects() {
        assert!(
            hashes_needed(&[file("x", 1)], &[obj("x", 1, A)], true, &HashMap::new()).is_empty()
        );
        let local = [
            file("same", 1),
            file("bigger", 2),
            file("new", 1),
            file("opaque", 1),
            file("ours", 20 * MIB),
            file("foreign", 20 * MIB),
        ];
        let remote = [
            obj("same", 1, A),
            obj("bigger", 1, A),
            obj("opaque", 1, "not-a-hash"),
            obj("ours", 20 * MIB, &format!("{A}-3")),
            obj("foreign", 20 * MIB, &format!("{A}-4")),
        ];
        let needs: Vec<_> = hashes_needed(&local, &remote, false, &HashMap::new())
            .into_iter()
            .map(|(f, n)| (f.key.as_str(), n))
            .collect();
        assert_eq!(
            needs,
            [
                ("same", HashNeed::Md5),
                ("ours", HashNeed::Parts(8 * MIB)),
                ("foreign", HashNeed::PartsOfRemote)
            ]
        );
    }

    #[test]
    fn every_decision_has_its_reason() {
        let local = [
            file("a", 1),
            file("b", 1),
            file("c", 3),
            file("d", 1),
            file("e", 1),
        ];
        let remote = [
            obj("a", 1, A),
            obj("b", 1, A),
            obj("c", 1, A),
            obj("e", 1, "opaque"),
            obj("gone", 5, B),
        ];
        let p = run(&local, &remote, &[("a", A), ("b", B)], true);
        assert_eq!(
            reasons(&p),
            [
                ("b", &Reason::ContentChanged),
                (
                    "c",
                    &Reason::SizeChanged {
                        remote: 1,
                        local: 3
                    }
                ),
                ("d", &Reason::New),
                ("e", &Reason::NotComparable("opaque".into())),
            ]
        );
        assert_eq!(p.skips, [("a".to_string(), Reason::Unchanged)]);
        assert_eq!(
            p.deletes,
            [PlannedDelete {
                key: "gone".into(),
                size: 5
            }]
        );
        assert!(p.kept.is_empty());
        assert_eq!(p.upload_bytes(), 6);
        assert_eq!(p.changed_keys(), ["b", "c", "e", "gone"]);
    }

    #[test]
    fn entry_documents_come_last() {
        let local = [
            file("index.html", 1),
            file("app.js", 1),
            file("docs/a.HTM", 1),
            file("robots.txt", 1),
            file("img/x.png", 1),
            file("sitemap-1.xml", 1),
            file("data.xml", 1),
        ];
        let p = run(&local, &[], &[], false);
        let order: Vec<_> = p
            .uploads
            .iter()
            .map(|u| (u.upload.key.as_str(), u.wave))
            .collect();
        use Wave::*;
        assert_eq!(
            order,
            [
                ("app.js", Assets),
                ("img/x.png", Assets),
                ("data.xml", Assets),
                ("index.html", EntryDocuments),
                ("docs/a.HTM", EntryDocuments),
                ("robots.txt", EntryDocuments),
                ("sitemap-1.xml", EntryDocuments),
            ]
        );
    }

    #[test]
    fn size_only_skips_same_sizes_without_hashing() {
        let local = [file("a", 1), file("b", 2)];
        let remote = [obj("a", 1, A), obj("b", 1, A)];
        assert!(hashes_needed(&local, &remote, true, &HashMap::new()).is_empty());
        let etags = HashMap::new();
        let p = plan(&PlanInput {
            local: &local,
            remote: &remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete: false,
            size_only: true,
            entry_documents: None,
            rules: &Rules::default(),
            trusted: &HashMap::new(),
            remote_headers: &HashMap::new(),
        });
        assert_eq!(p.skips, [("a".to_string(), Reason::SameSize)]);
        assert_eq!(
            reasons(&p),
            [(
                "b",
                &Reason::SizeChanged {
                    remote: 1,
                    local: 2
                }
            )]
        );
    }

    #[test]
    fn excluded_keys_are_neither_compared_nor_deleted() {
        use crate::filter::{Kind, Rule};
        let filters = Filters(vec![Rule {
            kind: Kind::Exclude,
            pattern: "uploads/*".into(),
        }]);
        let local = vec![file("site/index.html", 1), file("site/uploads/a.png", 1)];
        let mut local = local;
        for f in &mut local {
            f.relative = f.key.trim_start_matches("site/").to_string();
        }
        let remote = vec![
            obj("site/uploads/user.png", 1, A),
            obj("site/old.html", 1, A),
        ];
        let (local, remote, excluded) =
            apply_filters(local, remote, "site", &filters, &Rules::default());
        assert_eq!(excluded, 2);
        let p = run(&local, &remote, &[], true);
        assert_eq!(
            p.deletes,
            [PlannedDelete {
                key: "site/old.html".into(),
                size: 1
            }]
        );
        assert_eq!(reasons(&p), [("site/index.html", &Reason::New)]);
    }

    #[test]
    fn delete_guard() {
        let deletes = |n: usize| Plan {
            deletes: (0..n)
                .map(|i| PlannedDelete {
                    key: format!("p/{i}"),
                    size: 1,
                })
                .collect(),
            ..Plan::default()
        };
        let half = MaxDelete::Fraction(0.5);
        assert_eq!(check_deletes(&deletes(5), 10, 5, "p", half, false), Ok(()));
        assert_eq!(
            check_deletes(&deletes(6), 10, 4, "p", half, false),
            Err(DeleteRefused::TooMany {
                deletes: 6,
                remote: 10,
                limit: 5
            })
        );
        assert_eq!(
            check_deletes(&deletes(6), 10, 4, "p", MaxDelete::Count(6), false),
            Ok(())
        );
        assert_eq!(
            check_deletes(&deletes(3), 3, 0, "p", MaxDelete::Fraction(1.0), false),
            Err(DeleteRefused::EmptyFolder { remote: 3 })
        );
        assert_eq!(check_deletes(&deletes(3), 3, 0, "p", half, true), Ok(()));
        assert_eq!(check_deletes(&deletes(0), 3, 0, "p", half, false), Ok(()));
        assert_eq!(
            check_deletes(&deletes(1), 10, 9, "p/sub", half, true),
            Err(DeleteRefused::OutsidePrefix("p/0".into()))
        );
        let refused = check_deletes(&deletes(6), 10, 4, "p", half, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("raise MAX_DELETE"), "{refused}");
    }

    #[test]
    fn trusted_manifest_entries_decide_content_and_headers() {
        use crate::manifest::{Entry, Headers, headers_digest};
        let kms_etag = "ffffffffffffffffffffffffffffffff"; // not the content's MD5
        let local = [
            file("same.css", 1),
            file("fix.css", 1),
            file("edited.css", 1),
            file("untrusted.css", 1),
        ];
        let remote = [
            obj("same.css", 1, kms_etag),
            obj("fix.css", 1, kms_etag),
            obj("edited.css", 1, kms_etag),
            obj("untrusted.css", 1, A),
        ];
        let wanted = headers_digest(&Headers::of(
            "text/css; charset=utf-8",
            &ObjectSettings::default(),
        ));
        let entry = |headers: &str| Entry {
            etag: kms_etag.into(),
            md5: A.into(),
            part_size: None,
            headers: headers.into(),
        };
        let trusted = HashMap::from([
            ("same.css".to_string(), entry(&wanted)),
            ("fix.css".to_string(), entry("old")),
            ("edited.css".to_string(), entry(&wanted)),
        ]);
        let hashed = |etag: &str| Hashed {
            etag: etag.into(),
            part_size: None,
        };
        let etags = HashMap::from([
            ("same.css".to_string(), hashed(A)),
            ("fix.css".to_string(), hashed(A)),
            ("edited.css".to_string(), hashed(B)),
            ("untrusted.css".to_string(), hashed(A)),
        ]);
        let mut input = PlanInput {
            local: &local,
            remote: &remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete: false,
            size_only: false,
            entry_documents: None,
            rules: &Rules::default(),
            trusted: &trusted,
            remote_headers: &HashMap::new(),
        };
        assert_eq!(heads_needed(&input), ["untrusted.css"]);
        let heads = HashMap::from([("untrusted.css".to_string(), "other".to_string())]);
        input.remote_headers = &heads;
        let p = plan(&input);
        assert_eq!(p.skips, [("same.css".to_string(), Reason::Unchanged)]);
        let copies: Vec<_> = p
            .copies
            .iter()
            .map(|c| (c.upload.key.as_str(), &c.reason))
            .collect();
        assert_eq!(
            copies,
            [
                ("fix.css", &Reason::HeadersChanged),
                ("untrusted.css", &Reason::HeadersChanged)
            ]
        );
        assert_eq!(reasons(&p), [("edited.css", &Reason::ContentChanged)]);
        assert_eq!(p.changed_keys(), ["edited.css", "fix.css", "untrusted.css"]);
    }

    #[test]
    fn headers_of_objects_over_five_gigabytes_change_by_upload() {
        use crate::manifest::Entry;
        let huge = COPY_LIMIT + 1;
        let local = [file("big.bin", huge)];
        let remote = [obj("big.bin", huge, A)];
        let trusted = HashMap::from([(
            "big.bin".to_string(),
            Entry {
                etag: A.into(),
                md5: A.into(),
                part_size: None,
                headers: "old".into(),
            },
        )]);
        let etags = HashMap::from([(
            "big.bin".to_string(),
            Hashed {
                etag: A.into(),
                part_size: None,
            },
        )]);
        let p = plan(&PlanInput {
            local: &local,
            remote: &remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete: false,
            size_only: false,
            entry_documents: None,
            rules: &Rules::default(),
            trusted: &trusted,
            remote_headers: &HashMap::new(),
        });
        assert!(p.copies.is_empty());
        assert_eq!(reasons(&p), [("big.bin", &Reason::HeadersChanged)]);
    }

    #[test]
    fn without_delete_flag_extra_objects_are_kept() {
        let p = run(&[], &[obj("gone", 5, B)], &[], false);
        assert!(p.deletes.is_empty());
        assert_eq!(p.kept, ["gone"]);
    }

    #[test]
    fn etag_comparison_ignores_case_and_matches_multipart() {
        let multipart = format!("{A}-3");
        let p = run(
            &[file("x", 1), file("m", 20 * MIB)],
            &[
                obj("x", 1, &A.to_uppercase()),
                obj("m", 20 * MIB, &multipart),
            ],
            &[("x", A), ("m", &multipart)],
            false,
        );
        assert!(p.uploads.is_empty());
        assert_eq!(p.skips.len(), 2);
    }

    #[test]
    fn uploads_carry_content_type_and_settings() {
        let settings = ObjectSettings {
            cache_control: Some("max-age=60".into()),
            ..Default::default()
        };
        let p = plan(&PlanInput {
            local: &[file("index.html", 1)],
            remote: &[],
            local_etags: &HashMap::new(),
            settings: &settings,
            delete: false,
            size_only: false,
            entry_documents: Some(&entry_documents()),
            rules: &Rules::default(),
            trusted: &HashMap::new(),
            remote_headers: &HashMap::new(),
        });
        let u = &p.uploads[0].upload;
        assert_eq!(u.content_type, "text/html; charset=utf-8");
        assert_eq!(u.settings.cache_control.as_deref(), Some("max-age=60"));
    }
}
