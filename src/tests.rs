//! Whole runs in memory: configuration from variables, then scan → plan →
//! execute → manifest → invalidate → record, against the in-memory store
//! and CDN, with failures injected by the wrapper around the store.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::Config;
use crate::edge::failure::{FailureStore, Op};
use crate::edge::memory::MemoryStore;
use crate::edge::memory_cdn::MemoryCdn;
use crate::edge::memory_site::{Fault, MemorySite};
use crate::edge::site::Site;
use crate::edge::store::{ObjectStore, StoreError};
use crate::report::Record;
use crate::run::events::{Event, Sink};
use crate::run::{self, FAST, PipeError};
use crate::stop::{self, Signal, Stop};

mod scale;

fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    dir
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

fn config(root: &Path, extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("S3_BUCKET", "site-bucket/p"),
        ("LOCAL_PATH", root.to_str().unwrap()),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("DELETE_FLAG", "true"),
    ];
    vars.extend_from_slice(extra);
    let vars = vars
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    Config::from_vars(vars, root).unwrap()
}

/// One run, as `main` wires it, heard by a record; returns the run's
/// result and the record's JSON.
async fn deploy<S: ObjectStore>(
    store: &S,
    cdn: &MemoryCdn,
    config: &Config,
) -> (Result<(), PipeError>, Value) {
    deploy_until(store, cdn, config, &Stop::never()).await
}

async fn deploy_until<S: ObjectStore>(
    store: &S,
    cdn: &MemoryCdn,
    config: &Config,
    stop: &Stop,
) -> (Result<(), PipeError>, Value) {
    // Only VERIFY asks the site anything.
    let nothing = MemoryStore::default();
    deploy_through(store, cdn, &MemorySite::new(&nothing, ""), config, stop).await
}

async fn deploy_through<S: ObjectStore, W: Site>(
    store: &S,
    cdn: &MemoryCdn,
    site: &W,
    config: &Config,
    stop: &Stop,
) -> (Result<(), PipeError>, Value) {
    let record = Record::in_memory();
    let result = run::run(config, store, cdn, site, FAST, stop, &record).await;
    record.event(&Event::Finished(&result));
    (result, record.json())
}

/// `{key: (action, outcome)}` of a record.
fn outcomes(report: &Value) -> BTreeMap<String, (String, String)> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let text = |f: &str| o[f].as_str().unwrap().to_string();
            (text("key"), (text("action"), text("outcome")))
        })
        .collect()
}

fn fate(action: &str, outcome: &str) -> (String, String) {
    (action.to_string(), outcome.to_string())
}

fn cdn() -> MemoryCdn {
    MemoryCdn::with("E1", "site-bucket", "/p")
}

#[tokio::test]
async fn a_redeploy_of_the_same_folder_writes_nothing_and_invalidates_nothing() {
    let dir = site(&[("index.html", "<h1>"), ("a/b.css", "x")]);
    let (store, cdn) = (MemoryStore::default(), cdn());
    let config = config(dir.path(), &[("DISTRIBUTION_ID", "E1")]);
    let (first, report) = deploy(&store, &cdn, &config).await;
    first.unwrap();
    assert_eq!(report["totals"]["uploaded"], 2);
    assert_eq!(
        store.writes(),
        [
            "PUT p/a/b.css",
            "PUT p/index.html",
            "PUT p/.s3-cloudfront-deploy-manifest.json"
        ]
    );
    // New keys are in no cache: nothing to invalidate.
    assert!(cdn.created().is_empty());
    let (second, report) = deploy(&store, &cdn, &config).await;
    second.unwrap();
    assert_eq!(report["totals"]["unchanged"], 2);
    assert_eq!(store.writes().len(), 3, "{:?}", store.log());
    assert!(!store.log().iter().any(|l| l.starts_with("HEAD")));
    assert!(cdn.created().is_empty());
}

#[tokio::test]
async fn a_changed_page_and_a_deleted_asset_are_invalidated_through_the_origin_path() {
    let dir = site(&[("index.html", "v1"), ("old.js", "o"), ("a.css", "a")]);
    let (store, cdn) = (MemoryStore::default(), cdn());
    let config = config(dir.path(), &[("DISTRIBUTION_ID", "E1")]);
    deploy(&store, &cdn, &config).await.0.unwrap();
    write(dir.path(), &[("index.html", "v2")]);
    std::fs::remove_file(dir.path().join("old.js")).unwrap();
    let (result, report) = deploy(&store, &cdn, &config).await;
    result.unwrap();
    let created = cdn.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].0, ["/", "/index.html", "/old.js"]);
    assert_eq!(report["invalidations"][0]["paths"][2], "/old.js");
    assert_eq!(
        outcomes(&report),
        BTreeMap::from([
            ("p/a.css".into(), fate("skip", "done")),
            ("p/index.html".into(), fate("upload", "done")),
            ("p/old.js".into(), fate("delete", "done")),
        ])
    );
}

#[tokio::test]
async fn a_failed_asset_stops_pages_and_deletes_and_the_next_run_converges() {
    let store = MemoryStore::default();
    let dir = site(&[("old.js", "1"), ("index.html", "1")]);
    let config = config(dir.path(), &[]);
    deploy(&store, &cdn(), &config).await.0.unwrap();
    std::fs::remove_file(dir.path().join("old.js")).unwrap();
    write(
        dir.path(),
        &[("new.js", "2"), ("other.js", "3"), ("index.html", "2")],
    );

    let faulty = FailureStore::new(store, |op: &Op| match op {
        Op::Put(u) if u.key.as_str() == "p/new.js" => Some(op.internal_error()),
        _ => None,
    });
    let (result, report) = deploy(&faulty, &cdn(), &config).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("1 of 2 uploads failed"), "{err}");
    assert_eq!(report["success"], false);
    assert_eq!(
        outcomes(&report),
        BTreeMap::from([
            ("p/index.html".into(), fate("upload", "not attempted")),
            ("p/new.js".into(), fate("upload", "failed")),
            ("p/old.js".into(), fate("delete", "not attempted")),
            ("p/other.js".into(), fate("upload", "done")),
        ])
    );
    let objects = report["objects"].as_array().unwrap();
    let failed = objects.iter().find(|o| o["key"] == "p/new.js").unwrap();
    assert!(failed["error"].as_str().unwrap().contains("InternalError"));
    assert_eq!(report["totals"]["uploaded"], 1);
    assert_eq!(report["totals"]["deleted"], 0);
    // The page still points at the old asset, which still exists, and the
    // manifest was not rewritten by the failed run.
    assert_eq!(faulty.calls("DeleteObjects"), 0);
    assert_eq!(
        faulty.inner.keys(),
        [
            "p/.s3-cloudfront-deploy-manifest.json",
            "p/index.html",
            "p/old.js",
            "p/other.js"
        ]
    );
    assert_eq!(faulty.inner.body("p/index.html").unwrap(), b"1");

    let (result, report) = deploy(&faulty.inner, &cdn(), &config).await;
    result.unwrap();
    assert_eq!(report["totals"]["uploaded"], 2);
    assert_eq!(report["totals"]["deleted"], 1);
    let writes = faulty.inner.writes();
    assert_eq!(
        &writes[writes.len() - 4..],
        [
            "PUT p/new.js",
            "PUT p/index.html",
            "DELETE p/old.js",
            "PUT p/.s3-cloudfront-deploy-manifest.json"
        ]
    );
}

