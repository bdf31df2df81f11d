//! Verifying a deploy from the visitor's side, the pure part: which paths
//! to request (what the deploy uploaded, fixed in place or deleted; past
//! [`MAX_CHECKS`], every entry document and a fixed sample of the rest), at
//! which URL, how to read each answer, and whether what was served is what
//! the deploy set. The requests themselves are `run::verify`'s.

use std::collections::{HashMap, HashSet};
use std::fmt;

use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::etag::MULTIPART_THRESHOLD;
use crate::model::{ETag, Key, Prefix};

use super::invalidation::{Origin, served_prefix};
use super::{Plan, PlannedUpload, Wave, wave};

/// The most requests one verification makes, folder URLs included. Past
/// it, every entry document is still checked, and the other paths are
/// sampled: those whose key has the smallest MD5, a choice that is the same
/// on every run of the same deploy and spread over the whole tree.
pub const MAX_CHECKS: usize = 1000;

/// Bodies this large or larger are not downloaded: the content is compared
/// by the ETag header alone. Below it, this pipe uploads in one part, so
/// the object's ETag is the MD5 of its bytes (unless SSE-KMS).
pub const MAX_HASHED_BODY: u64 = MULTIPART_THRESHOLD;

/// What the deploy did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Upload,
    UpdateHeaders,
    Delete,
}

impl Action {
    /// As the report's `objects` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::UpdateHeaders => "update headers",
            Action::Delete => "delete",
        }
    }
}

/// What the deploy set on an object, as a visitor should get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The ETag S3 returned for this deploy's write.
    pub etag: ETag,
    /// Bytes as stored (compressed, when they are).
    pub size: u64,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub cache_control: Option<String>,
}

/// What a visitor should get at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Object(Expected),
    /// Nothing: 403 or 404.
    Gone,
}

/// One request of the verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub key: Key,
    /// Below the base URL: `/` and the key relative to the prefix,
    /// percent-encoded; `dir/` for `dir/<INDEX_DOCUMENT>` requested as its
    /// folder.
    pub path: String,
    pub action: Action,
    pub want: Want,
    /// Requested through its folder's URL (INDEX_DOCUMENT).
    pub folder: bool,
    /// An entry document (ENTRY_DOCUMENTS): never left out by the sample.
    pub entry_document: bool,
}

/// The checks of one deploy.
#[derive(Debug, Default)]
pub struct Selection {
    pub checks: Vec<Check>,
    /// Keys the deploy uploaded, fixed or deleted: what the checks sample.
    pub candidates: usize,
}

impl Selection {
    /// Whether the cap left some keys unchecked.
    pub fn sampled(&self) -> bool {
        let keys: HashSet<&Key> = self.checks.iter().map(|c| &c.key).collect();
        keys.len() < self.candidates
    }
}

/// What the verification of one deploy needs from it.
pub struct Deployed<'a> {
    pub plan: &'a Plan,
    /// The ETag S3 returned for each write.
    pub etags: &'a HashMap<Key, ETag>,
    pub prefix: &'a Prefix,
    pub entry_documents: &'a globset::GlobSet,
    pub index_document: Option<&'a str>,
}

/// The checks for what `deployed` changed, at most `cap` of them (see
/// [`MAX_CHECKS`]), sorted by path.
pub fn select(deployed: &Deployed, cap: usize) -> Selection {
    let mut groups: Vec<Vec<Check>> = Vec::new();
    let writes = [
        (Action::Upload, &deployed.plan.uploads),
        (Action::UpdateHeaders, &deployed.plan.copies),
    ];
    for (action, planned) in writes {
        for p in planned {
            // Every write of a deploy that got here succeeded and has one.
            let Some(etag) = deployed.etags.get(&p.upload.key) else {
                continue;
            };
            groups.extend(group(deployed, &p.upload.key, action, expected(p, etag)));
        }
    }
    for d in &deployed.plan.deletes {
        groups.extend(group(deployed, &d.key, Action::Delete, Want::Gone));
    }
    let candidates = groups.len();
    let (mut checks, mut rest): (Vec<Vec<Check>>, Vec<Vec<Check>>) =
        groups.into_iter().partition(|g| g[0].entry_document);
    rest.sort_by_cached_key(|g| Md5::digest(g[0].key.as_bytes()));
    let mut count: usize = checks.iter().map(Vec::len).sum();
    for g in rest {
        if count + g.len() <= cap {
            count += g.len();
            checks.push(g);
        }
    }
    let mut checks: Vec<Check> = checks.into_iter().flatten().collect();
    checks.sort_by(|a, b| a.path.cmp(&b.path));
    Selection { checks, candidates }
}

