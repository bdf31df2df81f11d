//! The plan: every decision of a deploy, each with its reason, in pure
//! functions. Given what is local, what is remote and the evidence gathered
//! (hashes, HeadObject digests, trusted manifest entries, grace marks),
//! decide what to upload, fix in place, skip, delete and keep, and in which
//! order.
//! Execution never re-decides.

pub mod content_type;
pub mod filter;
pub mod grace;
pub mod guard;
pub mod invalidation;
pub mod join;
pub mod manifest;
pub mod precompressed;
#[cfg(test)]
mod properties;
pub mod rules;
pub mod uploads;
pub mod verify;

use std::borrow::Cow;
use std::fmt;

use crate::etag::{self, HashNeed, Hashed};
use crate::model::{
    ByKey, ETag, HeadersDigest, Key, LocalFile, ObjectSettings, Prefix, RemoteObject, ScanProblem,
    Trusted, Upload,
};
use filter::Filters;
use grace::PendingDelete;
use rules::Rules;

/// What a deploy covers, after filters and `ignore` rules.
#[derive(Debug, Default)]
#[cfg(test)]
pub struct Scoped {
    pub local: Vec<LocalFile>,
    pub remote: Vec<RemoteObject>,
    /// Local files and remote objects left out.
    pub excluded: usize,
    /// The scan's problems on paths in scope: the deploy must not start
    /// while there are any.
    pub problems: Vec<ScanProblem>,
}

/// The local files, scan problems and remote objects the filters and
/// `ignore` rules let through ([`scope_local`], [`scope_remote`]), the
/// listing's keys shared with the files' ([`share_keys`]): what a run does
/// in two halves, the local one while the bucket is listed.
#[cfg(test)]
pub fn scope(
    local: Vec<LocalFile>,
    problems: Vec<ScanProblem>,
    remote: Vec<RemoteObject>,
    prefix: &Prefix,
    filters: &Filters,
    rules: &Rules,
) -> Scoped {
    let (local, problems, local_excluded) = scope_local(local, problems, filters, rules);
    let (mut remote, remote_excluded) = scope_remote(remote, prefix, filters, rules);
    share_keys(&local, &mut remote);
    Scoped {
        local,
        remote,
        excluded: local_excluded + remote_excluded,
        problems,
    }
}

/// Whether the filters and `ignore` rules let `relative` through.
fn included(filters: &Filters, rules: &Rules, relative: &str) -> bool {
    filters.includes(relative) && !rules.ignores(relative)
}

/// The local files and scan problems in scope, and how many files were
/// left out. Excluded paths never stop a deploy: a problem is left out
/// when its path is excluded, or its path with a `/` (a folder excluded as
/// `docs/old/*`), except one at LOCAL_PATH itself.
pub fn scope_local(
    local: Vec<LocalFile>,
    problems: Vec<ScanProblem>,
    filters: &Filters,
    rules: &Rules,
) -> (Vec<LocalFile>, Vec<ScanProblem>, usize) {
    let included = |relative: &str| included(filters, rules, relative);
    let before = local.len();
    let local: Vec<LocalFile> = local
        .into_iter()
        .filter(|f| included(f.relative()))
        .collect();
    let problems = problems
        .into_iter()
        .filter(|p| {
            p.relative == "." || (included(&p.relative) && included(&format!("{}/", p.relative)))
        })
        .collect();
    let excluded = before - local.len();
    (local, problems, excluded)
}

/// The listed objects in scope, and how many were left out: excluded
/// remote keys are never compared and never deleted.
pub fn scope_remote(
    remote: Vec<RemoteObject>,
    prefix: &Prefix,
    filters: &Filters,
    rules: &Rules,
) -> (Vec<RemoteObject>, usize) {
    let before = remote.len();
    let remote: Vec<RemoteObject> = remote
        .into_iter()
        .filter(|r| {
            prefix
                .strip(&r.key)
                .is_some_and(|k| included(filters, rules, k))
        })
        .collect();
    let excluded = before - remote.len();
    (remote, excluded)
}

