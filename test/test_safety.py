"""Drop-in safety: EXTRA_ARGS with aws s3 sync semantics, dry run, ordered
deploy and the delete guard, observed at the server."""

from conftest import bucket_contents, make_site, site_writes, writes

SITE = {
    "index.html": "<h1>home",
    "about/index.html": "<h1>about",
    "app.js": "app",
    "app.js.map": "map",
    "style.css": "css",
    "drafts/post.html": "draft",
    "robots.txt": "User-agent: *",
}


def test_excludes_and_includes_apply_in_order_and_excluded_keys_survive(tmp_path, deploy, s3, bucket):
    s3.put_object(Bucket=bucket, Key="uploads/user.png", Body=b"user content")
    s3.put_object(Bucket=bucket, Key="old.html", Body=b"stale")
    site = make_site(tmp_path, SITE)
    proc = deploy(
        site,
        DELETE_FLAG="true",
        EXTRA_ARGS="--exclude '*.map' --exclude 'drafts/*' --include 'drafts/keep*' --exclude=uploads/*",
    )
    assert proc.returncode == 0, proc.output
    got = bucket_contents(s3, bucket)
    assert "app.js.map" not in got and "drafts/post.html" not in got
    assert got["uploads/user.png"] == b"user content"
    assert "old.html" not in got
    assert "excluded by filters" in proc.output


def test_list_form_of_extra_args(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, SITE)
    proc = deploy(site, EXTRA_ARGS_COUNT="4", EXTRA_ARGS_0="--exclude", EXTRA_ARGS_1="*", EXTRA_ARGS_2="--include", EXTRA_ARGS_3="*.css")
    assert proc.returncode == 0, proc.output
    assert list(bucket_contents(s3, bucket)) == ["style.css"]


def test_unknown_flag_is_a_validation_error(tmp_path, deploy, moto):
    site = make_site(tmp_path, SITE)
    with moto.record() as requests:
        proc = deploy(site, EXTRA_ARGS="--exclude '*.map' --recursive")
    assert proc.returncode == 1
    assert "EXTRA_ARGS:\n- --recursive is not supported; supported flags: --acl," in proc.output
    assert requests == []


def test_pre_execution_script_is_refused(tmp_path, deploy):
    proc = deploy(make_site(tmp_path, SITE), PRE_EXECUTION_SCRIPT="./prepare.sh")
    assert proc.returncode == 1
    assert "PRE_EXECUTION_SCRIPT:\n- is not supported: this image has no shell" in proc.output


def test_dry_run_changes_nothing(tmp_path, deploy, s3, bucket, moto):
    s3.put_object(Bucket=bucket, Key="old.html", Body=b"stale")
    site = make_site(tmp_path, SITE)
    for env in ({"DRY_RUN": "true"}, {"EXTRA_ARGS": "--dryrun --delete"}):
        with moto.record() as requests:
            proc = deploy(site, DELETE_FLAG="true", **env)
        assert proc.returncode == 0, proc.output
        assert writes(requests) == [], writes(requests)
        assert "(dryrun) upload: index.html (new file" in proc.output
        assert "(dryrun) delete: old.html" in proc.output
        assert "Dry run: 7 to upload" in proc.output
    assert list(bucket_contents(s3, bucket)) == ["old.html"]


def test_assets_are_all_written_before_the_first_entry_document(tmp_path, deploy, moto):
    files = {f"assets/{i}.js": f"asset {i}" for i in range(30)}
    files.update({f"page{i}.html": f"page {i}" for i in range(5)})
    files.update({"robots.txt": "x", "sitemap.xml": "<urlset/>", "site.webmanifest": "{}"})
    site = make_site(tmp_path, files)
    with moto.record() as requests:
        proc = deploy(site, CONCURRENCY="8")
    assert proc.returncode == 0, proc.output
    puts = [r["url"].split("?")[0].rsplit("/", 1)[-1] for r in site_writes(requests)]
    assert len(puts) == len(files)
    entry = {"robots.txt", "sitemap.xml", "site.webmanifest"} | {f"page{i}.html" for i in range(5)}
    first_entry = min(i for i, name in enumerate(puts) if name in entry)
    assert all(name in entry for name in puts[first_entry:]), puts