fn expected(p: &PlannedUpload, etag: &ETag) -> Want {
    let headers = p.upload.headers();
    Want::Object(Expected {
        etag: etag.clone(),
        size: p.upload.size,
        content_type: p.upload.content_type.clone(),
        content_encoding: headers.content_encoding,
        cache_control: headers.cache_control,
    })
}

/// A key's checks: its own path, and its folder's when the key is the
/// index document. `None` for a key outside the prefix (never planned).
fn group(deployed: &Deployed, key: &Key, action: Action, want: Want) -> Option<Vec<Check>> {
    let relative = deployed.prefix.strip(key)?;
    let entry_document = wave(relative, deployed.entry_documents) == Wave::EntryDocuments;
    let check = |path: String, folder: bool| Check {
        key: key.clone(),
        path,
        action,
        want: want.clone(),
        folder,
        entry_document,
    };
    let mut checks = vec![check(format!("/{}", encode(relative)), false)];
    let (folder, name) = match relative.rsplit_once('/') {
        Some((folder, name)) => (format!("{folder}/"), name),
        None => (String::new(), relative),
    };
    if deployed.index_document == Some(name) {
        checks.push(check(format!("/{}", encode(&folder)), true));
    }
    Some(checks)
}

/// What a URL path cannot hold as is (RFC 3986's `pchar`, with `/`): plus
/// `+`, which S3 reads as a space in a path.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A key (or part of one) as a URL path; non-ASCII bytes as UTF-8 escapes.
pub fn encode(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// The URL where the deploy's prefix is served through a distribution:
/// `https://<domain>`, then the part of the prefix below the origin path of
/// the distribution's origin for `bucket`. An error (what to set instead)
/// when no origin points at the bucket or the prefix is not below its
/// origin path.
pub fn distribution_url(
    bucket: &str,
    prefix: &Prefix,
    domain: &str,
    origins: &[Origin],
) -> Result<String, String> {
    let Some(served) = served_prefix(bucket, origins) else {
        return Err(format!(
            "no origin of {domain} points at bucket {bucket}: set VERIFY_URL to where \
             s3://{bucket}/{} is served",
            prefix.list_prefix()
        ));
    };
    let served = Prefix::new(&served);
    let below = if served == *prefix {
        Some("")
    } else {
        served.strip(prefix.as_str())
    };
    match below {
        Some("") => Ok(format!("https://{domain}")),
        Some(rest) => Ok(format!("https://{domain}/{}", encode(rest))),
        None => Err(format!(
            "{domain} serves s3://{bucket}/{}, not s3://{bucket}/{}: set VERIFY_URL to where \
             the deploy's prefix is served",
            served.list_prefix(),
            prefix.list_prefix()
        )),
    }
}

/// An encoding a CDN compresses with on its own, and the check decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Brotli,
}

/// How to read an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Not at all: the status and headers tell everything there is.
    Skip,
    /// The MD5 of the bytes as served. Past `limit` bytes (the object's
    /// size) they are not the object's, and the read stops.
    Raw { limit: u64 },
    /// The MD5 of the bytes after undoing the CDN's own compression of an
    /// object stored uncompressed, up to `limit` bytes decoded.
    Decode { codec: Codec, limit: u64 },
}

