//! The deploy's planning path at a million files, measured rather than
//! asserted (speed and memory belong to benchmarks): scope, the hashes and
//! HeadObjects the plan needs, the plan, the next manifest and its JSON
//! round trip, on synthetic files and a synthetic listing (no store; the
//! manifest's unread bytes wait in a temporary file), holding what `run::deploy` holds at once and dropping what it
//! drops before the manifest is written. Each test prints the
//! peak RSS above the process's RSS at its start, per file, and the CPU
//! seconds of the process. Run one test per process, so that one's peak
//! is not the other's (`make bench` does):
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" cargo test --release \
//!     --target x86_64-unknown-linux-gnu --locked -- --ignored --nocapture --exact tests::scale::no_change
//! ```

use std::collections::HashMap;

use crate::etag::Hashed;
use crate::model::{
    ByKey, ETag, Headers, HeadersDigest, Key, LocalFile, ManifestEntry, ObjectSettings, Prefix,
    RemoteObject,
};
use crate::plan::filter::Filters;
use crate::plan::manifest::{self, Evidence, Manifest, Previous, Read, SALT_BYTES, Salt};
use crate::plan::rules::Rules;
use crate::plan::{self, PlanInput, Reason};
use crate::run::evidence::take_ready;

const FILES: usize = 1_000_000;
const DESTINATION: &str = "s3://bucket/site/";
/// When the listed objects were written, and after them the manifest.
const WRITTEN: i64 = 1_700_000_000;
const EXTENSIONS: [&str; 5] = ["html", "css", "js", "json", "svg"];

/// `name` and the value of a counter in /proc/self/status, in bytes.
fn status_bytes(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in /proc/self/status"));
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// User + system CPU seconds of the process so far, from /proc/self/stat
/// (fields 14 and 15, in USER_HZ ticks: 100 a second on Linux's ABI).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name may hold spaces: fields are counted after its `)`.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// A content MD5 for file `i` in version `version` of the site, as hex.
fn md5_of(i: usize, version: u64) -> String {
    // splitmix64: distinct, well-spread digests without hashing bytes.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let seed = (i as u64) << 8 | version;
    format!("{:016x}{:016x}", mix(seed), mix(!seed))
}

fn relative(i: usize) -> String {
    format!("d{}/f{i}.{}", i % 1000, EXTENSIONS[i % 5])
}

/// The site as the scan would find it.
fn local_files(prefix: &Prefix) -> Vec<LocalFile> {
    let root = std::sync::Arc::new(std::path::PathBuf::from("/build/site"));
    let mut files: Vec<LocalFile> = (0..FILES)
        .map(|i| LocalFile::new(root.clone(), prefix, &relative(i), 100 + (i as u64 % 5000)))
        .collect();
    files.sort_by(|a, b| a.key.cmp(&b.key));
    files
}

/// The listing of the site as the last deploy left it, in key order.
fn listing(local: &[LocalFile]) -> Vec<RemoteObject> {
    local
        .iter()
        .map(|f| RemoteObject {
            // Its own copy, as parsed from the listing's XML.
            key: Key::new(f.key.as_str()),
            size: f.size,
            etag: ETag::new(&md5_of(index_of(f.relative()), 0)),
            last_modified: WRITTEN,
        })
        .collect()
}

/// `i` of [`relative`]`(i)`.
fn index_of(relative: &str) -> usize {
    let name = relative.rsplit('/').next().unwrap();
    name[1..name.find('.').unwrap()].parse().unwrap()
}

/// The headers digest of a file under default settings, by extension.
fn header_digests() -> HashMap<&'static str, HeadersDigest> {
    EXTENSIONS
        .iter()
        .map(|ext| {
            let content_type = plan::content_type::content_type(&format!("x.{ext}"));
            let digest = Headers::of(&content_type, &ObjectSettings::default()).digest();
            (*ext, digest)
        })
        .collect()
}

/// The manifest object the last deploy wrote.
fn previous_object(remote: &[RemoteObject], prefix: &Prefix) -> Vec<u8> {
    let digests = header_digests();
    let entries = remote.iter().map(|r| {
        let ext = r.key.rsplit('.').next().unwrap();
        let entry = ManifestEntry::new(r.etag.clone(), r.etag.clone(), None, digests[ext]);
        (r.key.as_str(), entry)
    });
    let written = Manifest::with_entries(Salt::new([7; SALT_BYTES]), DESTINATION, entries);
    assert!(prefix.contains(&remote[0].key));
    written.to_stored()
}

