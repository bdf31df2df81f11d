//! Listing a prefix that may hold a million keys. ListObjectsV2 pages
//! chained by continuation token are one round trip per 1,000 keys (100 s
//! for 1,000,000 keys at 100 ms), so a large prefix is split at its folders
//! (Delimiter `/`) and the folders are listed concurrently, each the same
//! way, with at most [`PAGES_IN_FLIGHT`] requests under way.
//!
//! Per prefix (the deploy's, then each folder that needs it):
//! 1. one page without delimiter; not truncated: done. A site of up to
//!    1,000 objects costs 1 request, as a sequential listing does.
//! 2. truncated: the next page and the folder listing (Delimiter `/`, all
//!    its pages, after the first page's last key) at once; the next page
//!    not truncated: done. Up to 2,000 objects cost 3 requests in 2 round
//!    trips.
//! 3. still truncated: what comes after the last key seen is the folder
//!    listing's direct keys after it and its folders, listed concurrently:
//!    a folder holding the last key seen resumes after it (StartAfter), a
//!    folder wholly before it was already listed. Folders are grouped into
//!    chains of about 3/4 of a page by the keys a folder held so far
//!    (many small folders cost a request per 750 keys or so, not one per
//!    folder); a chain is one page from its first folder (StartAfter),
//!    then what that page did not reach is split the same way, and a chain
//!    of one folder is that folder listed by this same procedure.
//!
//! The result is the set a sequential listing returns, in its order (S3
//! sorts keys by their UTF-8 bytes, as `str` compares). A folder of N keys
//! directly under it (no sub-folders) still costs N/1,000 round trips: the
//! delimiter has nothing to split it at.
//!
//! The strategy never names the SDK: it drives any "one page" function, so
//! that it is tested against an in-memory bucket.

use std::future::Future;

use futures::future::{BoxFuture, try_join_all};
use tokio::sync::Semaphore;

/// LIST requests in flight at once for one listing. 32 pages at 100 ms
/// are 320,000 keys a second, and well under S3's 5,500 GET/HEAD requests
/// a second per prefix (S3 user guide, "Best practices design patterns:
/// optimizing Amazon S3 performance").
pub const PAGES_IN_FLIGHT: usize = 32;

/// The folder separator the split relies on.
pub const DELIMITER: &str = "/";

/// One ListObjectsV2 request: `Prefix`, `Delimiter` (`/` or none),
/// `StartAfter` and `ContinuationToken`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub prefix: String,
    /// Group keys into common prefixes at [`DELIMITER`].
    pub delimiter: bool,
    pub start_after: Option<String>,
    pub token: Option<String>,
}

/// One ListObjectsV2 answer: `Contents`, `CommonPrefixes`, and
/// `NextContinuationToken` (`Some` exactly when `IsTruncated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<O> {
    pub objects: Vec<O>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// Every object under `prefix`, sorted by key, fetched through `page` with
/// at most [`PAGES_IN_FLIGHT`] requests at once. The first error of any
/// page is the result (the pages under way are dropped).
pub async fn list<O, E, F, Fut>(prefix: &str, key: fn(&O) -> &str, page: F) -> Result<Vec<O>, E>
where
    F: Fn(Query) -> Fut + Sync,
    Fut: Future<Output = Result<Page<O>, E>> + Send,
    O: Send,
    E: Send,
{
    list_with(prefix, key, page, PAGES_IN_FLIGHT).await
}

/// [`list`] with `in_flight` requests at most (at least 1).
pub async fn list_with<O, E, F, Fut>(
    prefix: &str,
    key: fn(&O) -> &str,
    page: F,
    in_flight: usize,
) -> Result<Vec<O>, E>
where
    F: Fn(Query) -> Fut + Sync,
    Fut: Future<Output = Result<Page<O>, E>> + Send,
    O: Send,
    E: Send,
{
    let walk = Walk {
        page,
        key,
        permits: Semaphore::new(in_flight.max(1)),
        in_flight: in_flight.max(1),
    };
    let mut objects = walk.tree(prefix.to_string(), None).await?;
    // Folders finish in any order; callers get S3's.
    objects.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    Ok(objects)
}