/// Gives each listed object whose key the folder has the file's key, so
/// that one allocation serves both and the listing's copy is freed. Both
/// come sorted by key (the scan sorts; S3 lists in UTF-8 binary order,
/// which is `str`'s): one merge walk, no map. Out of order, fewer keys are
/// shared, and nothing else changes.
pub fn share_keys(local: &[LocalFile], remote: &mut [RemoteObject]) {
    let mut files = local.iter().peekable();
    for obj in remote {
        while files.next_if(|f| f.key < obj.key).is_some() {}
        if let Some(file) = files.peek().filter(|f| f.key == obj.key) {
            obj.key = file.key.clone();
        }
    }
}

/// The files worth hashing, and how: only those whose remote object has the
/// same size and a comparable ETag (or a trusted manifest entry, which
/// knows how the pipe hashed it). Everything else is decided without
/// reading a byte.
pub fn hashes_needed<'a>(
    local: &'a [LocalFile],
    remote: &[RemoteObject],
    size_only: bool,
    trusted: &ByKey<Trusted>,
) -> Vec<(&'a LocalFile, HashNeed)> {
    if size_only {
        return Vec::new();
    }
    // Room for every file at once: grown by doubling, the vector passes
    // through copies of half its size (24 bytes a file at a million).
    let mut needs = Vec::with_capacity(local.len());
    needs.extend(join::files(local, remote).filter_map(|(file, obj)| {
        let obj = obj.filter(|r| r.size == file.size)?;
        if let Some(t) = trusted.get(&file.key) {
            let need = t
                .entry
                .part_size()
                .map_or(HashNeed::Md5, |size| HashNeed::Parts(size.get()));
            return Some((file, need));
        }
        Some((file, etag::need(file.size, &obj.etag)?))
    }));
    needs.shrink_to_fit();
    needs
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
    NotComparable(ETag),
    Unchanged,
    /// Same size, not compared further (`--size-only`).
    SameSize,
    /// Same content, other headers.
    HeadersChanged,
}

impl Reason {
    /// The reason in words; borrowed for all but the two that carry data,
    /// so a report of a million skips holds no copy of "unchanged".
    pub fn text(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Reason::New => "new file",
            Reason::SizeChanged { remote, local } => {
                return Cow::Owned(format!("size changed ({remote} → {local} bytes)"));
            }
            Reason::ContentChanged => "content changed (same size, different MD5)",
            Reason::NotComparable(etag) => {
                return Cow::Owned(format!(
                    "remote ETag \"{etag}\" is not a content hash (SSE-KMS/SSE-C?), so it cannot be compared"
                ));
            }
            Reason::Unchanged => "unchanged (same content hash)",
            Reason::SameSize => "same size (--size-only)",
            Reason::HeadersChanged => "same content, headers changed",
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// Why a file is left as it is: one of two [`Reason`]s, in one byte
/// instead of the 32 of any reason (a million skips are held at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Unchanged,
    SameSize,
}

impl Skip {
    /// The skip a reason stands for, if it is one.
    pub fn of(reason: &Reason) -> Option<Skip> {
        match reason {
            Reason::Unchanged => Some(Skip::Unchanged),
            Reason::SameSize => Some(Skip::SameSize),
            _ => None,
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Skip::Unchanged => Reason::Unchanged,
            Skip::SameSize => Reason::SameSize,
        }
    }

    pub fn text(self) -> Cow<'static, str> {
        self.reason().text()
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// Uploads go in two waves so that no visitor gets a new page that points
/// at an asset not uploaded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wave {
    Assets,
    EntryDocuments,
}

/// How an object is written: a whole upload, or a header fix in place
/// (CopyObject onto itself, which keeps the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Put,
    Copy,
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

/// Entry-document patterns, matched case-insensitively against file names.
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
    pub key: Key,
    /// Bytes.
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub uploads: Vec<PlannedUpload>,
    /// Same content, other headers: fixed in place with CopyObject.
    pub copies: Vec<PlannedUpload>,
    /// Keys left as they are, with why.
    pub skips: Vec<(Key, Skip)>,
    pub deletes: Vec<PlannedDelete>,
    /// Remote objects with no local file, kept because DELETE_FLAG is off.
    pub kept: Vec<Key>,
    /// Remote objects with no local file, kept for their DELETE_GRACE:
    /// pending deletes, neither deleted nor invalidated by this deploy.
    pub pending: Vec<PendingDelete>,
}