#[tokio::test]
async fn a_failure_after_header_fixes_in_place_keeps_their_record_and_converges() {
    let store = MemoryStore::default();
    let dir = site(&[("a.css", "a"), ("b.css", "b"), ("index.html", "1")]);
    deploy(&store, &cdn(), &config(dir.path(), &[]))
        .await
        .0
        .unwrap();
    // Same bytes, new Cache-Control: every object is fixed in place.
    let changed = config(dir.path(), &[("CACHE_CONTROL", "max-age=60")]);
    let faulty = FailureStore::new(store, |op: &Op| match op {
        Op::Copy(u) if u.key.as_str() == "p/index.html" => Some(op.internal_error()),
        _ => None,
    });
    let (result, report) = deploy(&faulty, &cdn(), &changed).await;
    assert!(result.is_err());
    assert_eq!(
        outcomes(&report),
        BTreeMap::from([
            ("p/a.css".into(), fate("update headers", "done")),
            ("p/b.css".into(), fate("update headers", "done")),
            ("p/index.html".into(), fate("update headers", "failed")),
        ])
    );
    assert_eq!(report["totals"]["headers_updated"], 2);
    assert_eq!(faulty.calls("CopyObject"), 3);
    assert_eq!(faulty.calls("PutObject"), 0, "no manifest after a failure");
    let cache = |key: &str| faulty.inner.headers_of(key).unwrap().cache_control;
    assert_eq!(cache("p/a.css").as_deref(), Some("max-age=60"));
    assert_eq!(cache("p/index.html"), None);

    let (result, report) = deploy(&faulty.inner, &cdn(), &changed).await;
    result.unwrap();
    assert_eq!(cache("p/index.html").as_deref(), Some("max-age=60"));
    assert_eq!(
        outcomes(&report)["p/index.html"],
        fate("update headers", "done")
    );
}

#[tokio::test]
async fn a_listing_failure_is_recorded_and_nothing_is_written() {
    let dir = site(&[("index.html", "1")]);
    let faulty = FailureStore::new(MemoryStore::default(), |op: &Op| match op {
        Op::List(_) => Some(StoreError {
            code: Some("AccessDenied".into()),
            ..op.internal_error()
        }),
        _ => None,
    });
    let (result, report) = deploy(&faulty, &cdn(), &config(dir.path(), &[])).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert!(
        err.details()[0].contains("s3:ListBucket"),
        "{:?}",
        err.details()
    );
    assert_eq!(report["success"], false);
    assert_eq!(report["objects"], Value::Array(Vec::new()));
    assert!(faulty.inner.writes().is_empty());
}

#[tokio::test]
async fn a_refused_delete_plan_writes_nothing_and_says_why() {
    let store = MemoryStore::default();
    let many: Vec<(String, &str)> = (0..10).map(|i| (format!("f{i}.js"), "x")).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let dir = site(&refs);
    let config = config(dir.path(), &[]);
    deploy(&store, &cdn(), &config).await.0.unwrap();
    for (name, _) in &many[1..] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    let before = store.writes().len();
    let (result, report) = deploy(&store, &cdn(), &config).await;
    assert!(matches!(result, Err(PipeError::DeleteRefused(_))));
    assert!(report["error"].as_str().unwrap().contains("Delete guard"));
    assert_eq!(
        outcomes(&report)["p/f1.js"],
        fate("delete", "not attempted")
    );
    assert_eq!(store.writes().len(), before);
}

#[tokio::test]
async fn deletes_go_in_batches_of_a_thousand() {
    let store = MemoryStore::default();
    let many: Vec<(String, String)> = (0..2500)
        .map(|i| (format!("f{i}"), String::new()))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let full = site(&refs);
    deploy(&store, &cdn(), &config(full.path(), &[]))
        .await
        .0
        .unwrap();
    let empty = site(&[]);
    let faulty = FailureStore::new(store, |_: &Op| None);
    let allow = [("ALLOW_DELETE_ALL", "true")];
    let (result, report) = deploy(&faulty, &cdn(), &config(empty.path(), &allow)).await;
    result.unwrap();
    assert_eq!(report["totals"]["deleted"], 2500);
    assert_eq!(faulty.calls("DeleteObjects"), 3);
    assert_eq!(
        faulty.inner.keys(),
        ["p/.s3-cloudfront-deploy-manifest.json"]
    );
}

#[tokio::test]
async fn a_dry_run_records_every_action_as_not_attempted_and_writes_nothing() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1")]);
    let (result, report) =
        deploy(&store, &cdn(), &config(dir.path(), &[("DRY_RUN", "true")])).await;
    result.unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        outcomes(&report)["p/index.html"],
        fate("upload", "not attempted")
    );
    assert!(store.writes().is_empty());
}

#[test]
fn a_validation_failure_is_recorded_with_every_error() {
    let record = Record::in_memory();
    let vars = [("S3_BUCKET", "Bad_Bucket"), ("ACL", "public")];
    let vars = vars.map(|(k, v)| (k.to_string(), v.to_string()));
    let result = Config::from_vars(vars, Path::new("/")).map(|_| ());
    let result = result.map_err(PipeError::from);
    record.event(&Event::Finished(&result));
    let report = record.json();
    assert_eq!(report["success"], false);
    let errors = report["validation_errors"].as_object().unwrap();
    let vars: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        vars,
        ["ACL", "AWS_DEFAULT_REGION", "LOCAL_PATH", "S3_BUCKET"]
    );
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("Validation errors:")
    );
}

/// A file of `mib` MiB: uploaded in parts.
fn big(root: &Path, name: &str, mib: usize) {
    std::fs::write(root.join(name), vec![b'x'; mib * 1024 * 1024]).unwrap();
}

/// `store`, where SIGTERM arrives as the upload of `key` starts; and the
/// stop the run must be given.
fn stopped_at_put(
    store: MemoryStore,
    key: &'static str,
) -> (
    FailureStore<MemoryStore, impl Fn(&Op) -> Option<StoreError> + Sync>,
    Stop,
) {
    let (stopper, stop) = stop::channel();
    let faulty = FailureStore::new(store, move |op: &Op| {
        if let Op::Put(u) = op {
            if u.key.as_str() == key {
                stopper.stop(Signal::Term);
            }
        }
        None
    });
    (faulty, stop)
}