struct Walk<F, O> {
    page: F,
    key: fn(&O) -> &str,
    permits: Semaphore,
    in_flight: usize,
}

impl<O, E, F, Fut> Walk<F, O>
where
    F: Fn(Query) -> Fut + Sync,
    Fut: Future<Output = Result<Page<O>, E>> + Send,
    O: Send,
    E: Send,
{
    async fn fetch(&self, query: Query) -> Result<Page<O>, E> {
        let _permit = self.permits.acquire().await.expect("never closed");
        (self.page)(query).await
    }

    /// The objects under `prefix` whose key sorts after `start_after`.
    fn tree(
        &self,
        prefix: String,
        start_after: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<O>, E>> {
        Box::pin(async move {
            let first = self
                .fetch(Query {
                    prefix: prefix.clone(),
                    start_after: start_after.clone(),
                    ..Query::default()
                })
                .await?;
            let page_size = first.objects.len().max(1);
            let mut objects = first.objects;
            let Some(token) = first.next else {
                return Ok(objects);
            };
            let next = self.fetch(Query {
                prefix: prefix.clone(),
                token: Some(token),
                ..Query::default()
            });
            let first_seen = objects.last().map(|o| (self.key)(o).to_string());
            let folders = self.folders(&prefix, first_seen.or(start_after.clone()));
            let (second, (direct, folders)) = futures::try_join!(next, folders)?;
            // The folders listed so far, as the folder listing names them:
            // those holding keys of the second page.
            let in_folders = second
                .objects
                .iter()
                .filter(|o| folder_of(&prefix, (self.key)(o)).is_some())
                .count();
            objects.extend(second.objects);
            if second.next.is_none() {
                return Ok(objects);
            }
            // Everything up to `seen` is listed; `seen` is past `start_after`.
            let seen = objects
                .last()
                .map(|o| (self.key)(o).to_string())
                .or(start_after);
            let density = self.density(in_folders, &folders, seen.as_deref());
            objects.extend(
                direct
                    .into_iter()
                    .filter(|o| seen.as_deref().is_none_or(|s| (self.key)(o) > s)),
            );
            let rest = remaining(folders, seen.as_deref());
            objects.extend(self.spans(&prefix, rest, seen, density, page_size).await?);
            Ok(objects)
        })
    }

    /// Keys a folder holds, on average, among `folders` up to `seen`
    /// (counting the one holding it), where `listed` keys were found;
    /// `None` when none is.
    fn density(&self, listed: usize, folders: &[String], seen: Option<&str>) -> Option<f64> {
        let seen = seen?;
        let covered = folders
            .iter()
            .filter(|f| f.as_str() < seen || seen.starts_with(f.as_str()))
            .count();
        (covered > 0).then(|| listed as f64 / covered as f64)
    }

    /// The objects under `folders` (consecutive folders of `prefix`, sorted,
    /// the first possibly holding `after`) whose key sorts after `after`.
    /// Small folders are listed together, about 3/4 of a page's worth a
    /// chain by the `density` seen so far (`None`: unknown, one chain per
    /// folder), so that many small folders do not cost a request each.
    fn spans<'a>(
        &'a self,
        prefix: &'a str,
        mut folders: Vec<String>,
        after: Option<String>,
        density: Option<f64>,
        page_size: usize,
    ) -> BoxFuture<'a, Result<Vec<O>, E>> {
        Box::pin(async move {
            if folders.len() <= 1 {
                return match folders.pop() {
                    Some(folder) => self.tree(folder, after).await,
                    None => Ok(Vec::new()),
                };
            }
            let most = folders.len().min(self.in_flight);
            let chains = density
                .map_or(most, |d| {
                    (d * folders.len() as f64 / (page_size as f64 * 0.75)).ceil() as usize
                })
                .clamp(1, most);
            let parts = folders
                .chunks(folders.len().div_ceil(chains))
                .enumerate()
                .map(|(i, group)| {
                    let after = if i == 0 { after.clone() } else { None };
                    self.span(prefix, group.to_vec(), after, page_size)
                });
            let mut objects = Vec::new();
            for part in try_join_all(parts).await? {
                objects.extend(part);
            }
            Ok(objects)
        })
    }

    /// The objects under `folders` (consecutive folders of `prefix`, sorted)
    /// after `after`: one page from the first folder's start, then what it
    /// did not reach, split again by [`Self::spans`].
    async fn span(
        &self,
        prefix: &str,
        folders: Vec<String>,
        after: Option<String>,
        page_size: usize,
    ) -> Result<Vec<O>, E> {
        if folders.len() == 1 {
            return self.tree(folders[0].clone(), after).await;
        }
        // From the first folder on, skipping the direct keys before it.
        let start = just_before(&folders[0]).max(after.unwrap_or_default());
        let page = self
            .fetch(Query {
                prefix: prefix.to_string(),
                start_after: Some(start),
                ..Query::default()
            })
            .await?;
        let seen = page.objects.last().map(|o| (self.key)(o).to_string());
        // The page also holds the keys between and after these folders:
        // other spans' and the direct keys, which the folder listing gave.
        let mine = |key: &str| {
            folder_of(prefix, key)
                .is_some_and(|f| folders.binary_search_by(|g| g.as_str().cmp(f)).is_ok())
        };
        let mut objects: Vec<O> = page
            .objects
            .into_iter()
            .filter(|o| mine((self.key)(o)))
            .collect();
        let last = folders.last().expect("two folders or more");
        let past_last = |s: &str| s > last.as_str() && !s.starts_with(last.as_str());
        let seen = match (page.next, seen) {
            (Some(_), Some(seen)) if !past_last(&seen) => seen,
            _ => return Ok(objects),
        };
        let density = self.density(objects.len(), &folders, Some(&seen));
        let rest = remaining(folders, Some(&seen));
        objects.extend(
            self.spans(prefix, rest, Some(seen), density, page_size)
                .await?,
        );
        Ok(objects)
    }

    /// The objects directly under `prefix` and its folders, every page,
    /// from after `start_after` on: a folder that holds no key after it
    /// may be named or not. (moto leaves out the folder that holds
    /// StartAfter, as it sorts before it; S3's reference does not say. It
    /// is added here, so that either way it is listed.)
    async fn folders(
        &self,
        prefix: &str,
        start_after: Option<String>,
    ) -> Result<(Vec<O>, Vec<String>), E> {
        let (mut objects, mut folders) = (Vec::new(), Vec::new());
        let holding = start_after
            .as_deref()
            .and_then(|s| folder_of(prefix, s))
            .map(String::from);
        let (mut start_after, mut token) = (start_after, None);
        loop {
            let page = self
                .fetch(Query {
                    prefix: prefix.to_string(),
                    delimiter: true,
                    start_after: start_after.take(),
                    token,
                })
                .await?;
            objects.extend(page.objects);
            // A folder must be longer than the prefix, or listing it would
            // list the prefix again, for ever. S3 never answers that; a
            // store that did would lose the folder's keys, so it is an
            // error in debug builds.
            debug_assert!(
                page.prefixes
                    .iter()
                    .all(|f| f.len() > prefix.len() && f.starts_with(prefix))
            );
            folders.extend(
                page.prefixes
                    .into_iter()
                    .filter(|f| f.len() > prefix.len() && f.starts_with(prefix)),
            );
            token = page.next;
            if token.is_none() {
                folders.extend(holding);
                // Spans look folders up by binary search.
                folders.sort_unstable();
                folders.dedup();
                return Ok((objects, folders));
            }
        }
    }
}