/// One step of the execution: the writes of one kind in one wave. A step
/// starts only when every write of the step before it succeeded.
#[derive(Debug)]
pub struct Step<'a> {
    pub write: Write,
    pub items: Vec<&'a PlannedUpload>,
}

pub struct PlanInput<'a> {
    pub local: &'a [LocalFile],
    pub remote: &'a [RemoteObject],
    /// The ETag each hashed local file would have (see [`hashes_needed`]).
    pub local_etags: &'a ByKey<Hashed>,
    pub settings: &'a ObjectSettings,
    pub delete: bool,
    /// Compare sizes only (`--size-only`): equal sizes are unchanged.
    pub size_only: bool,
    /// Entry documents to upload last; `None` uploads in one wave.
    pub entry_documents: Option<&'a globset::GlobSet>,
    /// Per-file headers; `settings` fill what a rule leaves out.
    pub rules: &'a Rules,
    /// Manifest entries the evidence still vouches for ([`manifest::Previous::trusted`]).
    pub trusted: &'a ByKey<Trusted>,
    /// Header digests read with HeadObject, for keys whose headers no
    /// trusted entry vouches for.
    pub remote_headers: &'a ByKey<HeadersDigest>,
    /// DELETE_GRACE, with the clock and the marks it is judged by; `None`
    /// deletes at once.
    pub grace: Option<grace::Judge<'a>>,
}

/// Whether a file's content differs from its object's, from the evidence:
/// sizes, the hashes computed, and the trusted manifest entries.
fn content(file: &LocalFile, obj: Option<&RemoteObject>, input: &PlanInput) -> Reason {
    match obj {
        None => Reason::New,
        Some(obj) if obj.size != file.size => Reason::SizeChanged {
            remote: obj.size,
            local: file.size,
        },
        Some(_) if input.size_only => Reason::SameSize,
        Some(obj) => {
            let known = input
                .trusted
                .get(&file.key)
                .map_or(&obj.etag, |t| t.entry.md5());
            match input.local_etags.get(&file.key) {
                Some(local) if local.etag == *known => Reason::Unchanged,
                Some(_) => Reason::ContentChanged,
                None => Reason::NotComparable(obj.etag.clone()),
            }
        }
    }
}

/// The keys whose content is unchanged but whose headers only a HeadObject
/// can tell: those no trusted manifest entry vouches for, headers included.
pub fn heads_needed(input: &PlanInput) -> Vec<Key> {
    join::files(input.local, input.remote)
        .filter(|(f, _)| !headers_vouched(input, &f.key))
        .filter(|(f, obj)| content(f, *obj, input) == Reason::Unchanged)
        .map(|(f, _)| f.key.clone())
        .collect()
}

fn headers_vouched(input: &PlanInput, key: &Key) -> bool {
    input.trusted.get(key).is_some_and(|t| t.headers)
}

/// The object a file should become: its key, bytes and headers.
fn upload_of(file: &LocalFile, input: &PlanInput) -> Upload {
    let mut settings = rules::merge(input.settings, input.rules.first_match(file.relative()));
    if let Some(encoding) = file.encoding {
        settings.content_encoding = Some(encoding.as_str().to_string());
    }
    Upload {
        key: file.key.clone(),
        path: file.path(),
        size: file.size,
        // By the original name: a compressed file keeps its type.
        content_type: settings
            .content_type
            .clone()
            .unwrap_or_else(|| content_type::content_type(&file.key)),
        settings,
    }
}

/// The largest object CopyObject can copy onto itself (S3's CopyObject
/// reference: 5 GB in a single atomic operation).
pub const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