#[tokio::test]
async fn a_stop_mid_wave_aborts_the_multipart_upload_and_starts_nothing_later() {
    let store = MemoryStore::default();
    let dir = site(&[("old.js", "1"), ("index.html", "1")]);
    let config = config(
        dir.path(),
        &[("CONCURRENCY", "1"), ("DISTRIBUTION_ID", "E1")],
    );
    deploy(&store, &cdn(), &config).await.0.unwrap();
    std::fs::remove_file(dir.path().join("old.js")).unwrap();
    big(dir.path(), "a-big.bin", 9);
    write(dir.path(), &[("b.js", "2"), ("index.html", "2")]);

    // SIGTERM arrives while the big file's multipart upload is under way.
    let (faulty, stop) = stopped_at_put(store, "p/a-big.bin");
    let cdn = cdn();
    let (result, report) = deploy_until(&faulty, &cdn, &config, &stop).await;
    let err = result.unwrap_err();
    assert_eq!(err.signal(), Some(Signal::Term));
    assert_eq!(
        err.to_string(),
        "stopped by SIGTERM after 0 of 3 uploads; nothing deleted"
    );
    assert_eq!(Signal::Term.exit_code(), 143);
    // The upload was created, then aborted: nothing is left to bill.
    assert!(faulty.inner.incomplete().is_empty());
    assert!(
        faulty
            .inner
            .log()
            .contains(&"ABORT p/a-big.bin".to_string())
    );
    // Nothing after it started: not the asset queued behind it (one
    // request at a time), not the page, not the delete, not the manifest,
    // not the invalidation.
    assert_eq!(faulty.calls("PutObject"), 1);
    assert_eq!(faulty.calls("DeleteObjects"), 0);
    assert!(cdn.created().is_empty());
    assert_eq!(
        outcomes(&report),
        BTreeMap::from([
            ("p/a-big.bin".into(), fate("upload", "failed")),
            ("p/b.js".into(), fate("upload", "not attempted")),
            ("p/index.html".into(), fate("upload", "not attempted")),
            ("p/old.js".into(), fate("delete", "not attempted")),
        ])
    );
    assert_eq!(report["success"], false);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .starts_with("stopped by SIGTERM")
    );

    let (result, report) = deploy(&faulty.inner, &cdn, &config).await;
    result.unwrap();
    assert_eq!(report["totals"]["uploaded"], 3);
    assert_eq!(report["totals"]["deleted"], 1);
}

#[tokio::test]
async fn a_stop_before_the_plan_writes_nothing() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1")]);
    let (stopper, stop) = stop::channel();
    stopper.stop(Signal::Int);
    let (result, report) = deploy_until(&store, &cdn(), &config(dir.path(), &[]), &stop).await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stopped by SIGINT before any upload; nothing deleted"
    );
    assert_eq!(
        crate::report::exit_code(&Err(err)),
        std::process::ExitCode::from(130)
    );
    assert!(store.writes().is_empty());
    assert_eq!(report["success"], false);
}

#[tokio::test]
async fn stale_incomplete_uploads_under_the_prefix_are_aborted_and_others_kept() {
    let store = MemoryStore::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store.start_upload("p/old.bin", now - 7200);
    store.start_upload("p/recent.bin", now - 60);
    store.start_upload("p2/old.bin", now - 7200);
    store.start_upload("other/old.bin", now - 7200);
    let dir = site(&[("index.html", "1")]);
    let (result, report) = deploy(&store, &cdn(), &config(dir.path(), &[])).await;
    result.unwrap();
    assert_eq!(report["totals"]["incomplete_uploads_aborted"], 1);
    let left: Vec<String> = store
        .incomplete()
        .iter()
        .map(|u| u.key.to_string())
        .collect();
    assert_eq!(left, ["p/recent.bin", "p2/old.bin", "other/old.bin"]);

    // Off with 0; listed but not aborted in a dry run.
    store.start_upload("p/old2.bin", now - 7200);
    let off = config(dir.path(), &[("ABORT_INCOMPLETE_UPLOADS_AFTER", "0")]);
    deploy(&store, &cdn(), &off).await.0.unwrap();
    let dry = config(
        dir.path(),
        &[
            ("DRY_RUN", "true"),
            ("ABORT_INCOMPLETE_UPLOADS_AFTER", "30s"),
        ],
    );
    let (_, report) = deploy(&store, &cdn(), &dry).await;
    assert_eq!(report["totals"]["incomplete_uploads_aborted"], 0);
    assert_eq!(store.incomplete().len(), 4);
}

#[tokio::test]
async fn a_sweep_the_role_may_not_do_is_a_warning_not_a_failure() {
    let dir = site(&[("index.html", "1")]);
    let faulty = FailureStore::new(MemoryStore::default(), |op: &Op| match op {
        Op::ListUploads(_) => Some(StoreError {
            code: Some("AccessDenied".into()),
            ..op.internal_error()
        }),
        _ => None,
    });
    let (result, report) = deploy(&faulty, &cdn(), &config(dir.path(), &[])).await;
    result.unwrap();
    assert_eq!(report["totals"]["uploaded"], 1);
}