/// How to read the body of an answer with `status` and `encoding`
/// (Content-Encoding) to `check`: only a 200 for an object below
/// [`MAX_HASHED_BODY`], in the encoding it is stored in, or compressed by
/// the CDN from none (CloudFront's "Compress objects automatically").
pub fn reading(check: &Check, status: u16, encoding: Option<&str>) -> Reading {
    let Want::Object(e) = &check.want else {
        return Reading::Skip;
    };
    if status != 200 || e.size >= MAX_HASHED_BODY {
        return Reading::Skip;
    }
    let served = encoding.map(str::trim).filter(|s| !s.is_empty());
    match (e.content_encoding.as_deref(), served) {
        (stored, served) if same_encoding(stored, served) => Reading::Raw { limit: e.size },
        (None, Some(served)) => match codec(served) {
            Some(codec) => Reading::Decode {
                codec,
                limit: e.size,
            },
            None => Reading::Skip,
        },
        _ => Reading::Skip,
    }
}

fn codec(encoding: &str) -> Option<Codec> {
    match encoding.to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => Some(Codec::Gzip),
        "br" => Some(Codec::Brotli),
        _ => None,
    }
}

fn same_encoding(a: Option<&str>, b: Option<&str>) -> bool {
    let norm = |e: Option<&str>| {
        e.map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty() && e != "identity")
    };
    norm(a) == norm(b)
}

/// What the site answered, as far as the comparison goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub cache_control: Option<String>,
    /// CloudFront's `X-Cache` (`Hit from cloudfront`, ...).
    pub x_cache: Option<String>,
    /// Seconds a cache has held the answer.
    pub age: Option<String>,
    /// The MD5 of the body as stored (after undoing the CDN's compression),
    /// when it was read ([`reading`]) and read whole.
    pub md5: Option<ETag>,
}

impl Served {
    /// From a status, the headers (names in any case) and the body's MD5.
    pub fn new(status: u16, headers: &[(String, String)], md5: Option<ETag>) -> Self {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        Served {
            status,
            location: get("location"),
            etag: get("etag"),
            content_type: get("content-type"),
            content_encoding: get("content-encoding"),
            cache_control: get("cache-control"),
            x_cache: get("x-cache"),
            age: get("age"),
            md5,
        }
    }

    /// The ETag header as S3 set it: a CDN that compresses turns a strong
    /// ETag into a weak one (`W/"..."`) and keeps its value.
    fn object_etag(&self) -> Option<ETag> {
        let raw = self.etag.as_deref()?;
        Some(ETag::new(raw.strip_prefix("W/").unwrap_or(raw)))
    }
}

/// One way what was served differs from what the deploy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A 3xx: not followed.
    Redirect {
        status: u16,
        location: Option<String>,
        gone: bool,
    },
    Forbidden,
    NotFound,
    /// Any other status where a 200 was due.
    Status(u16),
    /// Other bytes than the object's.
    OldBytes {
        expected: ETag,
        served: String,
    },
    WrongType {
        expected: String,
        served: Option<String>,
    },
    WrongEncoding {
        expected: Option<String>,
        served: Option<String>,
    },
    WrongCacheControl {
        expected: String,
        served: Option<String>,
    },
    /// A deleted path still answered with a success.
    StillServed {
        status: u16,
        etag: Option<String>,
    },
    /// No answer: the request failed or timed out.
    Unreachable(String),
    /// VERIFY_TIMEOUT ran out first.
    NotChecked,
}

/// Every kind of problem, in the order the hints are given.
pub const KINDS: &[&str] = &[
    "forbidden",
    "not found",
    "redirect",
    "error status",
    "old bytes",
    "still served",
    "wrong type",
    "wrong encoding",
    "wrong cache-control",
    "unreachable",
    "not checked",
];

