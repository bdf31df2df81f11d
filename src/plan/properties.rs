//! The planner's invariant, over random trees, remote listings, filters,
//! `ignore` rules and PRECOMPRESSED, run through the same pure stages as a
//! deploy (siblings → scope → plan) on in-memory inputs:
//!
//! - no planned delete is the key of a file in the folder;
//! - every included file ends as exactly one upload, header fix or skip of
//!   its own key, and nothing else is uploaded, fixed or skipped;
//! - an included file with a sibling is served from the sibling's bytes
//!   with its encoding; every other file from its own bytes, unencoded;
//! - a remote object with no file is deleted, kept or pending (DELETE_GRACE),
//!   one of them, only in scope, and deleted only once its grace is over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;

use super::filter::{Filters, Kind, Rule as FilterRule};
use super::grace::{Grace, Judge, Mark};
use super::rules::{Rule, Rules};
use super::{PlanInput, plan, precompressed, scope};
use crate::etag::Hashed;
use crate::model::{
    ByKey, ETag, Encoding, HeadersDigest, Key, LocalFile, ObjectSettings, Prefix, RemoteObject,
};

const DIRS: &[&str] = &["", "a/", "a/b/", "c/"];
const NAMES: &[&str] = &["index.html", "app.js", "sitemap.xml", "x", "data"];
const SUFFIXES: &[&str] = &["", ".gz", ".br"];
/// Remote-only names: objects a deploy may delete or keep.
const GONE: &[&str] = &["old.html", "a/gone.js", "c/x.gz"];
const FILTER_PATTERNS: &[&str] = &[
    "*.gz", "*.br", "a/*", "*.js*", "*", "sitemap*", "a/b/*", "x",
];
const RULE_PATTERNS: &[&str] = &["*.gz", "*.br", "a/**", "*.js", "index.html", "c/*", "x.*"];
const ETAGS: &[&str] = &[
    "0cc175b9c0f1b6a831c399e269772661",
    "92eb5ffee6ae2fec3ad71c777531578f",
];

fn universe() -> Vec<String> {
    let mut out = Vec::new();
    for dir in DIRS {
        for name in NAMES {
            for suffix in SUFFIXES {
                out.push(format!("{dir}{name}{suffix}"));
            }
        }
    }
    out
}

/// What a remote object, or a local hash, looks like for one relative path.
#[derive(Debug, Clone)]
struct Evidence {
    remote: Option<(u64, usize)>,
    local_etag: Option<usize>,
    stale_headers: bool,
    /// Deploys counted by an earlier DELETE_GRACE mark of the key.
    mark: Option<u32>,
}