#[tokio::test]
async fn every_scan_problem_is_reported_at_once_and_nothing_is_written() {
    use std::os::unix::fs::symlink;
    let dir = site(&[("index.html", "<h1>"), ("docs/a.html", "a")]);
    let root = dir.path();
    symlink("../missing", root.join("docs/old")).unwrap();
    symlink("nowhere", root.join("stale")).unwrap();
    symlink("..", root.join("docs/up")).unwrap();
    // A write-only kernel file: read() fails with EINVAL, for root too.
    symlink("/proc/self/clear_refs", root.join("secret")).unwrap();
    let (store, cdn) = (MemoryStore::default(), cdn());
    // Something to delete, had the deploy gone on.
    let seed = site(&[("gone.html", "x")]);
    deploy(&store, &cdn, &config(seed.path(), &[]))
        .await
        .0
        .unwrap();
    let before = store.writes().len();

    let (result, report) = deploy(&store, &cdn, &config(root, &[])).await;
    let err = result.unwrap_err();
    assert!(matches!(err, PipeError::Scan(_)), "{err}");
    // Invalid argument for root, Permission denied (mode 0200) for others.
    let why = std::fs::read("/proc/self/clear_refs").unwrap_err().kind();
    let why = if why == std::io::ErrorKind::PermissionDenied {
        "Permission denied"
    } else {
        "Invalid argument"
    };
    assert_eq!(
        err.to_string(),
        format!(
            "Scan errors (nothing was written):\nLOCAL_PATH:\n\
             - broken symbolic link: docs/old → ../missing\n\
             - symbolic link loop: docs/up → ..\n\
             - unreadable file: secret ({why})\n\
             - broken symbolic link: stale → nowhere\n"
        )
    );
    let hints = err.details();
    assert!(
        hints[0].starts_with("Hint: broken symbolic link: ")
            && hints[0].contains("--no-follow-symlinks"),
        "{hints:?}"
    );
    assert_eq!(hints.len(), 4, "one per kind, and how to leave a path out");
    assert_eq!(store.writes().len(), before, "{:?}", store.writes());
    assert_eq!(report["success"], false);
    let recorded: Vec<(&str, &str)> = report["scan_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        recorded,
        [
            ("docs/old", "broken symbolic link"),
            ("docs/up", "symbolic link loop"),
            ("secret", "unreadable file"),
            ("stale", "broken symbolic link")
        ]
    );

    // Leaving them out, with a filter and an `ignore` rule, or not following
    // links, lets the deploy go on.
    let excluded = config(
        root,
        &[
            (
                "EXTRA_ARGS",
                "--exclude 'docs/old' --exclude 'docs/up/*' --exclude stale",
            ),
            ("RULES", "- match: secret\n  ignore: true\n"),
        ],
    );
    let (result, report) = deploy(&store, &cdn, &excluded).await;
    result.unwrap();
    assert_eq!(report["scan_errors"], serde_json::json!([]));
    assert_eq!(
        store.keys(),
        [
            "p/.s3-cloudfront-deploy-manifest.json",
            "p/docs/a.html",
            "p/index.html"
        ]
    );
    let unfollowed = config(root, &[("EXTRA_ARGS", "--no-follow-symlinks")]);
    deploy(&store, &cdn, &unfollowed).await.0.unwrap();
}

const MANIFEST: &str = "p/.s3-cloudfront-deploy-manifest.json";

/// The log entries of HeadObject calls.
fn heads(store: &MemoryStore) -> Vec<String> {
    let log = store.log();
    log.into_iter().filter(|l| l.starts_with("HEAD ")).collect()
}

/// What the next run did: the writes and HeadObject calls after `before`
/// entries of the log.
fn since(store: &MemoryStore, before: usize) -> Vec<String> {
    store.log()[before..].to_vec()
}

#[tokio::test]
async fn no_object_the_pipe_writes_names_a_key_the_site_does_not_link() {
    let dir = site(&[
        ("index.html", "<h1>"),
        ("press/embargoed-launch.html", "soon"),
        ("downloads/customer-7f3a9.zip", "zip"),
    ]);
    let store = MemoryStore::default();
    deploy(&store, &cdn(), &config(dir.path(), &[]))
        .await
        .0
        .unwrap();
    let manifest = manifest_json(&store, MANIFEST);
    for name in ["embargoed", "press", "customer-7f3a9", "downloads", "index"] {
        assert!(!manifest.contains(name), "{name} in {manifest}");
    }
    assert!(manifest.contains("\"version\":3"), "{manifest}");
}

#[tokio::test]
async fn headers_changed_behind_the_manifest_cost_one_head_object_each_and_are_fixed() {
    use crate::model::Headers;
    let dir = site(&[("a.css", "a"), ("b.css", "b"), ("index.html", "1")]);
    let store = MemoryStore::default();
    let config = config(dir.path(), &[("CACHE_CONTROL", "max-age=60")]);
    deploy(&store, &cdn(), &config).await.0.unwrap();
    // Another tool: CopyObject REPLACE, or a PutObject of the same bytes
    // with other headers. The ETag stays; LastModified moves on.
    let octet = Headers::of("application/octet-stream", &Default::default());
    store.replace_headers("p/a.css", octet.clone());
    store.replace_headers("p/index.html", octet);
    let before = store.log().len();
    let (result, report) = deploy(&store, &cdn(), &config).await;
    result.unwrap();
    let log = since(&store, before);
    // HeadObject calls overlap: their order is not the plan's.
    let mut heads = log[..2].to_vec();
    heads.sort();
    assert_eq!(heads, ["HEAD p/a.css", "HEAD p/index.html"]);
    assert_eq!(
        log[2..],
        [
            "COPY p/a.css".to_string(),
            "COPY p/index.html".into(),
            format!("PUT {MANIFEST}"),
        ]
    );
    assert_eq!(report["totals"]["headers_updated"], 2);
    for key in ["p/a.css", "p/b.css", "p/index.html"] {
        let headers = store.headers_of(key).unwrap();
        assert_eq!(
            headers.cache_control.as_deref(),
            Some("max-age=60"),
            "{key}"
        );
    }
    // The manifest now vouches for them again: nothing to read or write.
    let before = store.log().len();
    deploy(&store, &cdn(), &config).await.0.unwrap();
    assert_eq!(since(&store, before), Vec::<String>::new());
}

#[tokio::test]
async fn the_header_fixes_of_a_killed_run_are_found_and_undone() {
    let dir = site(&[("a.css", "a"), ("b.css", "b"), ("index.html", "1")]);
    let store = MemoryStore::default();
    let sixty = config(dir.path(), &[("CACHE_CONTROL", "max-age=60")]);
    deploy(&store, &cdn(), &sixty).await.0.unwrap();
    // A run with another Cache-Control stops after fixing the assets in
    // place, before its manifest (as a killed run does).
    let other = config(dir.path(), &[("CACHE_CONTROL", "max-age=99999")]);
    let killed = FailureStore::new(store, |op: &Op| match op {
        Op::Copy(u) if u.key.as_str() == "p/index.html" => Some(op.internal_error()),
        _ => None,
    });
    assert!(deploy(&killed, &cdn(), &other).await.0.is_err());
    let store = killed.inner;
    let cache = |key: &str| store.headers_of(key).unwrap().cache_control;
    assert_eq!(cache("p/a.css").as_deref(), Some("max-age=99999"));

    let before = store.log().len();
    let (result, report) = deploy(&store, &cdn(), &sixty).await;
    result.unwrap();
    let mut heads: Vec<String> = since(&store, before)
        .into_iter()
        .filter(|l| l.starts_with("HEAD"))
        .collect();
    heads.sort();
    assert_eq!(heads, ["HEAD p/a.css", "HEAD p/b.css"]);
    assert_eq!(report["totals"]["headers_updated"], 2);
    for key in ["p/a.css", "p/b.css", "p/index.html"] {
        assert_eq!(cache(key).as_deref(), Some("max-age=60"), "{key}");
    }
    let before = store.log().len();
    deploy(&store, &cdn(), &sixty).await.0.unwrap();
    assert_eq!(since(&store, before), Vec::<String>::new());
}

