//! Which viewer paths to invalidate, and under which CallerReference:
//! pure functions, like the planner. The rules: CloudFront's "Specifying
//! the objects to invalidate" (paths start with `/`, `*` only at the end,
//! non-ASCII and unsafe characters percent-encoded).

use std::collections::{BTreeMap, BTreeSet};

use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::model::{Key, Prefix};

/// One origin of a distribution: its domain and its origin path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub domain: String,
    /// As CloudFront stores it: empty or `/folder`.
    pub path: String,
}

/// The key prefix a distribution serves at `/`: the origin path of its origin
/// for `bucket` (REST or website endpoint), without slashes. `None` when no
/// origin points at the bucket.
pub fn served_prefix(bucket: &str, origins: &[Origin]) -> Option<String> {
    let rest = format!("{bucket}.s3.");
    let website = format!("{bucket}.s3-website");
    let dashed = format!("{bucket}.s3-");
    origins
        .iter()
        .find(|o| {
            o.domain.starts_with(&rest)
                || o.domain.starts_with(&website)
                || o.domain.starts_with(&dashed)
        })
        .map(|o| o.path.trim_matches('/').to_string())
}

/// Viewer paths for changed keys, relative to what the distribution serves at
/// `/`. `dir/index.html` is also reachable as `/dir/` and `/dir`, the root
/// `index.html` as `/`. Keys outside `served` are not served by it and are
/// left out. Sorted, without duplicates, URL-encoded.
pub fn viewer_paths<'a>(keys: impl IntoIterator<Item = &'a str>, served: &str) -> Vec<String> {
    let mut paths = BTreeSet::new();
    for key in keys {
        let relative = if served.is_empty() {
            key
        } else {
            match key.strip_prefix(served).and_then(|k| k.strip_prefix('/')) {
                Some(rest) => rest,
                None => continue,
            }
        };
        paths.insert(format!("/{}", encode(relative)));
        if let Some(dir) = relative
            .strip_suffix("index.html")
            .filter(|d| d.is_empty() || d.ends_with('/'))
        {
            if dir.is_empty() {
                paths.insert("/".to_string());
            } else {
                paths.insert(format!("/{}", encode(dir)));
                paths.insert(format!("/{}", encode(dir.trim_end_matches('/'))));
            }
        }
    }
    paths.into_iter().collect()
}

/// RFC 1738's unsafe characters; with [`CONTROLS`], what CloudFront wants
/// encoded in an invalidation path. Non-ASCII bytes are always encoded.
const UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'`');

/// Percent-encodes an invalidation path: non-ASCII bytes, controls and
/// RFC 1738's unsafe characters, nothing else.
pub fn encode(path: &str) -> String {
    utf8_percent_encode(path, UNSAFE).to_string()
}

/// The folder an entry belongs to when collapsing: `/a/b/` for `/a/b/c` and
/// for `/a/b/` itself, `/a/` for the wildcard `/a/b/*`.
fn folder(entry: &str) -> &str {
    let base = entry
        .strip_suffix('*')
        .map_or(entry, |e| e.trim_end_matches('/'));
    if entry.ends_with('/') && !entry.ends_with("*/") {
        return entry;
    }
    match base.rfind('/') {
        Some(i) => &base[..=i],
        None => "/",
    }
}

/// Fits `paths` into `budget` entries: the deepest folder holding two or
/// more entries becomes `folder/*`, again and again; when no folder holds
/// two, the deepest entry is widened to its folder so that it can merge
/// higher up. `/*` only when everything has merged into the root.
pub fn collapse(paths: Vec<String>, budget: usize) -> Vec<String> {
    let mut entries: BTreeSet<String> = paths.into_iter().collect();
    while entries.len() > budget.max(1) {
        let mut by_folder: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &entries {
            by_folder
                .entry(folder(e).to_string())
                .or_default()
                .push(e.clone());
        }
        let depth = |f: &str| f.matches('/').count();
        let chosen = by_folder
            .iter()
            .filter(|(_, members)| members.len() >= 2)
            .max_by_key(|(f, _)| depth(f))
            .or_else(|| by_folder.iter().max_by_key(|(f, _)| depth(f)))
            .map(|(f, members)| (f.clone(), members.clone()))
            .expect("more entries than the budget means at least one folder");
        let (folder, members) = chosen;
        for m in members {
            entries.remove(&m);
        }
        // The wildcard covers everything below its folder, merged or not.
        entries.retain(|e| !e.starts_with(&folder));
        entries.insert(format!("{folder}*"));
    }
    entries.into_iter().collect()
}

/// What a deploy changed, for the paths of its invalidation.
#[derive(Debug, Clone, Copy)]
pub struct Changed<'a> {
    pub bucket: &'a str,
    pub prefix: &'a Prefix,
    pub keys: &'a [Key],
}