#[derive(Debug, Clone)]
struct Case {
    prefix: Prefix,
    /// Relative path → size.
    tree: BTreeMap<String, u64>,
    evidence: BTreeMap<String, Evidence>,
    filters: Vec<(bool, &'static str)>,
    rules: Vec<(&'static str, bool)>,
    precompressed: bool,
    delete: bool,
    size_only: bool,
    /// DELETE_GRACE, in deploys (0: delete at once).
    grace: u32,
}

fn case() -> impl Strategy<Value = Case> {
    let all = universe();
    let paths = all.len();
    let with_gone: Vec<String> = all
        .iter()
        .cloned()
        .chain(GONE.iter().map(|g| g.to_string()))
        .collect();
    let evidence = (
        proptest::option::of((0u64..3, 0..ETAGS.len())),
        proptest::option::of(0..ETAGS.len()),
        any::<bool>(),
        proptest::option::of(0u32..3),
    )
        .prop_map(|(remote, local_etag, stale_headers, mark)| Evidence {
            remote,
            local_etag,
            stale_headers,
            mark,
        });
    (
        any::<bool>(),
        proptest::sample::subsequence(all, 0..=paths),
        proptest::collection::vec(0u64..3, paths),
        proptest::collection::vec(evidence, with_gone.len()),
        proptest::collection::vec(
            (any::<bool>(), proptest::sample::select(FILTER_PATTERNS)),
            0..4,
        ),
        proptest::collection::vec(
            (proptest::sample::select(RULE_PATTERNS), any::<bool>()),
            0..4,
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), 0u32..3),
    )
        .prop_map(
            move |(prefixed, tree, sizes, evidence, filters, rules, flags)| Case {
                prefix: Prefix::new(if prefixed { "site" } else { "" }),
                tree: tree.into_iter().zip(sizes).collect(),
                evidence: with_gone.iter().cloned().zip(evidence).collect(),
                filters,
                rules,
                precompressed: flags.0,
                delete: flags.1,
                size_only: flags.2,
                grace: flags.3,
            },
        )
}

fn local_file(prefix: &Prefix, relative: &str, size: u64) -> LocalFile {
    LocalFile::new(
        Path::new("/build").to_path_buf().into(),
        prefix,
        relative,
        size,
    )
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let filters = Filters(
        case.filters
            .iter()
            .map(|&(include, pattern)| FilterRule {
                kind: if include {
                    Kind::Include
                } else {
                    Kind::Exclude
                },
                pattern: pattern.to_string(),
            })
            .collect(),
    );
    let rules = Rules(
        case.rules
            .iter()
            .map(|&(pattern, ignore)| {
                Rule::new(pattern, ObjectSettings::default(), None, ignore).unwrap()
            })
            .collect(),
    );
    let prefix = &case.prefix;
    let scanned: Vec<LocalFile> = case
        .tree
        .iter()
        .map(|(relative, size)| local_file(prefix, relative, *size))
        .collect();
    let remote: Vec<RemoteObject> = case
        .evidence
        .iter()
        .filter_map(|(relative, e)| {
            let (size, etag) = e.remote?;
            Some(RemoteObject {
                key: prefix.join(relative),
                size,
                etag: ETag::new(ETAGS[etag]),
                last_modified: 0,
            })
        })
        .collect();
    let local_etags: ByKey<Hashed> = case
        .evidence
        .iter()
        .filter_map(|(relative, e)| {
            let etag = ETAGS[e.local_etag?];
            let hashed = Hashed {
                etag: ETag::new(etag),
                part_size: None,
            };
            Some((prefix.join(relative), hashed))
        })
        .collect();
    let remote_headers: ByKey<HeadersDigest> = case
        .evidence
        .iter()
        .filter(|(_, e)| e.stale_headers)
        .map(|(relative, _)| (prefix.join(relative), HeadersDigest::of_text("stale")))
        .collect();

    // The stages, as a deploy runs them.
    let mut local = scanned;
    if case.precompressed {
        local = precompressed::serve_siblings(local);
    }
    let scoped = scope(local, Vec::new(), remote, prefix, &filters, &rules);
    let (local, remote) = (scoped.local, scoped.remote);
    let settings = ObjectSettings::default();
    let trusted = ByKey::default();
    let marks: ByKey<Mark> = case
        .evidence
        .iter()
        .filter_map(|(relative, e)| {
            let mark = Mark {
                since: 0,
                deploys: e.mark?,
                provisional: false,
            };
            Some((prefix.join(relative), mark))
        })
        .collect();
    let grace = Grace {
        deploys: case.grace,
        ..Grace::default()
    };
    let planned = plan(&PlanInput {
        local: &local,
        remote: &remote,
        local_etags: &local_etags,
        settings: &settings,
        delete: case.delete,
        size_only: case.size_only,
        entry_documents: None,
        rules: &rules,
        trusted: &trusted,
        remote_headers: &remote_headers,
        grace: Some(Judge {
            grace,
            now: 0,
            marks: &marks,
        }),
    });

    // The oracle, from the case alone.
    let included = |relative: &str| filters.includes(relative) && !rules.ignores(relative);
    let in_folder: BTreeSet<Key> = case.tree.keys().map(|r| prefix.join(r)).collect();
    let expected: BTreeSet<Key> = case
        .tree
        .keys()
        .filter(|r| included(r))
        .map(|r| prefix.join(r))
        .collect();

    for d in &planned.deletes {
        prop_assert!(
            !in_folder.contains(&d.key),
            "delete of {} which is in the folder",
            d.key
        );
    }
    let mut seen: BTreeMap<&Key, usize> = BTreeMap::new();
    let written = planned.uploads.iter().chain(&planned.copies);
    for key in written
        .map(|u| &u.upload.key)
        .chain(planned.skips.iter().map(|(k, _)| k))
    {
        *seen.entry(key).or_default() += 1;
    }
    for (key, count) in &seen {
        prop_assert_eq!(*count, 1, "{} planned {} times", key, count);
    }
    let seen: BTreeSet<Key> = seen.into_keys().cloned().collect();
    prop_assert_eq!(&seen, &expected);

    // Which bytes each included key gets.
    for relative in case.tree.keys().filter(|r| included(r)) {
        let sibling = case.precompressed.then(|| {
            precompressed::SIBLINGS
                .into_iter()
                .find(|(suffix, _)| case.tree.contains_key(&format!("{relative}{suffix}")))
        });
        let (source, encoding) = match sibling.flatten() {
            Some((suffix, encoding)) => (format!("{relative}{suffix}"), Some(encoding)),
            None => (relative.clone(), None),
        };
        let key = prefix.join(relative);
        let file = local.iter().find(|f| f.key == key).expect("included");
        prop_assert_eq!(file.path(), Path::new("/build").join(&source));
        prop_assert_eq!(file.size, case.tree[&source]);
        prop_assert_eq!(file.encoding, encoding);
        if let Some(u) = written_upload(&planned, &key) {
            prop_assert_eq!(&u.path, &file.path());
            prop_assert_eq!(
                u.settings.content_encoding.as_deref(),
                encoding.map(Encoding::as_str)
            );
        }
    }
    // Remote objects the plan neither wrote nor skipped are deleted, kept
    // or pending, one of them, and only when in scope.
    let removed: BTreeSet<&Key> = planned.deletes.iter().map(|d| &d.key).collect();
    let kept: BTreeSet<&Key> = planned.kept.iter().collect();
    let pending: BTreeSet<&Key> = planned.pending.iter().map(|p| &p.key).collect();
    prop_assert!(removed.is_disjoint(&kept));
    prop_assert!(removed.is_disjoint(&pending) && kept.is_disjoint(&pending));
    for key in removed.iter().chain(&kept).chain(&pending) {
        let relative = prefix.strip(key).expect("under the prefix");
        prop_assert!(included(relative), "{} is out of scope", key);
    }
    // Deleted only once this deploy makes the count of its grace.
    for key in &removed {
        let counted = marks.get(key).map_or(0, |m| m.deploys + 1);
        prop_assert!(
            case.grace == 0 || counted >= case.grace,
            "{} deleted after {} of {} deploys",
            key,
            counted,
            case.grace
        );
    }
    Ok(())
}

fn written_upload<'a>(plan: &'a super::Plan, key: &Key) -> Option<&'a crate::model::Upload> {
    plan.uploads
        .iter()
        .chain(&plan.copies)
        .map(|u| &u.upload)
        .find(|u| u.key == *key)
}