#[tokio::test]
async fn state_objects_are_never_deleted_nor_counted() {
    let dir = site(&[("index.html", "1"), ("a.css", "a")]);
    let store = MemoryStore::default();
    deploy(&store, &cdn(), &config(dir.path(), &[]))
        .await
        .0
        .unwrap();
    let manifest = store.body(MANIFEST).unwrap();
    let before = store.log().len();
    // DELETE_FLAG is on in every run of these tests.
    let off = config(dir.path(), &[("MANIFEST", "false")]);
    let (result, report) = deploy(&store, &cdn(), &off).await;
    result.unwrap();
    assert_eq!(report["totals"]["deleted"], 0);
    assert_eq!(report["totals"]["unchanged"], 2);
    assert!(outcomes(&report).keys().all(|k| !k.contains("manifest")));
    // Without the manifest, the headers come from HeadObject.
    assert_eq!(since(&store, before), ["HEAD p/a.css", "HEAD p/index.html"]);

    let moved = config(
        dir.path(),
        &[(
            "MANIFEST_KEY",
            "meta/next.s3-cloudfront-deploy-manifest.json",
        )],
    );
    let dry = config(
        dir.path(),
        &[
            (
                "MANIFEST_KEY",
                "meta/next.s3-cloudfront-deploy-manifest.json",
            ),
            ("DRY_RUN", "true"),
        ],
    );
    let (result, report) = deploy(&store, &cdn(), &dry).await;
    result.unwrap();
    assert_eq!(report["totals"]["deleted"], 0);
    assert_eq!(outcomes(&report).len(), 2, "{report}");
    deploy(&store, &cdn(), &moved).await.0.unwrap();
    deploy(&store, &cdn(), &moved).await.0.unwrap();
    assert_eq!(
        store.body(MANIFEST).unwrap(),
        manifest,
        "the former one is untouched"
    );
    assert_eq!(
        store.keys(),
        [
            MANIFEST,
            "p/a.css",
            "p/index.html",
            "p/meta/next.s3-cloudfront-deploy-manifest.json"
        ]
    );
    assert!(!store.writes().iter().any(|w| w.starts_with("DELETE")));
}

#[tokio::test]
async fn a_manifest_in_another_bucket_leaves_only_site_files_under_the_prefix() {
    let dir = site(&[("index.html", "1"), ("a.css", "a")]);
    let store = FailureStore::new(MemoryStore::default(), |_: &Op| None);
    let elsewhere = config(
        dir.path(),
        &[(
            "MANIFEST_KEY",
            "s3://state-bucket/sites/p.s3-cloudfront-deploy-manifest.json",
        )],
    );
    deploy(&store, &cdn(), &elsewhere).await.0.unwrap();
    assert_eq!(store.inner.keys(), ["p/a.css", "p/index.html"]);
    let manifest = store
        .inner
        .body_elsewhere("state-bucket", "sites/p.s3-cloudfront-deploy-manifest.json")
        .unwrap();
    assert!(!gunzip(&manifest).contains("index"));
    let before = store.inner.log().len();
    let gets = store.calls("GetObject");
    let (result, report) = deploy(&store, &cdn(), &elsewhere).await;
    result.unwrap();
    assert_eq!(report["totals"]["unchanged"], 2);
    assert_eq!(store.calls("GetObject"), gets + 1);
    assert_eq!(since(&store.inner, before), Vec::<String>::new());
}

#[tokio::test]
async fn a_two_pass_deploy_keeps_each_pass_s_entries() {
    let dir = site(&[
        ("index.html", "1"),
        ("about.html", "2"),
        ("a.css", "a"),
        ("b.js", "b"),
    ]);
    let store = MemoryStore::default();
    let assets = config(
        dir.path(),
        &[
            ("EXTRA_ARGS", "--exclude '*.html'"),
            ("CACHE_CONTROL", "max-age=31536000"),
        ],
    );
    let pages = config(
        dir.path(),
        &[
            ("EXTRA_ARGS", "--exclude '*' --include '*.html'"),
            ("CACHE_CONTROL", "no-cache"),
        ],
    );
    deploy(&store, &cdn(), &assets).await.0.unwrap();
    deploy(&store, &cdn(), &pages).await.0.unwrap();
    let before = store.log().len();
    for pass in [&assets, &pages, &assets, &pages] {
        let (result, report) = deploy(&store, &cdn(), pass).await;
        result.unwrap();
        assert_eq!(report["totals"]["unchanged"], 2);
    }
    assert_eq!(since(&store, before), Vec::<String>::new());
    assert!(heads(&store).is_empty());
}

#[tokio::test]
async fn a_clear_text_manifest_is_read_once_and_rewritten_privately() {
    let dir = site(&[("index.html", "1"), ("secret/unlinked.html", "2")]);
    let store = MemoryStore::default();
    let off = config(dir.path(), &[("MANIFEST", "false")]);
    deploy(&store, &cdn(), &off).await.0.unwrap();
    // What 0.1.0 wrote: every key in clear.
    let listed = store.list(&crate::model::Prefix::new("p")).await.unwrap();
    let objects: serde_json::Map<String, Value> = listed
        .iter()
        .map(|o| {
            let headers = store.headers_of(&o.key).unwrap().digest();
            let entry = serde_json::json!({
                "etag": o.etag, "md5": o.etag, "part_size": null, "headers": headers
            });
            (o.key.to_string(), entry)
        })
        .collect();
    let v1 = serde_json::json!({"version": 1, "objects": objects});
    let at = crate::model::Location::here(crate::model::Key::new(MANIFEST));
    let body = serde_json::to_vec(&v1).unwrap();
    let settings = Default::default();
    store
        .put_bytes(&at, body, "application/json", &settings)
        .await
        .unwrap();
    assert!(
        String::from_utf8(store.body(MANIFEST).unwrap())
            .unwrap()
            .contains("unlinked")
    );

    let on = config(dir.path(), &[]);
    let before = store.log().len();
    deploy(&store, &cdn(), &on).await.0.unwrap();
    // Its entries held: no HeadObject; it is rewritten at once.
    assert_eq!(since(&store, before), [format!("PUT {MANIFEST}")]);
    let rewritten = manifest_json(&store, MANIFEST);
    assert!(!rewritten.contains("unlinked"), "{rewritten}");
    let before = store.log().len();
    deploy(&store, &cdn(), &on).await.0.unwrap();
    assert_eq!(since(&store, before), Vec::<String>::new());
}

#[tokio::test]
async fn a_local_file_named_like_the_manifest_is_not_uploaded() {
    let dir = site(&[
        ("index.html", "1"),
        (".s3-cloudfront-deploy-manifest.json", "{}"),
    ]);
    let store = MemoryStore::default();
    let (result, report) = deploy(&store, &cdn(), &config(dir.path(), &[])).await;
    result.unwrap();
    assert_eq!(report["totals"]["uploaded"], 1);
    let manifest = manifest_json(&store, MANIFEST);
    assert!(manifest.contains("\"version\":3"), "{manifest}");
    let headers = store.headers_of(MANIFEST).unwrap();
    assert_eq!(headers.content_encoding.as_deref(), Some("gzip"));
}