impl Problem {
    /// Its kind, as the report's `problems[].kind` and the summary name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Redirect { .. } => "redirect",
            Problem::Forbidden => "forbidden",
            Problem::NotFound => "not found",
            Problem::Status(_) => "error status",
            Problem::OldBytes { .. } => "old bytes",
            Problem::WrongType { .. } => "wrong type",
            Problem::WrongEncoding { .. } => "wrong encoding",
            Problem::WrongCacheControl { .. } => "wrong cache-control",
            Problem::StillServed { .. } => "still served",
            Problem::Unreachable(_) => "unreachable",
            Problem::NotChecked => "not checked",
        }
    }

    pub fn expected(&self) -> String {
        let none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        match self {
            Problem::Redirect { gone: true, .. } | Problem::StillServed { .. } => {
                "403 or 404".into()
            }
            Problem::Redirect { .. }
            | Problem::Forbidden
            | Problem::NotFound
            | Problem::Status(_) => "200".into(),
            Problem::OldBytes { expected, .. } => format!("ETag {expected}"),
            Problem::WrongType { expected, .. } => expected.clone(),
            Problem::WrongEncoding { expected, .. } => none(expected),
            Problem::WrongCacheControl { expected, .. } => expected.clone(),
            Problem::Unreachable(_) => "an answer".into(),
            Problem::NotChecked => "a check within VERIFY_TIMEOUT".into(),
        }
    }

    pub fn served(&self) -> String {
        let none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        match self {
            Problem::Redirect {
                status, location, ..
            } => match location {
                Some(to) => format!("{status} to {to}"),
                None => format!("{status}"),
            },
            Problem::Forbidden => "403".into(),
            Problem::NotFound => "404".into(),
            Problem::Status(status) => status.to_string(),
            Problem::OldBytes { served, .. } => served.clone(),
            Problem::WrongType { served, .. }
            | Problem::WrongEncoding { served, .. }
            | Problem::WrongCacheControl { served, .. } => none(served),
            Problem::StillServed { status, etag } => match etag {
                Some(etag) => format!("{status} (ETag {etag})"),
                None => status.to_string(),
            },
            Problem::Unreachable(error) => error.clone(),
            Problem::NotChecked => "no request".into(),
        }
    }

    /// Whether asking again may help: caches converge after an
    /// invalidation, and hold an error answer only for a while. A redirect
    /// is configuration, and a check past the timeout has no time left.
    pub fn may_clear(&self) -> bool {
        !matches!(self, Problem::Redirect { .. } | Problem::NotChecked)
    }
}

/// `old bytes: expected ETag 0cc1…, served MD5 92eb…`
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, served {}",
            self.kind(),
            self.expected(),
            self.served()
        )
    }
}

/// What to do about a kind of problem.
pub fn hint(kind: &str) -> &'static str {
    match kind {
        "forbidden" => {
            "403 for a deployed object: the origin refuses to read it. Check the origin access \
             control (OAC) and the bucket policy (s3:GetObject for the distribution on the \
             prefix's objects), that KMS-encrypted objects are readable by CloudFront, and that \
             VERIFY_URL and the origin path lead to S3_BUCKET's prefix"
        }
        "not found" => {
            "404 for a deployed object: the URL does not lead to the key. Check VERIFY_URL and the \
             distribution's origin path; a 404 cached before the upload lasts the error caching TTL"
        }
        "redirect" => {
            "the site redirects (not followed): a viewer protocol policy (http to https), a \
             website redirect rule or a folder URL without its /; set VERIFY_URL to the final URL"
        }
        "error status" => "the site answered with an error: see its status and the origin's logs",
        "old bytes" => {
            "other bytes than the deployed object's: a cache still holds the old version. Check \
             that the invalidation covers the path (PATHS, INVALIDATION_MAX_PATHS) and the cache \
             policy (and any cache in front of CloudFront)"
        }
        "still served" => {
            "a deleted path still answers: a cache still holds it (invalidation, cache policy), \
             or a custom error response answers 200 for missing paths (a single-page app's \
             fallback)"
        }
        "wrong type" | "wrong encoding" | "wrong cache-control" => {
            "headers other than the deploy set: check the rules (RULES, RULES_FILE) and \
             EXTRA_ARGS for what the deploy sets, and the distribution's response headers \
             policy; old headers after a fix in place mean a cache still holds the object"
        }
        "unreachable" => {
            "no answer: check VERIFY_URL, DNS, the network and the site's certificate (it must \
             chain to a CA the image trusts), and that the site answers from where the pipe runs"
        }
        "not checked" => {
            "VERIFY_TIMEOUT ran out before these paths were checked: raise it, or CONCURRENCY"
        }
        _ => "",
    }
}