proptest! {
    // Each case is at most 60 files through pure functions; 256 cases took
    // 0.7-0.8 s in a debug build on a shared 2-core machine.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_included_file_is_published_under_its_own_key_and_never_deleted(case in case()) {
        check(&case)?;
    }
}

/// The case from issue 13, fixed, so the invariant's failure there stays
/// named: `sitemap.xml.gz` in the folder and in the bucket, PRECOMPRESSED
/// and DELETE_FLAG on.
#[test]
fn the_sitemap_case_keeps_its_gzip_file() {
    let tree: BTreeMap<String, u64> = [
        ("sitemap.xml", 2),
        ("sitemap.xml.gz", 1),
        ("app.js", 2),
        ("app.js.gz", 1),
        ("robots.txt", 1),
    ]
    .into_iter()
    .map(|(r, s)| (r.to_string(), s))
    .collect();
    let evidence = |remote| Evidence {
        remote,
        local_etag: None,
        stale_headers: false,
        mark: None,
    };
    let case = Case {
        prefix: Prefix::default(),
        evidence: tree
            .keys()
            .map(|r| (r.clone(), evidence(Some((1, 0)))))
            .collect(),
        tree,
        filters: Vec::new(),
        rules: Vec::new(),
        precompressed: true,
        delete: true,
        size_only: false,
        grace: 0,
    };
    check(&case).unwrap();
}