/// The JSON text of the manifest object at `key`.
fn manifest_json(store: &MemoryStore, key: &str) -> String {
    gunzip(&store.body(key).unwrap())
}

/// The text of a manifest object's body, which is stored gzip-compressed.
fn gunzip(body: &[u8]) -> String {
    use std::io::Read;
    let mut json = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut json)
        .expect("the manifest is gzip-compressed JSON");
    json
}

// --- DELETE_GRACE ------------------------------------------------------------

/// The folder's whole content becomes `files`.
fn refill(root: &Path, files: &[(&str, &str)]) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    write(root, files);
}

/// The DELETE_GRACE marks the store's manifest holds.
fn marks(store: &MemoryStore) -> Vec<Value> {
    let body = manifest_json(store, "p/.s3-cloudfront-deploy-manifest.json");
    let manifest: Value = serde_json::from_str(&body).unwrap();
    match &manifest["pending"] {
        Value::Object(marks) => marks.values().cloned().collect(),
        _ => Vec::new(),
    }
}

/// v1 with app.1.js, then builds with app.2.js whose pages change each
/// time: app.1.js survives v2 and v3, and v4 deletes and invalidates it.
#[tokio::test]
async fn a_grace_of_two_deploys_keeps_the_old_asset_until_the_fourth() {
    let (store, cdn) = (MemoryStore::default(), cdn());
    let dir = site(&[("index.html", "v1 app.1.js"), ("app.1.js", "1")]);
    let config = config(
        dir.path(),
        &[("DISTRIBUTION_ID", "E1"), ("DELETE_GRACE", "2 deploys")],
    );
    deploy(&store, &cdn, &config).await.0.unwrap();
    let mut pending = Vec::new();
    let mut invalidated = Vec::new();
    for version in ["v2", "v3", "v4"] {
        let page = format!("{version} app.2.js");
        refill(dir.path(), &[("index.html", &page), ("app.2.js", "2")]);
        let (result, report) = deploy(&store, &cdn, &config).await;
        result.unwrap();
        let objects = report["objects"].as_array().unwrap();
        let app1 = objects.iter().find(|o| o["key"] == "p/app.1.js").unwrap();
        pending.push((
            store.keys().contains(&"p/app.1.js".to_string()),
            app1["action"].as_str().unwrap().to_string(),
            app1["reason"].as_str().unwrap().to_string(),
            report["totals"]["pending_delete"].clone(),
            app1["grace"]["deploys_left"].clone(),
        ));
        invalidated.push(cdn.created().last().unwrap().0.clone());
    }
    let kept = |left: u32, more: &str| {
        (
            true,
            "pending delete".to_string(),
            format!("no local file; grace until {left} more {more}"),
            Value::from(1),
            Value::from(left),
        )
    };
    assert_eq!(
        pending,
        [
            kept(2, "deploys"),
            kept(1, "deploy"),
            (
                false,
                "delete".into(),
                "not in the local folder".into(),
                Value::from(0),
                Value::Null
            ),
        ]
    );
    // Kept, it still served its bytes: invalidated only when deleted.
    assert_eq!(
        invalidated,
        [
            vec!["/", "/index.html"],
            vec!["/", "/index.html"],
            vec!["/", "/app.1.js", "/index.html"],
        ]
    );
    assert!(marks(&store).is_empty());
    assert_eq!(
        store.keys(),
        [
            "p/.s3-cloudfront-deploy-manifest.json",
            "p/app.2.js",
            "p/index.html"
        ]
    );
}

#[tokio::test]
async fn a_grace_by_time_follows_the_clock_it_is_given_and_never_runs_backwards() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1"), ("app.1.js", "1")]);
    let at = |now: &'static str| {
        config(
            dir.path(),
            &[("DELETE_GRACE", "2h"), ("S3_CLOUDFRONT_DEPLOY_NOW", now)],
        )
    };
    deploy(&store, &cdn(), &at("2030-01-01T00:00:00Z"))
        .await
        .0
        .unwrap();
    refill(dir.path(), &[("index.html", "2"), ("app.2.js", "2")]);
    let mut fates = Vec::new();
    for now in [
        "2030-01-01T01:00:00Z", // marked
        "2029-12-31T02:00:00Z", // the clock went back a day
        "2030-01-01T02:59:59Z",
        "2030-01-01T03:00:00Z", // two hours after the mark
    ] {
        let (result, report) = deploy(&store, &cdn(), &at(now)).await;
        result.unwrap();
        let o = outcomes(&report);
        let grace = report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["key"] == "p/app.1.js")
            .map(|o| o["grace"].clone());
        fates.push((now, o["p/app.1.js"].0.clone(), grace.unwrap()));
    }
    let grace = serde_json::json!({
        "since": "2030-01-01T01:00:00Z",
        "until": "2030-01-01T03:00:00Z",
        "deploys_left": null,
    });
    assert_eq!(
        fates,
        [
            (
                "2030-01-01T01:00:00Z",
                "pending delete".into(),
                grace.clone()
            ),
            (
                "2029-12-31T02:00:00Z",
                "pending delete".into(),
                grace.clone()
            ),
            ("2030-01-01T02:59:59Z", "pending delete".into(), grace),
            ("2030-01-01T03:00:00Z", "delete".into(), Value::Null),
        ]
    );
    assert!(!store.keys().contains(&"p/app.1.js".to_string()));
}

#[tokio::test]
async fn a_stopped_deploy_keeps_the_marks_and_counts_for_nothing() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1"), ("app.1.js", "1")]);
    let config = config(
        dir.path(),
        &[("DELETE_GRACE", "2 deploys"), ("CONCURRENCY", "1")],
    );
    deploy(&store, &cdn(), &config).await.0.unwrap();
    refill(dir.path(), &[("index.html", "2"), ("app.2.js", "2")]);
    deploy(&store, &cdn(), &config).await.0.unwrap();
    let marked = marks(&store);
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["deploys"], 0);

    // v3 is stopped in its asset wave: no manifest, so no deploy counted.
    write(dir.path(), &[("app.3.js", "3"), ("index.html", "3")]);
    let (faulty, stop) = stopped_at_put(store, "p/app.3.js");
    let (result, _) = deploy_until(&faulty, &cdn(), &config, &stop).await;
    assert_eq!(result.unwrap_err().signal(), Some(Signal::Term));
    let store = faulty.inner;
    assert_eq!(marks(&store), marked);
    assert!(store.keys().contains(&"p/app.1.js".to_string()));

    // v4 counts once: still kept. v5 counts twice: deleted.
    let (result, report) = deploy(&store, &cdn(), &config).await;
    result.unwrap();
    assert_eq!(
        outcomes(&report)["p/app.1.js"],
        fate("pending delete", "done")
    );
    let (result, report) = deploy(&store, &cdn(), &config).await;
    result.unwrap();
    assert_eq!(outcomes(&report)["p/app.1.js"], fate("delete", "done"));
}