/// The folder of `prefix` that holds `key` (`prefix` and the key up to
/// its next [`DELIMITER`], included); `None` for a key directly under it.
fn folder_of<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    let end = rest.find(DELIMITER)? + DELIMITER.len();
    Some(&key[..prefix.len() + end])
}

/// The `folders` not wholly listed up to `seen`: the one holding it and
/// those after it. One sorting before `seen` without holding it is wholly
/// before it.
fn remaining(folders: Vec<String>, seen: Option<&str>) -> Vec<String> {
    let Some(seen) = seen else { return folders };
    folders
        .into_iter()
        .filter(|f| f.as_str() > seen || seen.starts_with(f.as_str()))
        .collect()
}

/// A StartAfter for listing from `folder` on: a string that sorts before
/// it and after every key before it, bar keys that start with the string
/// itself (one ending in U+10FFFF, which no site has; a span drops such a
/// stray key anyway, as it is in no folder of its own).
fn just_before(folder: &str) -> String {
    let mut s = folder.to_string();
    let previous = s
        .pop()
        .and_then(|c| (c as u32).checked_sub(1))
        .and_then(char::from_u32);
    if let Some(c) = previous {
        s.push(c);
        s.push(char::MAX);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;

    use super::*;

    /// A bucket of keys answering ListObjectsV2 as S3 does, `max_keys` keys
    /// and common prefixes a page. Its continuation token is the last key
    /// or common prefix it answered, marked as which.
    struct Bucket {
        keys: BTreeSet<String>,
        max_keys: usize,
        /// A query whose prefix starts with this fails.
        failing: Option<String>,
        /// With a delimiter, StartAfter also leaves out the folders that
        /// sort before it, the one holding it included, as moto does.
        folders_before_start_after: bool,
        queries: Mutex<Vec<Query>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Bucket {
        fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>, max_keys: usize) -> Self {
            Bucket {
                keys: keys.into_iter().map(|k| k.as_ref().to_string()).collect(),
                max_keys,
                failing: None,
                folders_before_start_after: false,
                queries: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }
        }

        fn answer(&self, q: &Query) -> Page<String> {
            let (after, skip_folder) = match q.token.as_deref() {
                Some(t) => match t.split_once(':') {
                    Some(("P", folder)) => (Some(folder), Some(folder)),
                    Some(("K", key)) => (Some(key), None),
                    _ => panic!("bad token {t}"),
                },
                None => (q.start_after.as_deref(), None),
            };
            let mut page = Page {
                objects: Vec::new(),
                prefixes: Vec::new(),
                next: None,
            };
            let mut last = None;
            for key in &self.keys {
                if !key.starts_with(&q.prefix) || after.is_some_and(|a| key.as_str() <= a) {
                    continue;
                }
                if skip_folder.is_some_and(|f| key.starts_with(f)) {
                    continue;
                }
                let folder = q
                    .delimiter
                    .then(|| key[q.prefix.len()..].find(DELIMITER))
                    .flatten()
                    .map(|i| &key[..q.prefix.len() + i + 1]);
                if folder.is_some() && page.prefixes.last().map(String::as_str) == folder {
                    continue;
                }
                let start_after = q.start_after.as_deref().filter(|_| q.token.is_none());
                if self.folders_before_start_after
                    && folder.zip(start_after).is_some_and(|(f, s)| f <= s)
                {
                    continue;
                }
                if page.objects.len() + page.prefixes.len() == self.max_keys {
                    page.next = last;
                    break;
                }
                match folder {
                    Some(f) => {
                        page.prefixes.push(f.to_string());
                        last = Some(format!("P:{f}"));
                    }
                    None => {
                        page.objects.push(key.clone());
                        last = Some(format!("K:{key}"));
                    }
                }
            }
            page
        }

        async fn page(&self, q: Query) -> Result<Page<String>, String> {
            self.queries.lock().unwrap().push(q.clone());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            // Lets the other branches start their requests meanwhile.
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(f) = &self.failing {
                if q.prefix.starts_with(f.as_str()) {
                    return Err(format!("AccessDenied on {}", q.prefix));
                }
            }
            Ok(self.answer(&q))
        }

        fn sequential(&self, prefix: &str) -> Vec<String> {
            self.keys
                .iter()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        }

        fn requests(&self) -> usize {
            self.queries.lock().unwrap().len()
        }
    }

    fn key(k: &String) -> &str {
        k
    }

    async fn listed(
        bucket: &Bucket,
        prefix: &str,
        in_flight: usize,
    ) -> Result<Vec<String>, String> {
        list_with(prefix, key, |q| bucket.page(q), in_flight).await
    }

    /// A site-like tree: `n` pages in `folders` folders of a few levels,
    /// plus root files.
    fn site(n: usize, folders: usize) -> Vec<String> {
        let mut keys = vec!["index.html".to_string(), "robots.txt".into()];
        for i in 0..n {
            let f = i % folders;
            keys.push(format!("docs/s{}/p{f}/page{i}.html", f % 3));
        }
        keys
    }

    #[test]
    fn the_fake_bucket_pages_as_s3_does() {
        let b = Bucket::new(["a", "a/b", "a/c", "b", "c/d"], 2);
        let q = |delimiter, token: Option<&str>| Query {
            prefix: String::new(),
            delimiter,
            start_after: None,
            token: token.map(String::from),
        };
        let p = b.answer(&q(true, None));
        assert_eq!(
            (p.objects, p.prefixes),
            (vec!["a".into()], vec!["a/".into()])
        );
        let p = b.answer(&q(true, p.next.as_deref()));
        assert_eq!(
            (p.objects, p.prefixes, p.next),
            (vec!["b".into()], vec!["c/".into()], None)
        );
        let p = b.answer(&q(false, Some("K:a/b")));
        assert_eq!(p.objects, vec!["a/c".to_string(), "b".into()]);
    }

    #[tokio::test]
    async fn a_small_prefix_costs_one_request_without_delimiter() {
        let b = Bucket::new(site(998, 40), 1000);
        assert_eq!(listed(&b, "", 32).await.unwrap(), b.sequential(""));
        assert_eq!(b.requests(), 1);
        assert!(!b.queries.lock().unwrap()[0].delimiter);
    }

    #[tokio::test]
    async fn two_pages_cost_three_requests() {
        let b = Bucket::new(site(1998, 40), 1000);
        assert_eq!(listed(&b, "", 32).await.unwrap(), b.sequential(""));
        assert_eq!(b.requests(), 3);
    }

    #[tokio::test]
    async fn a_large_tree_is_listed_concurrently_and_whole() {
        let b = Bucket::new(site(20_000, 60), 1000);
        let all = listed(&b, "", 8).await.unwrap();
        assert_eq!(all, b.sequential(""));
        let most = b.most_in_flight.load(Ordering::SeqCst);
        assert!(most > 1 && most <= 8, "{most} requests in flight");
        // No page was asked twice: every request lists something new.
        let queries = b.queries.lock().unwrap();
        let distinct: BTreeSet<_> = queries.iter().map(|q| format!("{q:?}")).collect();
        assert_eq!(distinct.len(), queries.len());
    }

    #[tokio::test]
    async fn a_prefix_lists_only_under_it() {
        let mut keys = site(3000, 30);
        keys.extend(["docs".into(), "docs2/x".into(), "doc".into()]);
        let b = Bucket::new(keys, 100);
        assert_eq!(listed(&b, "docs/", 4).await.unwrap(), b.sequential("docs/"));
    }

    /// Keys directly under a level, keys sorting between folders (`a-b`,
    /// `a.txt` before `a/`; `a0` after it), empty folder objects (`x/`),
    /// doubled slashes, and characters that sort before `/` or far after.
    #[tokio::test]
    async fn odd_keys_between_folders_are_kept() {
        let mut keys: Vec<String> = [
            "a",
            "a-b",
            "a.txt",
            "a/",
            "a/b",
            "a/b/",
            "a/b/c",
            "a//d",
            "a0",
            "a/ b",
            "a/+%&<",
            "x/",
            "y/z/",
            "é/ü",
            "日本/語.html",
            " ",
            "!",
            "~",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for i in 0..40 {
            keys.push(format!("a/f{i:02}/k"));
            keys.push(format!("a/f{i:02}.html"));
        }
        let b = Bucket::new(keys, 3);
        for prefix in ["", "a/", "a/b/", "é/"] {
            assert_eq!(
                listed(&b, prefix, 4).await.unwrap(),
                b.sequential(prefix),
                "{prefix}"
            );
        }
    }

    /// 300 folders of 17 keys under each of 6 categories, as a shop's
    /// product pages: a request per folder would be 1,800 requests for
    /// 30,000 keys; sequential pages are 30.
    #[tokio::test]
    async fn small_folders_are_listed_a_page_at_a_time() {
        let keys =
            (0..30_000).map(|i| format!("products/c{}/{}/item-{i}.html", i % 6, i / 6 % 300));
        let b = Bucket::new(keys, 1000);
        assert_eq!(listed(&b, "", 32).await.unwrap(), b.sequential(""));
        let requests = b.requests();
        assert!((30..=80).contains(&requests), "{requests} requests");
    }

    /// Keys directly under one folder: the delimiter cannot split them, and
    /// the folder listing resumes where the first page ended, so they cost
    /// one request more than a sequential listing (the second page, sent
    /// in case the folder listing had found folders).
    #[tokio::test]
    async fn a_flat_folder_costs_one_request_more_than_a_sequential_listing() {
        let keys = (0..20_000).map(|i| format!("images/{i:05x}.webp"));
        for moto in [false, true] {
            let mut b = Bucket::new(keys.clone(), 1000);
            b.folders_before_start_after = moto;
            let all = listed(&b, "images/", 32).await.unwrap();
            assert_eq!(all, b.sequential("images/"));
            // 2 pages, and the folder listing's 19 from the first's end.
            assert_eq!(b.requests(), 21, "moto: {moto}");
        }
    }

    #[test]
    fn a_start_after_just_before_a_folder_skips_only_what_sorts_before_it() {
        let start = just_before("docs/a/");
        assert!(start.as_str() < "docs/a/");
        for before in ["docs/a", "docs/a.html", "docs/a-b/c", "docs/a.\u{FFFF}"] {
            assert!(before <= start.as_str(), "{before}");
        }
        assert_eq!(just_before("\0"), "");
        assert_eq!(folder_of("docs/", "docs/a/b/c"), Some("docs/a/"));
        assert_eq!(folder_of("docs/", "docs/a"), None);
        assert_eq!(folder_of("", "a//b"), Some("a/"));
    }

    #[tokio::test]
    async fn one_failing_folder_fails_the_listing() {
        let mut b = Bucket::new(site(5000, 50), 100);
        b.failing = Some("docs/s1/p31/".into());
        let err = listed(&b, "", 8).await.unwrap_err();
        assert_eq!(err, "AccessDenied on docs/s1/p31/");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the keys, page size, prefix and limit: a sequential
        /// listing's keys, in its order.
        #[test]
        fn the_same_keys_as_a_sequential_listing(
            keys in proptest::collection::btree_set("[ab/.é-]{1,6}", 0..60),
            max_keys in 1usize..5,
            prefix in prop_oneof![Just(""), Just("a"), Just("a/"), Just("b/a/")],
            in_flight in 1usize..5,
            folders_before_start_after: bool,
        ) {
            let mut b = Bucket::new(&keys, max_keys);
            b.folders_before_start_after = folders_before_start_after;
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let all = runtime.block_on(listed(&b, prefix, in_flight)).unwrap();
            prop_assert_eq!(all, b.sequential(prefix));
        }
    }
}
