//! Stage 4: the plan. Pure functions only: given what is local, what is
//! remote and the hashes gathered for the files that need one, decide what
//! to upload, skip and delete, and why. Execution never re-decides.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::config::ObjectSettings;
use crate::content_type::content_type;
use crate::local::LocalFile;
use crate::remote::{RemoteObject, Upload, part_size};

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
) -> Vec<(&'a LocalFile, HashNeed)> {
    let remote: HashMap<&str, &RemoteObject> = remote.iter().map(|r| (r.key.as_str(), r)).collect();
    local
        .iter()
        .filter_map(|file| {
            let obj = remote
                .get(file.key.as_str())
                .filter(|r| r.size == file.size)?;
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

pub fn entry_document_globs(patterns: &[&str]) -> Result<globset::GlobSet, globset::Error> {
    let mut set = globset::GlobSetBuilder::new();
    for p in patterns {
        set.add(
            globset::GlobBuilder::new(p)
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
    pub local_etags: &'a HashMap<String, String>,
    pub settings: &'a ObjectSettings,
    pub delete: bool,
    pub entry_documents: &'a globset::GlobSet,
}

pub fn plan(input: &PlanInput) -> Plan {
    let mut remote: BTreeMap<&str, &RemoteObject> =
        input.remote.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut plan = Plan::default();
    for file in input.local {
        let reason = match remote.remove(file.key.as_str()) {
            None => Reason::New,
            Some(obj) if obj.size != file.size => Reason::SizeChanged {
                remote: obj.size,
                local: file.size,
            },
            Some(obj) => match input.local_etags.get(&file.key) {
                Some(local) if local.eq_ignore_ascii_case(&obj.etag) => Reason::Unchanged,
                Some(_) => Reason::ContentChanged,
                None => Reason::NotComparable(obj.etag.clone()),
            },
        };
        if reason == Reason::Unchanged {
            plan.skips.push((file.key.clone(), reason));
            continue;
        }
        plan.uploads.push(PlannedUpload {
            upload: Upload {
                key: file.key.clone(),
                path: file.path.clone(),
                size: file.size,
                content_type: content_type(&file.key),
                settings: input.settings.clone(),
            },
            reason,
            wave: wave(&file.relative, input.entry_documents),
        });
    }
    plan.uploads.sort_by_key(|u| u.wave);
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
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(&PlanInput {
            local,
            remote,
            local_etags: &etags,
            settings: &ObjectSettings::default(),
            delete,
            entry_documents: &entry_documents(),
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
        let needs: Vec<_> = hashes_needed(&local, &remote)
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
            entry_documents: &entry_documents(),
        });
        let u = &p.uploads[0].upload;
        assert_eq!(u.content_type, "text/html; charset=utf-8");
        assert_eq!(u.settings.cache_control.as_deref(), Some("max-age=60"));
    }
}