#[tokio::test]
async fn a_dry_run_shows_deletes_and_pending_deletes_and_changes_nothing() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1"), ("a.js", "a"), ("b.js", "b")]);
    let grace = [("DELETE_GRACE", "1 deploy")];
    deploy(&store, &cdn(), &config(dir.path(), &grace))
        .await
        .0
        .unwrap();
    std::fs::remove_file(dir.path().join("a.js")).unwrap();
    deploy(&store, &cdn(), &config(dir.path(), &grace))
        .await
        .0
        .unwrap();
    std::fs::remove_file(dir.path().join("b.js")).unwrap();
    let before = (store.writes(), marks(&store));
    let dry = config(dir.path(), &[grace[0], ("DRY_RUN", "true")]);
    let (result, report) = deploy(&store, &cdn(), &dry).await;
    result.unwrap();
    assert_eq!(
        outcomes(&report),
        BTreeMap::from([
            ("p/a.js".into(), fate("delete", "not attempted")),
            ("p/b.js".into(), fate("pending delete", "done")),
            ("p/index.html".into(), fate("skip", "done")),
        ])
    );
    assert_eq!((store.writes(), marks(&store)), before);
}

#[tokio::test]
async fn excluded_keys_are_never_marked_and_keep_their_marks() {
    let store = MemoryStore::default();
    let dir = site(&[("index.html", "1"), ("a.js", "a"), ("legacy/x.js", "x")]);
    let grace = ("DELETE_GRACE", "1 deploy");
    deploy(&store, &cdn(), &config(dir.path(), &[grace]))
        .await
        .0
        .unwrap();
    std::fs::remove_file(dir.path().join("a.js")).unwrap();
    std::fs::remove_dir_all(dir.path().join("legacy")).unwrap();
    // legacy/ is left out: neither marked nor deleted, however many deploys.
    let excluding = config(dir.path(), &[grace, ("EXTRA_ARGS", "--exclude 'legacy/*'")]);
    for _ in 0..3 {
        deploy(&store, &cdn(), &excluding).await.0.unwrap();
    }
    assert_eq!(
        store.keys(),
        [
            "p/.s3-cloudfront-deploy-manifest.json",
            "p/index.html",
            "p/legacy/x.js"
        ]
    );
    assert!(marks(&store).is_empty());
    // Marked by a deploy that covers it, it keeps its mark through a pass
    // that leaves it out, uncounted.
    deploy(&store, &cdn(), &config(dir.path(), &[grace]))
        .await
        .0
        .unwrap();
    let marked = marks(&store);
    assert_eq!(marked.len(), 1);
    deploy(&store, &cdn(), &excluding).await.0.unwrap();
    assert_eq!(marks(&store)[0]["deploys"], marked[0]["deploys"]);
    assert!(store.keys().contains(&"p/legacy/x.js".to_string()));
    deploy(&store, &cdn(), &config(dir.path(), &[grace]))
        .await
        .0
        .unwrap();
    assert!(!store.keys().contains(&"p/legacy/x.js".to_string()));
}

/// The whole verification of a deploy that changed a page, added an asset
/// and deleted another, run against `site`.
async fn verify_second_deploy<'a>(
    store: &'a MemoryStore,
    site: &MemorySite<'a>,
    extra: &[(&str, &str)],
    before: impl FnOnce(&MemorySite<'a>),
) -> (tempfile::TempDir, Result<(), PipeError>, Value) {
    let dir = site_dir_v1();
    deploy(store, &cdn(), &config(dir.path(), &[]))
        .await
        .0
        .unwrap();
    write(
        dir.path(),
        &[("index.html", "<h1>v2"), ("new.js", "let n = 2;")],
    );
    std::fs::remove_file(dir.path().join("old.js")).unwrap();
    before(site);
    let mut vars = vec![("DISTRIBUTION_ID", "E1"), ("VERIFY", "true")];
    vars.extend_from_slice(extra);
    let config = config(dir.path(), &vars);
    let (result, report) = deploy_through(store, &cdn(), site, &config, &Stop::never()).await;
    (dir, result, report)
}

fn site_dir_v1() -> tempfile::TempDir {
    site(&[
        ("index.html", "<h1>v1"),
        ("old.js", "let o = 1;"),
        ("a.css", "a { color: red }"),
    ])
}

/// `{path: (result, [problem kinds], attempts)}` of a record's verification.
fn verdicts(report: &Value) -> BTreeMap<String, (String, Vec<String>, u64)> {
    report["verification"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let kinds = p["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kind"].as_str().unwrap().to_string())
                .collect();
            let result = p["result"].as_str().unwrap().to_string();
            let path = p["path"].as_str().unwrap().to_string();
            (path, (result, kinds, p["attempts"].as_u64().unwrap()))
        })
        .collect()
}

fn fine(attempts: u64) -> (String, Vec<String>, u64) {
    ("as deployed".into(), Vec::new(), attempts)
}

#[tokio::test]
async fn a_clean_deploy_is_verified_through_the_distribution_as_a_browser_asks() {
    let store = MemoryStore::default();
    // A CDN that compresses what is stored uncompressed, and serves the
    // folder's index document at its folder's URL.
    let site = MemorySite::new(&store, "p")
        .with_index("index.html")
        .compressing();
    let extra = [
        ("INDEX_DOCUMENT", "index.html"),
        ("CACHE_CONTROL", "max-age=60"),
    ];
    let (_dir, result, report) = verify_second_deploy(&store, &site, &extra, |_| {}).await;
    result.unwrap();
    let v = &report["verification"];
    assert_eq!(v["url"], "https://e1.cloudfront.net");
    assert_eq!(
        verdicts(&report),
        BTreeMap::from([
            ("/".into(), fine(1)),
            ("/a.css".into(), fine(1)),
            ("/index.html".into(), fine(1)),
            ("/new.js".into(), fine(1)),
            ("/old.js".into(), fine(1)),
        ])
    );
    // The new Cache-Control fixed a.css in place: it is checked too.
    assert_eq!(v["paths"][1]["action"], "update headers");
    assert_eq!(
        (&v["candidates"], &v["failed"], &v["requests"]),
        (&4.into(), &0.into(), &5.into())
    );
    assert_eq!(v["deleted_status"], serde_json::json!([404]));
    assert_eq!(
        report["invalidations"][0]["completed"], true,
        "VERIFY waits"
    );
    for (url, headers) in site.requests() {
        assert!(url.starts_with("https://e1.cloudfront.net/"), "{url}");
        let has = |name: &str, value: &str| headers.iter().any(|(n, v)| n == name && v == value);
        assert!(has("accept-encoding", "br, gzip"), "{headers:?}");
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n == "authorization" || n.starts_with("x-amz")),
            "{headers:?}"
        );
    }
    assert_eq!(site.requests().len(), 5);
}