/// Every way `served` differs from what `check` wants; none when it is what
/// the deploy set. For an object: a 200, its bytes (the MD5 of the body, or
/// the ETag header when it is the object's ETag), Content-Type,
/// Content-Encoding (or the CDN's own compression of an object stored
/// without one) and Cache-Control (when the deploy set one). For a deleted
/// path: 403 or 404.
pub fn compare(check: &Check, served: &Served) -> Vec<Problem> {
    let status = served.status;
    let redirect = |gone| Problem::Redirect {
        status,
        location: served.location.clone(),
        gone,
    };
    let e = match (&check.want, status) {
        (Want::Gone, 403 | 404) => return Vec::new(),
        (Want::Gone, 300..=399) => return vec![redirect(true)],
        (Want::Gone, 200..=299) => {
            return vec![Problem::StillServed {
                status,
                etag: served.etag.clone(),
            }];
        }
        (Want::Gone, _) => return vec![Problem::Status(status)],
        (Want::Object(e), 200) => e,
        (Want::Object(_), 300..=399) => return vec![redirect(false)],
        (Want::Object(_), 403) => return vec![Problem::Forbidden],
        (Want::Object(_), 404) => return vec![Problem::NotFound],
        (Want::Object(_), _) => return vec![Problem::Status(status)],
    };
    let mut problems = Vec::new();
    let by_bytes = served.md5.as_ref() == Some(&e.etag);
    let by_etag = served.object_etag().as_ref() == Some(&e.etag);
    if !by_bytes && !by_etag {
        let served = match (&served.md5, &served.etag) {
            (Some(md5), Some(etag)) => format!("MD5 {md5} (ETag {etag})"),
            (Some(md5), None) => format!("MD5 {md5} (no ETag)"),
            (None, Some(etag)) => format!("ETag {etag}"),
            (None, None) => "no ETag (body not compared)".into(),
        };
        problems.push(Problem::OldBytes {
            expected: e.etag.clone(),
            served,
        });
    }
    if !same_type(&e.content_type, served.content_type.as_deref()) {
        problems.push(Problem::WrongType {
            expected: e.content_type.clone(),
            served: served.content_type.clone(),
        });
    }
    let encoding = served.content_encoding.as_deref();
    let compressed_by_cdn = e.content_encoding.is_none() && encoding.and_then(codec).is_some();
    if !same_encoding(e.content_encoding.as_deref(), encoding) && !compressed_by_cdn {
        problems.push(Problem::WrongEncoding {
            expected: e.content_encoding.clone(),
            served: served.content_encoding.clone(),
        });
    }
    if let Some(cache) = &e.cache_control {
        if served.cache_control.as_deref().map(str::trim) != Some(cache.trim()) {
            problems.push(Problem::WrongCacheControl {
                expected: cache.clone(),
                served: served.cache_control.clone(),
            });
        }
    }
    problems
}

/// Media types compare without case, and parameters without the spaces
/// around `;` (`text/html;charset=UTF-8` is `text/html; charset=utf-8`).
fn same_type(expected: &str, served: Option<&str>) -> bool {
    let norm = |t: &str| {
        t.split(';')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    served.is_some_and(|s| norm(s) == norm(expected))
}

/// The outcome of one check, after its rechecks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub check: Check,
    pub url: String,
    /// The last answer's status; `None` when none came.
    pub status: Option<u16>,
    pub x_cache: Option<String>,
    pub age: Option<String>,
    /// Requests made for it.
    pub attempts: u32,
    /// Empty when it was served as deployed.
    pub problems: Vec<Problem>,
}

/// A whole verification: the URL, how many paths the deploy changed, and
/// each check's verdict, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub url: String,
    pub candidates: usize,
    pub verdicts: Vec<Verdict>,
}