def test_delete_guard_refuses_a_mostly_empty_build(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path / "full", {f"p{i}.html": str(i) for i in range(10)})
    assert deploy(site).returncode == 0
    broken = make_site(tmp_path / "broken", {"index.html": "oops"})
    with moto.record() as requests:
        proc = deploy(broken, DELETE_FLAG="true")
    assert proc.returncode == 1
    assert "the plan deletes 10 of 10 remote objects" in proc.output
    assert writes(requests) == []
    assert len(bucket_contents(s3, bucket)) == 10
    proc = deploy(broken, DELETE_FLAG="true", MAX_DELETE="100%")
    assert proc.returncode == 0, proc.output
    assert list(bucket_contents(s3, bucket)) == ["index.html"]


def test_an_explicit_max_delete_is_a_plain_limit(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {f"p{i}.html": str(i) for i in range(10)})
    assert deploy(site).returncode == 0
    for i in range(3):
        (site / f"p{i}.html").unlink()
    proc = deploy(site, DELETE_FLAG="true", MAX_DELETE="2")
    assert proc.returncode == 1
    assert "the plan deletes 3 of 10 remote objects, more than MAX_DELETE allows (2)" in proc.output
    assert deploy(site, DELETE_FLAG="true", MAX_DELETE="3").returncode == 0


def test_empty_folder_never_empties_the_prefix_unless_forced(tmp_path, deploy, s3, bucket):
    assert deploy(make_site(tmp_path / "site", {"a.html": "a"})).returncode == 0
    (tmp_path / "empty").mkdir()
    proc = deploy(tmp_path / "empty", DELETE_FLAG="true", MAX_DELETE="100%")
    assert proc.returncode == 1
    assert "LOCAL_PATH is empty" in proc.output and "ALLOW_DELETE_ALL" in proc.output
    assert list(bucket_contents(s3, bucket)) == ["a.html"]
    assert deploy(tmp_path / "empty", DELETE_FLAG="true", ALLOW_DELETE_ALL="true").returncode == 0
    assert bucket_contents(s3, bucket) == {}


def test_headers_and_metadata_from_extra_args(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {"doc.txt": "hello"})
    proc = deploy(
        site,
        CACHE_CONTROL="max-age=1",
        EXTRA_ARGS="--cache-control 'max-age=60, public' --content-language en --content-disposition inline "
        "--metadata team=web,build=42 --content-type text/x-custom",
    )
    assert proc.returncode == 0, proc.output
    head = s3.head_object(Bucket=bucket, Key="doc.txt")
    assert head["CacheControl"] == "max-age=60, public"
    assert head["ContentLanguage"] == "en"
    assert head["ContentDisposition"] == "inline"
    assert head["ContentType"] == "text/x-custom"
    assert head["Metadata"] == {"team": "web", "build": "42"}


def test_size_only_skips_same_size_edits(tmp_path, deploy, moto):
    site = make_site(tmp_path, {"a.txt": "aaaa"})
    assert deploy(site).returncode == 0
    (site / "a.txt").write_text("bbbb")
    with moto.record() as requests:
        proc = deploy(site, EXTRA_ARGS="--size-only --exact-timestamps")
    assert proc.returncode == 0, proc.output
    assert site_writes(requests) == [], "same size: not uploaded"
    assert "--exact-timestamps has no effect" in proc.output


def test_quiet_prints_only_errors_and_the_final_line(tmp_path, deploy):
    site = make_site(tmp_path, SITE)
    proc = deploy(site, EXTRA_ARGS="--only-show-errors")
    assert proc.returncode == 0, proc.output
    lines = [line for line in proc.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "✔ Deployment successful: 7 uploaded" in lines[0], lines


def test_unordered_deploy_and_custom_entry_documents(tmp_path, deploy, moto):
    site = make_site(tmp_path, {"a.html": "a", "z.json": "z", "m.js": "m"})
    with moto.record() as requests:
        assert deploy(site, ENTRY_DOCUMENTS="*.json", CONCURRENCY="1").returncode == 0
    puts = [r["url"].split("?")[0].rsplit("/", 1)[-1] for r in site_writes(requests)]
    assert puts[-1] == "z.json", puts