#[tokio::test]
async fn every_fault_is_reported_with_its_kind_after_everything_is_checked() {
    let store = MemoryStore::default();
    let site = MemorySite::new(&store, "p");
    let (_dir, result, report) = verify_second_deploy(&store, &site, &[], |site| {
        // A cache that keeps the old page and the deleted script.
        site.freeze("/index.html", usize::MAX);
        site.freeze("/old.js", usize::MAX);
        site.fault("/new.js", Fault::ContentType("text/plain".into()));
    })
    .await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Verification failed: 3 of 3 paths are not served as deployed. The deploy itself succeeded and is not undone"),
        "{err}"
    );
    let hints = err.details().join("\n");
    for kind in ["old bytes", "still served", "wrong type"] {
        assert!(hints.contains(&format!("Hint: {kind}: ")), "{hints}");
    }
    let retried = 1 + u64::from(run::verify::RECHECKS);
    assert_eq!(
        verdicts(&report),
        BTreeMap::from([
            (
                "/index.html".into(),
                ("mismatch".into(), vec!["old bytes".into()], retried)
            ),
            (
                "/new.js".into(),
                ("mismatch".into(), vec!["wrong type".into()], retried)
            ),
            (
                "/old.js".into(),
                ("mismatch".into(), vec!["still served".into()], retried)
            ),
        ])
    );
    let page = &report["verification"]["paths"][0];
    assert_eq!(page["x_cache"], "Hit from memory");
    assert_eq!(page["age"], "42");
    assert_eq!(report["success"], false);
    // The deploy stands.
    assert_eq!(store.body("p/index.html").unwrap(), b"<h1>v2");
    assert_eq!(report["totals"]["uploaded"], 2);
}

#[tokio::test]
async fn forbidden_redirected_and_silent_paths_are_each_told_apart() {
    let store = MemoryStore::default();
    let site = MemorySite::new(&store, "p").missing_status(403);
    let extra = [("VERIFY_TIMEOUT", "300ms"), ("CACHE_CONTROL", "no-cache")];
    let (_dir, result, report) = verify_second_deploy(&store, &site, &extra, |site| {
        site.fault(
            "/index.html",
            Fault::Redirect("https://www.example.com/".into()),
        );
        site.fault("/new.js", Fault::Status(403));
        site.fault("/a.css", Fault::Stall);
    })
    .await;
    let hints = result.unwrap_err().details().join("\n");
    assert!(
        hints.contains("Hint: forbidden: 403 for a deployed object"),
        "{hints}"
    );
    let found = verdicts(&report);
    // A redirect is reported at once and not followed.
    assert_eq!(
        found["/index.html"],
        ("mismatch".into(), vec!["redirect".into()], 1)
    );
    let retried = 1 + u64::from(run::verify::RECHECKS);
    assert_eq!(
        found["/new.js"],
        ("mismatch".into(), vec!["forbidden".into()], retried)
    );
    assert_eq!(
        found["/a.css"],
        ("not checked".into(), vec!["not checked".into()], 0)
    );
    // S3 answers 403 for a missing key to whoever may not list the bucket.
    assert_eq!(found["/old.js"], fine(1));
    assert_eq!(
        report["verification"]["deleted_status"],
        serde_json::json!([403])
    );
    assert_eq!(
        site.requests()
            .iter()
            .filter(|(u, _)| u.ends_with("/index.html"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_stale_answer_is_asked_again_until_the_edges_converge() {
    let store = MemoryStore::default();
    let site = MemorySite::new(&store, "p");
    let (_dir, result, report) =
        verify_second_deploy(&store, &site, &[], |site| site.freeze("/index.html", 2)).await;
    result.unwrap();
    assert_eq!(verdicts(&report)["/index.html"], fine(3));
    assert_eq!(report["verification"]["requests"], 5);
}

#[tokio::test]
async fn a_distribution_that_does_not_serve_the_prefix_stops_before_any_write() {
    let store = MemoryStore::default();
    let dir = site_dir_v1();
    let first = config(dir.path(), &[("DISTRIBUTION_ID", "E1"), ("VERIFY", "true")]);
    let elsewhere = MemoryCdn::with("E1", "site-bucket", "/other");
    let nothing = MemoryStore::default();
    let site = MemorySite::new(&nothing, "");
    let (result, report) = deploy_through(&store, &elsewhere, &site, &first, &Stop::never()).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("nothing was deployed") && err.contains("set VERIFY_URL"),
        "{err}"
    );
    assert!(store.writes().is_empty());
    assert!(report["verification"].is_null());
    // With VERIFY_URL, the distribution's origin path does not matter.
    let config = config(
        dir.path(),
        &[
            ("DISTRIBUTION_ID", "E1"),
            ("VERIFY", "true"),
            ("VERIFY_URL", "http://127.0.0.1:9/"),
        ],
    );
    let own = MemorySite::new(&store, "p");
    let (result, report) = deploy_through(&store, &elsewhere, &own, &config, &Stop::never()).await;
    result.unwrap();
    assert_eq!(report["verification"]["url"], "http://127.0.0.1:9");
    assert_eq!(report["verification"]["passed"], 3);
}

#[tokio::test]
async fn a_dry_run_verifies_nothing() {
    let store = MemoryStore::default();
    let dir = site_dir_v1();
    let config = config(
        dir.path(),
        &[
            ("VERIFY", "true"),
            ("VERIFY_URL", "https://x"),
            ("DRY_RUN", "true"),
        ],
    );
    let site = MemorySite::new(&store, "p");
    let (result, report) = deploy_through(&store, &cdn(), &site, &config, &Stop::never()).await;
    result.unwrap();
    assert!(site.requests().is_empty());
    assert!(report["verification"].is_null());
}

#[tokio::test]
async fn with_invalidation_off_the_distribution_is_still_looked_up_for_its_domain() {
    let store = MemoryStore::default();
    let site = MemorySite::new(&store, "p");
    let extra = [("INVALIDATE", "false")];
    let (_dir, result, report) = verify_second_deploy(&store, &site, &extra, |_| {}).await;
    result.unwrap();
    assert_eq!(report["verification"]["url"], "https://e1.cloudfront.net");
    assert_eq!(report["verification"]["passed"], 3);
    assert!(report["invalidations"].as_array().unwrap().is_empty());
}