/// What a deploy holds of the manifest object while it lists: its first
/// bytes. The rest stays with S3 until the deploy reads it on (here, in a
/// file: the page cache is not the process's memory).
struct Unread {
    head: Vec<u8>,
    rest: std::fs::File,
}

impl Unread {
    fn of(stored: &[u8]) -> Self {
        use std::io::{Seek, Write};
        let first = usize::try_from(crate::run::manifest::FIRST_BYTES).unwrap();
        let (head, rest) = stored.split_at(first.min(stored.len()));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(rest).unwrap();
        file.rewind().unwrap();
        Unread {
            head: head.to_vec(),
            rest: file,
        }
    }
}

/// The manifest as a deploy reads it: parsed as the rest arrives, with
/// room made for an entry per listed object.
fn previous(stored: Unread, listed: usize) -> Previous {
    let body = std::io::Read::chain(std::io::Cursor::new(stored.head), stored.rest);
    let read = Manifest::read_from(body, DESTINATION, listed).unwrap();
    let Read::Current(manifest) = read else {
        panic!("the manifest does not read back");
    };
    Previous {
        manifest,
        last_modified: WRITTEN + 1,
        clear_text: false,
    }
}

/// A deploy's planning path where every `changed_every`-th file has new
/// content of the same size (`None`: nothing changed); prints what it cost.
fn deploy(name: &str, changed_every: Option<usize>) {
    crate::edge::allocator::configure();
    let rss_before = status_bytes("VmRSS:");
    let changed = |i: usize| changed_every.is_some_and(|n| i.is_multiple_of(n));
    let prefix = Prefix::new("site");

    // The synthetic inputs: the scan's files, the listing and the last
    // manifest's JSON, made up here at a cost of their own (formatting a
    // million names and hex digests), which is not the deploy's and is
    // left out of its CPU seconds. Their memory is counted: a deploy
    // holds as much.
    let setup_before = cpu_seconds();
    let local = local_files(&prefix);
    // What hashing the files finds.
    let hash = |f: &LocalFile| {
        let i = index_of(f.relative());
        Hashed {
            etag: ETag::new(&md5_of(i, u64::from(changed(i)))),
            part_size: None,
        }
    };
    // As `run::local_side` does while the bucket is listed: every file
    // hashed as it would be uploaded (here, in one part).
    let mut as_uploaded: ByKey<Hashed> = local.iter().map(|f| (f.key.clone(), hash(f))).collect();
    let mut remote = listing(&local);
    let stored = Unread::of(&previous_object(&remote, &prefix));
    let setup = cpu_seconds() - setup_before;
    // Making the manifest's JSON held a manifest beside it, which no deploy
    // does: the peak starts over from what the inputs hold (Linux's
    // clear_refs, "5": reset the peak RSS).
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak RSS can be reset");

    let cpu_before = cpu_seconds();
    // Peak RSS and CPU seconds after each stage, to tell where they go.
    let mut stages = Vec::new();
    let mut stage = |name: &'static str| {
        let peak = status_bytes("VmHWM:").saturating_sub(rss_before);
        let now = status_bytes("VmRSS:").saturating_sub(rss_before);
        let cpu = cpu_seconds() - cpu_before;
        let per_file = |bytes: u64| bytes / FILES as u64;
        stages.push(format!(
            "{name} {} B (now {} B) {cpu:.1} s",
            per_file(peak),
            per_file(now)
        ));
    };
    stage("listed");
    // As `run::prepare` does: the evidence holds the files' keys, and the
    // manifest is read once the listing's own are let go.
    plan::share_keys(&local, &mut remote);
    crate::edge::allocator::give_back();
    let mut previous = previous(stored, remote.len());
    stage("manifest read");
    let trusted = previous.take_trusted(&remote);
    let marks = previous.marks(&remote);
    crate::edge::allocator::give_back();
    stage("trusted");
    assert_eq!(trusted.len(), FILES);
    let scoped = plan::scope(
        local,
        Vec::new(),
        remote,
        &prefix,
        &Filters::default(),
        &Rules::default(),
    );
    let (local, remote) = (scoped.local, scoped.remote);

    let needs = plan::hashes_needed(&local, &remote, false, &trusted);
    assert_eq!(needs.len(), FILES, "every same-size file is hashed");
    // As `run::complete_hashes` does: the hashes the comparison needs are
    // moved out of those the local side made.
    let (hashes, missing) = take_ready(needs, &mut as_uploaded);
    assert!(missing.is_empty() && as_uploaded.is_empty());
    drop(missing);
    crate::edge::allocator::give_back();
    stage("hashed");
    let no_heads = ByKey::default();
    let settings = ObjectSettings::default();
    let rules = Rules::default();
    let globs = plan::entry_document_globs(plan::ENTRY_DOCUMENTS).unwrap();
    let input = PlanInput {
        local: &local,
        remote: &remote,
        local_etags: &hashes,
        settings: &settings,
        delete: true,
        size_only: false,
        entry_documents: Some(&globs),
        rules: &rules,
        trusted: &trusted,
        remote_headers: &no_heads,
        grace: None,
    };
    assert!(
        plan::heads_needed(&input).is_empty(),
        "the manifest vouches for every object's headers"
    );
    let plan = plan::plan(&input);
    stage("planned");
    let expected = changed_every.map_or(0, |n| FILES.div_ceil(n));
    assert_eq!(plan.uploads.len(), expected);
    assert!(
        plan.uploads
            .iter()
            .all(|u| u.reason == Reason::ContentChanged)
    );
    assert!(plan.copies.is_empty() && plan.deletes.is_empty() && plan.kept.is_empty());
    assert_eq!(plan.skips.len(), FILES - expected);

    // What S3 answers for the uploads, and their hashes for the manifest.
    let written: HashMap<Key, ETag> = plan
        .uploads
        .iter()
        .map(|u| {
            let i = index_of(prefix.strip(&u.upload.key).unwrap());
            (u.upload.key.clone(), ETag::new(&md5_of(i, 1)))
        })
        .collect();
    let mut uploaded = manifest::hashes_for_next(&local, &plan);
    uploaded.retain(|(f, need)| !hashes.get(&f.key).is_some_and(|h| h.answers(*need)));
    assert!(
        uploaded.is_empty(),
        "an uploaded file's hash is the one compared"
    );
    drop(uploaded);
    // As `run::deploy` does: the files go before the next manifest is built.
    drop(local);
    let next = manifest::next_if_needed(
        previous.manifest.salt().clone(),
        DESTINATION,
        Some(&previous),
        &plan,
        Evidence {
            trusted,
            remote: &remote,
            hashes: &hashes,
            remote_headers: &no_heads,
            written: &written,
            marks: &marks,
        },
    );
    stage("next manifest");
    assert_eq!(
        next.is_some(),
        changed_every.is_some(),
        "a no-change redeploy leaves the manifest as it is"
    );
    // What `run::deploy` returns to be saved: the rest is dropped.
    drop((remote, previous, marks, hashes, as_uploaded));
    let mut stored = Vec::new();
    if let Some(next) = &next {
        assert_eq!(next.manifest.len(), FILES);
        stored = next.manifest.to_stored();
        stage("stored");
    }
    let cpu = cpu_seconds() - cpu_before;
    let peak = status_bytes("VmHWM:").saturating_sub(rss_before);
    println!(
        "scale {name}: {FILES} files, {} uploads, peak RSS {:.1} MB above the start ({} bytes per file), {cpu:.2} s CPU (and {setup:.1} s to make up the inputs), manifest written {:.1} MB (gzip); peak (and current) bytes per file and CPU after each stage: {}",
        plan.uploads.len(),
        peak as f64 / 1e6,
        peak / FILES as u64,
        stored.len() as f64 / 1e6,
        stages.join(", "),
    );
    // Checked after the measure: no deploy reads its own manifest back.
    if let Some(next) = next {
        let Read::Current(read) = Manifest::read(&stored, DESTINATION) else {
            panic!("the next manifest does not read back");
        };
        assert_eq!(read, next.manifest);
    }
}

#[test]
#[ignore = "a benchmark: a million files, run by make bench"]
fn no_change() {
    deploy("no_change", None);
}

#[test]
#[ignore = "a benchmark: a million files, run by make bench"]
fn one_percent_changed() {
    deploy("one_percent_changed", Some(100));
}