/// The paths to invalidate on one distribution: `explicit` (PATHS) when
/// given; in deploy mode the changed keys mapped through the origin path
/// and fitted to `max_paths`; `/*` when only invalidating. Also returns
/// warnings about a distribution that does not serve what was deployed.
pub fn paths_for(
    explicit: Option<&[String]>,
    changed: Option<Changed>,
    domain_name: &str,
    origins: &[Origin],
    max_paths: usize,
) -> (Vec<String>, Vec<String>) {
    if let Some(paths) = explicit {
        return (paths.to_vec(), Vec::new());
    }
    let Some(changed) = changed else {
        return (vec!["/*".to_string()], Vec::new());
    };
    let mut warnings = Vec::new();
    let bucket = changed.bucket;
    let served = served_prefix(bucket, origins).unwrap_or_else(|| {
        warnings.push(format!(
            "no origin of {domain_name} points at bucket {bucket}: invalidating keys as paths from the bucket's root"
        ));
        String::new()
    });
    let prefix = changed.prefix.as_str();
    if !prefix.is_empty()
        && !served.is_empty()
        && !prefix.starts_with(&served)
        && !served.starts_with(prefix)
    {
        warnings.push(format!(
            "{domain_name} serves {bucket}/{served}, not {bucket}/{prefix}"
        ));
    }
    let paths = collapse(
        viewer_paths(changed.keys.iter().map(|k| k.as_str()), &served),
        max_paths,
    );
    (paths, warnings)
}

/// Traceable (the build that made it) and idempotent (the same paths give
/// the same reference, so a retried request cannot invalidate twice).
pub fn caller_reference(base: &str, paths: &[String]) -> String {
    let mut hash = Md5::new();
    for p in paths {
        hash.update(p.as_bytes());
        hash.update(b"\n");
    }
    format!("{base}-{}", hex::encode(&hash.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(domain: &str, path: &str) -> Origin {
        Origin {
            domain: domain.into(),
            path: path.into(),
        }
    }

    #[test]
    fn finds_the_bucket_origin_and_its_path() {
        let origins = [
            origin("api.example.com", "/v1"),
            origin("site.s3.eu-west-1.amazonaws.com", "/prod"),
        ];
        assert_eq!(served_prefix("site", &origins).as_deref(), Some("prod"));
        assert_eq!(
            served_prefix("site", &[origin("site.s3.amazonaws.com", "")]).as_deref(),
            Some("")
        );
        assert_eq!(
            served_prefix(
                "site",
                &[origin("site.s3-website-us-east-1.amazonaws.com", "/a/b/")]
            )
            .as_deref(),
            Some("a/b")
        );
        assert_eq!(
            served_prefix("site", &[origin("site2.s3.amazonaws.com", "")]),
            None
        );
    }

    #[test]
    fn keys_map_through_the_origin_path() {
        let keys = [
            "site/index.html",
            "site/docs/index.html",
            "site/a.css",
            "other/x.js",
        ];
        assert_eq!(
            viewer_paths(keys, "site"),
            [
                "/",
                "/a.css",
                "/docs",
                "/docs/",
                "/docs/index.html",
                "/index.html"
            ]
        );
        assert_eq!(
            viewer_paths(["site/index.html", "site2/a"], ""),
            ["/site/index.html", "/site/", "/site", "/site2/a"]
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(viewer_paths(["mindex.html"], ""), ["/mindex.html"]);
    }

    #[test]
    fn encodes_only_unsafe_and_non_ascii() {
        assert_eq!(encode("a b/c+d=e&f?g"), "a%20b/c+d=e&f?g");
        assert_eq!(encode("literal%20"), "literal%2520");
        assert_eq!(encode("caf\u{e9}#~"), "caf%C3%A9%23%7E");
        assert_eq!(encode("emoji-\u{1f680}"), "emoji-%F0%9F%9A%80");
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn caller_reference_is_stable_for_the_same_paths() {
        let a = caller_reference("b-1", &s(&["/a", "/b"]));
        assert_eq!(a, caller_reference("b-1", &s(&["/a", "/b"])));
        assert_ne!(a, caller_reference("b-1", &s(&["/a"])));
        assert_eq!(a.len(), "b-1-".len() + 16);
    }

    #[test]
    fn within_budget_nothing_collapses() {
        let paths = s(&["/a", "/b/c"]);
        assert_eq!(collapse(paths.clone(), 2), paths);
    }

    #[test]
    fn deepest_common_folders_collapse_first() {
        let paths = s(&[
            "/a/b/1.html",
            "/a/b/2.html",
            "/a/c/3.html",
            "/d/4.html",
            "/5.html",
        ]);
        assert_eq!(
            collapse(paths.clone(), 4),
            s(&["/5.html", "/a/b/*", "/a/c/3.html", "/d/4.html"])
        );
        assert_eq!(
            collapse(paths.clone(), 3),
            s(&["/5.html", "/a/*", "/d/4.html"])
        );
        assert_eq!(collapse(paths.clone(), 2), s(&["/*"]));
        assert_eq!(collapse(paths, 1), s(&["/*"]));
    }

    #[test]
    fn index_folder_paths_collapse_with_their_folder() {
        let paths = viewer_paths(
            [
                "blog/post/index.html",
                "blog/post/img.png",
                "blog/index.html",
            ],
            "",
        );
        assert_eq!(paths.len(), 7);
        assert_eq!(collapse(paths, 4), s(&["/blog", "/blog/*"]));
    }

    #[test]
    fn a_thousand_assets_in_one_folder_become_one_wildcard() {
        let mut paths: Vec<String> = (0..1000).map(|i| format!("/assets/{i}.js")).collect();
        paths.push("/index.html".into());
        paths.push("/".into());
        assert_eq!(collapse(paths, 15), s(&["/", "/assets/*", "/index.html"]));
    }
}