impl Verification {
    pub fn failed(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| !v.problems.is_empty())
            .count()
    }

    /// Whether the cap left some changed keys unchecked.
    pub fn sampled(&self) -> bool {
        let keys: HashSet<&Key> = self.verdicts.iter().map(|v| &v.check.key).collect();
        keys.len() < self.candidates
    }

    pub fn requests(&self) -> u32 {
        self.verdicts.iter().map(|v| v.attempts).sum()
    }

    /// Each kind of problem found, with how many, in [`KINDS`] order.
    pub fn kinds(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = KINDS.iter().map(|k| (*k, 0)).collect();
        for problem in self.verdicts.iter().flat_map(|v| &v.problems) {
            if let Some(entry) = counts.iter_mut().find(|(k, _)| *k == problem.kind()) {
                entry.1 += 1;
            }
        }
        counts.retain(|(_, n)| *n > 0);
        counts
    }

    /// The statuses deleted paths answered with, as expected (403 or 404),
    /// each once, sorted: what the origin gives for a missing key.
    pub fn gone_statuses(&self) -> Vec<u16> {
        let mut statuses: Vec<u16> = self
            .verdicts
            .iter()
            .filter(|v| v.check.want == Want::Gone && v.problems.is_empty())
            .filter_map(|v| v.status)
            .collect();
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LocalFile, ObjectSettings, Upload};
    use crate::plan::{ENTRY_DOCUMENTS, PlannedDelete, Reason, entry_document_globs};

    const A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const B: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    fn planned(key: &str, size: u64, settings: ObjectSettings) -> PlannedUpload {
        let file = LocalFile::new(
            std::path::PathBuf::from("/site").into(),
            &crate::model::Prefix::default(),
            key,
            size,
        );
        PlannedUpload {
            upload: Upload {
                key: file.key.clone(),
                path: file.path(),
                size,
                content_type: crate::plan::content_type::content_type(&file.key),
                settings,
            },
            reason: Reason::New,
            wave: Wave::Assets,
        }
    }

    fn deployed_select(plan: &Plan, prefix: &str, index: Option<&str>, cap: usize) -> Selection {
        let etags: HashMap<Key, ETag> = plan
            .uploads
            .iter()
            .chain(&plan.copies)
            .map(|p| (p.upload.key.clone(), ETag::new(A)))
            .collect();
        let globs = entry_document_globs(ENTRY_DOCUMENTS).unwrap();
        select(
            &Deployed {
                plan,
                etags: &etags,
                prefix: &Prefix::new(prefix),
                entry_documents: &globs,
                index_document: index,
            },
            cap,
        )
    }

    fn paths(s: &Selection) -> Vec<&str> {
        s.checks.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn every_upload_fix_and_delete_is_checked_below_the_prefix_and_encoded() {
        let plan = Plan {
            uploads: vec![planned(
                "p/caf\u{e9} menu+1.txt",
                3,
                ObjectSettings::default(),
            )],
            copies: vec![planned("p/docs/index.html", 3, ObjectSettings::default())],
            deletes: vec![PlannedDelete {
                key: Key::new("p/old.js"),
                size: 1,
            }],
            ..Plan::default()
        };
        let s = deployed_select(&plan, "p", Some("index.html"), MAX_CHECKS);
        assert_eq!(
            paths(&s),
            [
                "/caf%C3%A9%20menu%2B1.txt",
                "/docs/",
                "/docs/index.html",
                "/old.js"
            ]
        );
        assert_eq!(s.candidates, 3);
        assert!(!s.sampled());
        let folder = &s.checks[1];
        assert!(folder.folder && folder.entry_document);
        assert_eq!(folder.action, Action::UpdateHeaders);
        assert_eq!(s.checks[3].want, Want::Gone);
        // Without INDEX_DOCUMENT, no folder URL; the root index is `/`.
        let root = Plan {
            uploads: vec![planned("index.html", 1, ObjectSettings::default())],
            ..Plan::default()
        };
        assert_eq!(
            paths(&deployed_select(&root, "", Some("index.html"), 9)),
            ["/", "/index.html"]
        );
        assert_eq!(paths(&deployed_select(&root, "", None, 9)), ["/index.html"]);
    }

    #[test]
    fn past_the_cap_every_entry_document_stays_and_the_sample_is_stable() {
        let mut uploads: Vec<PlannedUpload> = (0..50)
            .map(|i| planned(&format!("a/{i}.js"), 1, ObjectSettings::default()))
            .collect();
        uploads
            .extend((0..5).map(|i| planned(&format!("p{i}.html"), 1, ObjectSettings::default())));
        let plan = Plan {
            uploads,
            ..Plan::default()
        };
        let s = deployed_select(&plan, "", None, 12);
        assert_eq!(s.checks.len(), 12);
        assert_eq!(s.candidates, 55);
        assert!(s.sampled());
        let pages = s.checks.iter().filter(|c| c.entry_document).count();
        assert_eq!(pages, 5);
        assert_eq!(paths(&s), paths(&deployed_select(&plan, "", None, 12)));
        // Entry documents beyond the cap are all checked still.
        assert_eq!(deployed_select(&plan, "", None, 2).checks.len(), 5);
    }

    #[test]
    fn the_distribution_url_follows_the_origin_path() {
        let origins = |path: &str| {
            vec![Origin {
                domain: "b.s3.eu-west-1.amazonaws.com".into(),
                path: path.into(),
            }]
        };
        let url = |prefix: &str, origin: &str| {
            distribution_url(
                "b",
                &Prefix::new(prefix),
                "d1.cloudfront.net",
                &origins(origin),
            )
        };
        assert_eq!(url("", "").unwrap(), "https://d1.cloudfront.net");
        assert_eq!(url("site", "/site").unwrap(), "https://d1.cloudfront.net");
        assert_eq!(
            url("site/v 2", "/site").unwrap(),
            "https://d1.cloudfront.net/v%202"
        );
        assert_eq!(url("site", "").unwrap(), "https://d1.cloudfront.net/site");
        assert!(
            url("other", "/site")
                .unwrap_err()
                .contains("set VERIFY_URL")
        );
        assert!(url("site", "/site/v2").is_err());
        let err = distribution_url("c", &Prefix::default(), "d1.cloudfront.net", &origins(""));
        assert!(
            err.unwrap_err()
                .starts_with("no origin of d1.cloudfront.net points at bucket c")
        );
    }

    fn object(encoding: Option<&str>, cache: Option<&str>, size: u64) -> Check {
        Check {
            key: Key::new("app.js"),
            path: "/app.js".into(),
            action: Action::Upload,
            want: Want::Object(Expected {
                etag: ETag::new(A),
                size,
                content_type: "text/javascript; charset=utf-8".into(),
                content_encoding: encoding.map(str::to_string),
                cache_control: cache.map(str::to_string),
            }),
            folder: false,
            entry_document: false,
        }
    }

    fn served(status: u16, headers: &[(&str, &str)], md5: Option<&str>) -> Served {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Served::new(status, &headers, md5.map(ETag::new))
    }

    const JS: (&str, &str) = ("Content-Type", "text/javascript;charset=UTF-8");

    #[test]
    fn bodies_are_read_in_their_stored_encoding_or_decoded_from_the_cdn_s() {
        let plain = object(None, None, 10);
        assert_eq!(reading(&plain, 200, None), Reading::Raw { limit: 10 });
        assert_eq!(
            reading(&plain, 200, Some("br")),
            Reading::Decode {
                codec: Codec::Brotli,
                limit: 10
            }
        );
        assert_eq!(reading(&plain, 404, None), Reading::Skip);
        assert_eq!(reading(&plain, 200, Some("zstd")), Reading::Skip);
        let br = object(Some("br"), None, 10);
        assert_eq!(reading(&br, 200, Some("BR")), Reading::Raw { limit: 10 });
        assert_eq!(reading(&br, 200, None), Reading::Skip);
        let big = object(None, None, MAX_HASHED_BODY);
        assert_eq!(reading(&big, 200, None), Reading::Skip);
    }

    #[test]
    fn an_object_is_as_deployed_by_its_bytes_or_its_etag_and_its_headers() {
        let check = object(None, Some("max-age=60"), 10);
        let cache = ("Cache-Control", "max-age=60");
        assert!(compare(&check, &served(200, &[JS, cache], Some(A))).is_empty());
        // SSE-KMS: the MD5 is not the ETag, the ETag header is.
        let etag = ("ETag", "\"0cc175b9c0f1b6a831c399e269772661\"");
        assert!(compare(&check, &served(200, &[JS, cache, etag], Some(B))).is_empty());
        // CloudFront compressed it: weak ETag, its own encoding.
        let weak = ("ETag", "W/\"0cc175b9c0f1b6a831c399e269772661\"");
        let gzip = ("Content-Encoding", "gzip");
        assert!(compare(&check, &served(200, &[JS, cache, weak, gzip], None)).is_empty());

        let old = served(
            200,
            &[
                ("Content-Type", "text/plain"),
                ("ETag", B),
                ("Content-Encoding", "gzip"),
            ],
            Some(B),
        );
        let kinds: Vec<&str> = compare(&object(Some("br"), Some("no-cache"), 10), &old)
            .iter()
            .map(Problem::kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "old bytes",
                "wrong type",
                "wrong encoding",
                "wrong cache-control"
            ]
        );
        let problems = compare(&check, &served(200, &[JS, cache, ("ETag", B)], Some(B)));
        assert_eq!(
            problems[0].to_string(),
            format!("old bytes: expected ETag {A}, served MD5 {B} (ETag {B})")
        );
    }

    #[test]
    fn statuses_say_what_went_wrong_and_deleted_paths_must_be_gone() {
        let check = object(None, None, 1);
        let kind =
            |c: &Check, s: Served| compare(c, &s).iter().map(Problem::kind).collect::<Vec<_>>();
        assert_eq!(kind(&check, served(403, &[], None)), ["forbidden"]);
        assert_eq!(kind(&check, served(404, &[], None)), ["not found"]);
        assert_eq!(kind(&check, served(503, &[], None)), ["error status"]);
        let moved = served(301, &[("Location", "https://x/app.js")], None);
        assert_eq!(
            compare(&check, &moved)[0].to_string(),
            "redirect: expected 200, served 301 to https://x/app.js"
        );
        assert!(!compare(&check, &moved)[0].may_clear());
        let gone = Check {
            want: Want::Gone,
            action: Action::Delete,
            ..check
        };
        assert!(kind(&gone, served(403, &[], None)).is_empty());
        assert!(kind(&gone, served(404, &[], None)).is_empty());
        let still = compare(&gone, &served(200, &[("ETag", "\"abc\"")], None));
        assert_eq!(
            still[0].to_string(),
            "still served: expected 403 or 404, served 200 (ETag \"abc\")"
        );
        assert!(still[0].may_clear());
    }

    #[test]
    fn a_verification_counts_kinds_and_the_status_of_deleted_paths() {
        let verdict = |want: Want, status, problems: Vec<Problem>| Verdict {
            check: Check {
                want,
                ..object(None, None, 1)
            },
            url: "u".into(),
            status: Some(status),
            x_cache: None,
            age: None,
            attempts: 1,
            problems,
        };
        let v = Verification {
            url: "u".into(),
            candidates: 3,
            verdicts: vec![
                verdict(Want::Gone, 404, vec![]),
                verdict(
                    Want::Gone,
                    200,
                    vec![Problem::StillServed {
                        status: 200,
                        etag: None,
                    }],
                ),
                verdict(Want::Gone, 403, vec![]),
                verdict(Want::Gone, 404, vec![]),
            ],
        };
        assert_eq!(v.failed(), 1);
        assert_eq!(v.kinds(), [("still served", 1)]);
        assert_eq!(v.gone_statuses(), [403, 404]);
        for kind in KINDS {
            assert!(!hint(kind).is_empty(), "{kind}");
        }
    }
}