pub fn plan(input: &PlanInput) -> Plan {
    let mut plan = Plan::default();
    // A redeploy skips nearly every file: room for all at once, where a
    // vector grown by doubling passes through copies of half its size.
    plan.skips.reserve(input.local.len());
    // Listed objects without a file, in key order: deleted or kept below.
    let mut unmatched = Vec::new();
    for side in join::by_key(input.local, input.remote) {
        let (file, obj) = match side {
            join::Side::Remote(obj) => {
                unmatched.push(obj);
                continue;
            }
            join::Side::Local(file) => (file, None),
            join::Side::Both(file, obj) => (file, Some(obj)),
        };
        let reason = content(file, obj, input);
        let upload = upload_of(file, input);
        let wave = input
            .entry_documents
            .map_or(Wave::Assets, |globs| wave(file.relative(), globs));
        if let Some(skip) = Skip::of(&reason) {
            let wanted = upload.headers().digest();
            let actual = input
                .trusted
                .get(&file.key)
                .filter(|t| t.headers)
                .map(|t| &t.entry.headers)
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
                plan.skips.push((file.key.clone(), skip));
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
    for obj in unmatched {
        let key = obj.key.clone();
        if !input.delete {
            plan.kept.push(key);
            continue;
        }
        match input.grace.and_then(|g| g.keep(&key, obj.size)) {
            Some(pending) => plan.pending.push(pending),
            None => plan.deletes.push(PlannedDelete {
                key,
                size: obj.size,
            }),
        }
    }
    plan.skips.shrink_to_fit();
    plan
}

impl Plan {
    /// Bytes of every planned upload.
    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.upload.size).sum()
    }

    /// The writes in the order they must happen: assets (uploads, then
    /// header fixes), then entry documents likewise. Deletes come after
    /// every step succeeded.
    pub fn steps(&self) -> Vec<Step<'_>> {
        let mut steps = Vec::new();
        for wave in [Wave::Assets, Wave::EntryDocuments] {
            for (write, planned) in [(Write::Put, &self.uploads), (Write::Copy, &self.copies)] {
                let items: Vec<&PlannedUpload> =
                    planned.iter().filter(|u| u.wave == wave).collect();
                if !items.is_empty() {
                    steps.push(Step { write, items });
                }
            }
        }
        steps
    }

    /// Keys whose cached copies go stale: replaced or deleted. New keys are
    /// not in any cache; a key kept for its grace still serves its bytes.
    pub fn changed_keys(&self) -> Vec<Key> {
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
    use std::path::Path;

    const MIB: u64 = 1024 * 1024;

    pub fn file(key: &str, size: u64) -> LocalFile {
        LocalFile::new(
            Path::new("/site").to_path_buf().into(),
            &Prefix::default(),
            key,
            size,
        )
    }

    pub fn obj(key: &str, size: u64, etag: &str) -> RemoteObject {
        RemoteObject {
            key: Key::new(key),
            size,
            etag: ETag::new(etag),
            last_modified: 0,
        }
    }

    fn entry_documents() -> globset::GlobSet {
        entry_document_globs(ENTRY_DOCUMENTS).unwrap()
    }

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const B: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    fn hashed(etag: &str) -> Hashed {
        Hashed {
            etag: ETag::new(etag),
            part_size: None,
        }
    }

    fn etags(pairs: &[(&str, &str)]) -> ByKey<Hashed> {
        pairs
            .iter()
            .map(|(k, v)| (Key::new(*k), hashed(v)))
            .collect()
    }

    fn input<'a>(
        local: &'a [LocalFile],
        remote: &'a [RemoteObject],
        local_etags: &'a ByKey<Hashed>,
        settings: &'a ObjectSettings,
    ) -> PlanInput<'a> {
        static RULES: std::sync::LazyLock<Rules> = std::sync::LazyLock::new(Rules::default);
        static NONE_TRUSTED: std::sync::LazyLock<ByKey<Trusted>> =
            std::sync::LazyLock::new(ByKey::default);
        static NO_HEADS: std::sync::LazyLock<ByKey<HeadersDigest>> =
            std::sync::LazyLock::new(ByKey::default);
        PlanInput {
            local,
            remote,
            local_etags,
            settings,
            delete: false,
            size_only: false,
            entry_documents: None,
            rules: &RULES,
            trusted: &NONE_TRUSTED,
            remote_headers: &NO_HEADS,
            grace: None,
        }
    }

    fn run(
        local: &[LocalFile],
        remote: &[RemoteObject],
        pairs: &[(&str, &str)],
        delete: bool,
    ) -> Plan {
        let etags = etags(pairs);
        let settings = ObjectSettings::default();
        let globs = entry_documents();
        plan(&PlanInput {
            delete,
            entry_documents: Some(&globs),
            ..input(local, remote, &etags, &settings)
        })
    }

    fn reasons(p: &Plan) -> Vec<(&str, &Reason)> {
        p.uploads
            .iter()
            .map(|u| (u.upload.key.as_str(), &u.reason))
            .collect()
    }

    fn skip(key: &str, reason: Skip) -> (Key, Skip) {
        (Key::new(key), reason)
    }

    #[test]
    fn hashes_only_same_size_comparable_objects() {
        assert!(
            hashes_needed(&[file("x", 1)], &[obj("x", 1, A)], true, &ByKey::default()).is_empty()
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
        let needs: Vec<_> = hashes_needed(&local, &remote, false, &ByKey::default())
            .into_iter()
            .map(|(f, n)| (f.key.as_str(), n))
            .collect();
        assert_eq!(
            needs,
            [
                ("foreign", HashNeed::PartsOfRemote),
                ("ours", HashNeed::Parts(8 * MIB)),
                ("same", HashNeed::Md5),
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
                ("e", &Reason::NotComparable(ETag::new("opaque"))),
            ]
        );
        assert_eq!(p.skips, [skip("a", Skip::Unchanged)]);
        assert_eq!(
            p.deletes,
            [PlannedDelete {
                key: Key::new("gone"),
                size: 5
            }]
        );
        assert!(p.kept.is_empty());
        assert_eq!(p.upload_bytes(), 6);
        assert_eq!(
            p.changed_keys(),
            ["b", "c", "e", "gone"].map(Key::new).to_vec()
        );
    }

    #[test]
    fn entry_documents_come_last_in_the_steps() {
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
        let steps: Vec<(Wave, Write, Vec<&str>)> = p
            .steps()
            .iter()
            .map(|s| {
                let keys = s.items.iter().map(|u| u.upload.key.as_str()).collect();
                (s.items[0].wave, s.write, keys)
            })
            .collect();
        use Wave::*;
        assert_eq!(
            steps,
            [
                // Key order within a step, whatever the scan's order.
                (Assets, Write::Put, vec!["app.js", "data.xml", "img/x.png"]),
                (
                    EntryDocuments,
                    Write::Put,
                    vec!["docs/a.HTM", "index.html", "robots.txt", "sitemap-1.xml"]
                ),
            ]
        );
    }

    #[test]
    fn header_fixes_follow_the_uploads_of_their_wave() {
        let local = [file("a.css", 1), file("index.html", 1), file("b.css", 2)];
        let remote = [obj("a.css", 1, A), obj("index.html", 1, A)];
        let etags = etags(&[("a.css", A), ("index.html", A)]);
        let heads = ByKey::from([
            (Key::new("a.css"), HeadersDigest::of_text("stale")),
            (Key::new("index.html"), HeadersDigest::of_text("stale")),
        ]);
        let settings = ObjectSettings::default();
        let globs = entry_documents();
        let p = plan(&PlanInput {
            entry_documents: Some(&globs),
            remote_headers: &heads,
            ..input(&local, &remote, &etags, &settings)
        });
        let order: Vec<(Wave, Write)> = p
            .steps()
            .iter()
            .map(|s| (s.items[0].wave, s.write))
            .collect();
        assert_eq!(
            order,
            [
                (Wave::Assets, Write::Put),
                (Wave::Assets, Write::Copy),
                (Wave::EntryDocuments, Write::Copy)
            ]
        );
    }

    #[test]
    fn size_only_skips_same_sizes_without_hashing() {
        let local = [file("a", 1), file("b", 2)];
        let remote = [obj("a", 1, A), obj("b", 1, A)];
        assert!(hashes_needed(&local, &remote, true, &ByKey::default()).is_empty());
        let etags = ByKey::default();
        let settings = ObjectSettings::default();
        let p = plan(&PlanInput {
            size_only: true,
            ..input(&local, &remote, &etags, &settings)
        });
        assert_eq!(p.skips, [skip("a", Skip::SameSize)]);
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
    fn listed_keys_share_the_scanned_keys_allocation() {
        let local = vec![file("a", 1), file("c", 1), file("d", 1)];
        let remote = vec![obj("b", 1, A), obj("c", 1, A), obj("d", 1, A)];
        let addresses = |keys: Vec<&Key>| keys.iter().map(|k| k.as_ptr()).collect::<Vec<_>>();
        let Scoped { local, remote, .. } = scope(
            local,
            Vec::new(),
            remote,
            &Prefix::default(),
            &Filters::default(),
            &Rules::default(),
        );
        let listed = addresses(remote.iter().map(|r| &r.key).collect());
        let scanned = addresses(local.iter().map(|f| &f.key).collect());
        assert_ne!(listed[0], scanned[0]);
        assert_eq!(listed[1..], scanned[1..]);
        assert_eq!(remote[1].key, Key::new("c"));
    }

    #[test]
    fn excluded_keys_are_neither_compared_nor_deleted() {
        use filter::{Kind, Rule};
        let filters = Filters(vec![Rule {
            kind: Kind::Exclude,
            pattern: "uploads/*".into(),
        }]);
        let site = Prefix::new("site");
        let local = ["index.html", "uploads/a.png"]
            .map(|relative| {
                LocalFile::new(Path::new("/site").to_path_buf().into(), &site, relative, 1)
            })
            .to_vec();
        let remote = vec![
            obj("site/uploads/user.png", 1, A),
            obj("site/old.html", 1, A),
            obj("elsewhere/x", 1, A),
        ];
        let Scoped {
            local,
            remote,
            excluded,
            problems,
        } = scope(
            local,
            Vec::new(),
            remote,
            &Prefix::new("site"),
            &filters,
            &Rules::default(),
        );
        assert!(problems.is_empty());
        assert_eq!(excluded, 3);
        let p = run(&local, &remote, &[], true);
        assert_eq!(
            p.deletes,
            [PlannedDelete {
                key: Key::new("site/old.html"),
                size: 1
            }]
        );
        assert_eq!(reasons(&p), [("site/index.html", &Reason::New)]);
    }

    #[test]
    fn scan_problems_of_excluded_paths_do_not_stop_the_deploy() {
        use filter::{Kind, Rule};
        let filters = Filters(vec![
            Rule {
                kind: Kind::Exclude,
                pattern: "node_modules/*".into(),
            },
            Rule {
                kind: Kind::Exclude,
                pattern: "old".into(),
            },
        ]);
        let rules = Rules(vec![
            rules::Rule::new("drafts/**", ObjectSettings::default(), None, true).unwrap(),
            rules::Rule::new("*.sock", ObjectSettings::default(), None, true).unwrap(),
        ]);
        let problem = |relative: &str| ScanProblem {
            relative: relative.into(),
            cause: crate::model::ScanCause::BrokenLink {
                target: "../missing".into(),
            },
        };
        let problems = [
            "node_modules/.bin/tool", // under an excluded folder
            "node_modules",           // the folder itself, excluded as node_modules/*
            "old",                    // excluded by name
            "drafts",                 // a folder an ignore rule covers
            "drafts/a/b",
            "run/app.sock", // ignored by name at any depth
            "docs/old",     // in scope: `old` is a path from LOCAL_PATH
            "oldies",
            ".", // LOCAL_PATH itself, whatever the filters
        ]
        .map(problem)
        .to_vec();
        let scoped = scope(
            Vec::new(),
            problems,
            Vec::new(),
            &Prefix::default(),
            &filters,
            &rules,
        );
        let kept: Vec<&str> = scoped
            .problems
            .iter()
            .map(|p| p.relative.as_str())
            .collect();
        assert_eq!(kept, ["docs/old", "oldies", "."]);
    }

    #[test]
    fn trusted_manifest_entries_decide_content_and_headers() {
        use crate::model::{Headers, ManifestEntry as Entry};
        let kms_etag = "ffffffffffffffffffffffffffffffff"; // not the content's MD5
        let local = [
            file("same.css", 1),
            file("fix.css", 1),
            file("edited.css", 1),
            file("untrusted.css", 1),
            file("touched.css", 1),
        ];
        let remote = [
            obj("same.css", 1, kms_etag),
            obj("fix.css", 1, kms_etag),
            obj("edited.css", 1, kms_etag),
            obj("untrusted.css", 1, A),
            obj("touched.css", 1, kms_etag),
        ];
        let wanted = Headers::of("text/css; charset=utf-8", &ObjectSettings::default()).digest();
        let entry = |headers: HeadersDigest, headers_vouched: bool| Trusted {
            entry: Entry::new(ETag::new(kms_etag), ETag::new(A), None, headers),
            headers: headers_vouched,
        };
        let trusted = ByKey::from([
            (Key::new("same.css"), entry(wanted, true)),
            (
                Key::new("fix.css"),
                entry(HeadersDigest::of_text("old"), true),
            ),
            (Key::new("edited.css"), entry(wanted, true)),
            // Stamped after the manifest: its content is known (KMS ETag,
            // no re-upload), its recorded headers may no longer be true.
            (Key::new("touched.css"), entry(wanted, false)),
        ]);
        let etags = etags(&[
            ("same.css", A),
            ("fix.css", A),
            ("edited.css", B),
            ("untrusted.css", A),
            ("touched.css", A),
        ]);
        let settings = ObjectSettings::default();
        let mut input = PlanInput {
            trusted: &trusted,
            ..input(&local, &remote, &etags, &settings)
        };
        assert_eq!(
            heads_needed(&input),
            // In key order, whatever the order of the files.
            [Key::new("touched.css"), Key::new("untrusted.css")]
        );
        let heads = ByKey::from([
            (Key::new("untrusted.css"), HeadersDigest::of_text("other")),
            (Key::new("touched.css"), HeadersDigest::of_text("other")),
        ]);
        input.remote_headers = &heads;
        let p = plan(&input);
        assert_eq!(p.skips, [skip("same.css", Skip::Unchanged)]);
        let copies: Vec<_> = p
            .copies
            .iter()
            .map(|c| (c.upload.key.as_str(), &c.reason))
            .collect();
        assert_eq!(
            copies,
            [
                ("fix.css", &Reason::HeadersChanged),
                ("touched.css", &Reason::HeadersChanged),
                ("untrusted.css", &Reason::HeadersChanged),
            ]
        );
        assert_eq!(reasons(&p), [("edited.css", &Reason::ContentChanged)]);
        assert_eq!(
            p.changed_keys(),
            ["edited.css", "fix.css", "touched.css", "untrusted.css"]
                .map(Key::new)
                .to_vec()
        );
    }

    #[test]
    fn headers_of_objects_over_five_gigabytes_change_by_upload() {
        let huge = COPY_LIMIT + 1;
        let local = [file("big.bin", huge)];
        let remote = [obj("big.bin", huge, A)];
        let trusted = ByKey::from([(
            Key::new("big.bin"),
            Trusted {
                entry: crate::model::ManifestEntry::new(
                    ETag::new(A),
                    ETag::new(A),
                    None,
                    HeadersDigest::of_text("old"),
                ),
                headers: true,
            },
        )]);
        let etags = etags(&[("big.bin", A)]);
        let settings = ObjectSettings::default();
        let p = plan(&PlanInput {
            trusted: &trusted,
            ..input(&local, &remote, &etags, &settings)
        });
        assert!(p.copies.is_empty());
        assert_eq!(reasons(&p), [("big.bin", &Reason::HeadersChanged)]);
    }

    #[test]
    fn without_delete_flag_extra_objects_are_kept() {
        let p = run(&[], &[obj("gone", 5, B)], &[], false);
        assert!(p.deletes.is_empty());
        assert_eq!(p.kept, [Key::new("gone")]);
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
        let etags = ByKey::default();
        let local = [file("index.html", 1)];
        let p = plan(&input(&local, &[], &etags, &settings));
        let u = &p.uploads[0].upload;
        assert_eq!(u.content_type, "text/html; charset=utf-8");
        assert_eq!(u.settings.cache_control.as_deref(), Some("max-age=60"));
    }
}
