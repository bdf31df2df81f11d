"""The deploy manifest: header-only changes fixed in place, exact skips
without HeadObject, and a fallback to HeadObject only where it is needed;
private (no key in clear), truthful (headers changed behind it are found),
never site content, and scoped to what each deploy covered."""

import gzip
import hashlib
import json
import os
import signal
import subprocess
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from conftest import (
    BIN,
    MANIFEST,
    REGION,
    assert_redeploy_quiet,
    base_env,
    bucket_contents,
    head_object_keys,
    manifest_json,
    manifest_text,
    make_site,
    site_writes,
    stamped_with_manifest,
    writes,
)

FILES = {f"page{i}.html": f"<p>{i}" for i in range(8)} | {f"a/{i}.js": f"js {i}" for i in range(8)}


def heads(requests):
    return [r for r in requests if r["method"] == "HEAD"]


def puts(requests):
    """PutObject and UploadPart requests to the site (not CopyObject)."""
    return [
        r
        for r in site_writes(requests)
        if r["method"] == "PUT" and "x-amz-copy-source" not in {k.lower() for k in r["headers"]}
    ]


def copies(requests):
    return [r for r in site_writes(requests) if "x-amz-copy-source" in {k.lower() for k in r["headers"]}]


def test_header_only_change_is_fixed_in_place(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path / "site", FILES)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    manifest = manifest_json(s3, bucket)
    assert manifest["version"] == 3 and len(manifest["objects"]) == len(FILES)
    assert not set(manifest["objects"]) & set(FILES), "keys are digested"
    fresh = stamped_with_manifest(s3, bucket)
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=3600", REPORT_FILE=str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert [o["action"] for o in report["objects"]].count("update headers") == len(FILES)
    assert report["totals"]["headers_updated"] == len(FILES)
    assert puts(requests) == [], "no re-upload"
    assert len(copies(requests)) == len(FILES)
    assert head_object_keys(requests, bucket) == fresh, "the manifest vouches for every object older than itself"
    assert all(s3.head_object(Bucket=bucket, Key=k)["CacheControl"] == "max-age=3600" for k in FILES)
    assert bucket_contents(s3, bucket) == {k: v.encode() for k, v in FILES.items()}
    assert "same content, headers changed: fixed in place" in proc.output
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site, CACHE_CONTROL="max-age=3600"))


def test_objects_overwritten_by_another_tool_cost_one_head_each(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site).returncode == 0
    # Someone re-uploads 5 objects, same bytes, as a multipart upload: new
    # ETags the manifest does not know, and boto3's own Content-Type.
    touched = sorted(FILES)[:5]
    for key in touched:
        mpu = s3.create_multipart_upload(Bucket=bucket, Key=key)
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=FILES[key].encode())
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
        )
    fresh = stamped_with_manifest(s3, bucket)
    assert set(touched) <= set(fresh)
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert head_object_keys(requests, bucket) == fresh
    assert puts(requests) == []
    assert sorted(r["url"].split("?")[0].rsplit("/", 1)[-1] for r in copies(requests)) == sorted(
        k.rsplit("/", 1)[-1] for k in touched
    )
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site))


def test_without_the_manifest_headers_come_from_head_object(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site, MANIFEST="false").returncode == 0
    assert MANIFEST not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    with moto.record() as requests:
        proc = deploy(site, MANIFEST="false", CACHE_CONTROL="no-cache")
    assert proc.returncode == 0, proc.output
    assert len(heads(requests)) == len(FILES)
    assert len(copies(requests)) == len(FILES) and puts(requests) == []


def test_manifest_is_neither_deleted_nor_invalidated_and_can_be_renamed(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {"index.html": "x"})
    renamed = "meta/deploy.s3-cloudfront-deploy-manifest.json"
    proc = deploy(site, prefix="p", DELETE_FLAG="true", MANIFEST_KEY=renamed)
    assert proc.returncode == 0, proc.output
    assert "p/" + renamed in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    proc = deploy(site, prefix="p", DELETE_FLAG="true", MANIFEST_KEY=renamed)
    assert proc.returncode == 0 and "delete:" not in proc.output, proc.output


def test_a_manifest_key_without_the_state_suffix_is_refused(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, {"index.html": "x"})
    with moto.record() as requests:
        proc = deploy(site, MANIFEST_KEY="meta/deploy.json")
    assert proc.returncode == 1
    assert "MANIFEST_KEY" in proc.output and "deploy.s3-cloudfront-deploy-manifest.json" in proc.output, proc.output
    assert requests == []


# --- private: nothing the pipe writes names a key in clear -----------------

UNLINKED = {
    "index.html": "<h1>home</h1>",
    "press/embargoed-launch.html": "<h1>soon</h1>",
    "downloads/customer-7f3a9.zip": "PK",
}


def anonymous(moto):
    config = Config(signature_version=UNSIGNED, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name=REGION, config=config)


def test_nothing_the_pipe_writes_names_an_unlinked_key(tmp_path, deploy, s3, bucket, moto):
    # The usual public setup: ACLs off, GetObject for everyone on bucket/*.
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    site = make_site(tmp_path, UNLINKED)
    with moto.record() as requests:
        proc = deploy(site, DELETE_FLAG="true")
        assert proc.returncode == 0, proc.output
        (site / "index.html").write_text("<h1>home v2</h1>")
        proc = deploy(site, DELETE_FLAG="true")
        assert proc.returncode == 0, proc.output
    written = {r["url"].split("?")[0].split(f"/{bucket}/", 1)[-1] for r in writes(requests)}
    assert MANIFEST in written
    # What anyone can fetch: every object but the unlinked files themselves
    # (whose own URL is the secret) names neither.
    public = anonymous(moto)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for key in listed - {"press/embargoed-launch.html", "downloads/customer-7f3a9.zip"}:
        body = public.get_object(Bucket=bucket, Key=key)["Body"].read()
        for secret in (b"embargoed", b"press", b"customer-7f3a9", b"downloads"):
            assert secret not in body, (key, secret)
    manifest = manifest_json(public, bucket)
    assert manifest["version"] == 3 and len(manifest["objects"]) == len(UNLINKED)


def headers_digest(content_type, cache_control=None):
    """The pipe's digest of an object's headers (model.rs, Headers::digest),
    for objects with only these two headers."""
    h = hashlib.md5()
    for value in (content_type, cache_control, None, None, None):
        h.update((value or "\0").encode() + b"\n")
    return h.hexdigest()[:16]


def test_a_clear_text_manifest_is_migrated_on_the_first_deploy(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, UNLINKED)
    assert deploy(site, MANIFEST="false").returncode == 0
    html = "text/html; charset=utf-8"
    types = {"index.html": html, "press/embargoed-launch.html": html, "downloads/customer-7f3a9.zip": "application/zip"}
    objects = {}
    for o in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        etag = o["ETag"].strip('"')
        assert s3.head_object(Bucket=bucket, Key=o["Key"])["ContentType"] == types[o["Key"]]
        objects[o["Key"]] = {"etag": etag, "md5": etag, "part_size": None, "headers": headers_digest(types[o["Key"]])}
    time.sleep(1.1)  # what 0.1.0 wrote, after the objects it describes
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=json.dumps({"version": 1, "objects": objects}))
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert "names every key in clear" in proc.output
    assert heads(requests) == [], "its entries still hold"
    assert [r["url"].split("?")[0].rsplit("/", 1)[-1] for r in writes(requests)] == [MANIFEST]
    body = manifest_text(s3, bucket)
    assert json.loads(body)["version"] == 3 and "embargoed" not in body
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site))


# --- truthful: headers changed behind the manifest are found ---------------


def copies_of(requests):
    return sorted(r["url"].split("?")[0].rsplit("/", 1)[-1] for r in copies(requests))


def head_keys(requests):
    return sorted(r["url"].split("?")[0].rsplit("/", 1)[-1] for r in heads(requests))


def assert_cache_control(s3, bucket, value):
    for key in FILES:
        got = s3.head_object(Bucket=bucket, Key=key)
        assert got.get("CacheControl") == value, (key, got.get("CacheControl"))


@pytest.mark.parametrize("tool", ["put_object", "copy_object"])
def test_headers_another_tool_changed_are_read_once_and_restored(tmp_path, deploy, s3, bucket, moto, tool):
    site = make_site(tmp_path, FILES)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    touched = sorted(FILES)[:5]
    for key in touched:
        if tool == "put_object":  # the same bytes, other headers: the same ETag
            s3.put_object(Bucket=bucket, Key=key, Body=FILES[key].encode(), ContentType="application/octet-stream")
        else:
            s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                           MetadataDirective="REPLACE", ContentType="application/octet-stream")
    fresh = stamped_with_manifest(s3, bucket)
    assert set(touched) <= set(fresh)
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=60")
    assert proc.returncode == 0, proc.output
    assert head_object_keys(requests, bucket) == fresh
    assert copies_of(requests) == [k.rsplit("/", 1)[-1] for k in touched]
    assert puts(requests) == []
    assert_cache_control(s3, bucket, "max-age=60")
    for key in touched:
        assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] != "application/octet-stream"
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site, CACHE_CONTROL="max-age=60"))


def test_header_fixes_of_a_killed_run_are_found_and_undone(tmp_path, deploy, s3, bucket, moto):
    files = {f"a/{i:03}.css": f"c{i}" for i in range(300)}
    site = make_site(tmp_path, files)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    manifest = s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read()
    # Another Cache-Control, one CopyObject at a time; killed after a few.
    env = base_env(moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), CACHE_CONTROL="max-age=99999", CONCURRENCY="1")
    proc = subprocess.Popen([str(BIN)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fixed = 0
    for line in proc.stdout:
        fixed += "update headers:" in line
        if fixed == 3:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read() == manifest, "killed before its manifest"
    changed = sorted(k for k in files if s3.head_object(Bucket=bucket, Key=k).get("CacheControl") == "max-age=99999")
    assert 3 <= len(changed) < len(files), changed
    fresh = stamped_with_manifest(s3, bucket)
    assert set(changed) <= set(fresh)
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=60")
    assert proc.returncode == 0, proc.output
    assert head_object_keys(requests, bucket) == fresh, "one HeadObject per fixed key (or stamped with the manifest), no more"
    assert copies_of(requests) == [k.rsplit("/", 1)[-1] for k in changed]
    for key in files:
        assert s3.head_object(Bucket=bucket, Key=key).get("CacheControl") == "max-age=60", key
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site, CACHE_CONTROL="max-age=60"))


def test_a_manifest_put_back_later_does_not_vouch_for_headers_changed_since(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    saved = s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read()
    assert manifest_json(s3, bucket)["written"] <= time.time()
    # A later deploy changes every object's headers, past the pipe's
    # allowance for a clock behind S3's...
    time.sleep(7)
    assert deploy(site, CACHE_CONTROL="max-age=120").returncode == 0
    assert_cache_control(s3, bucket, "max-age=120")
    # ...then the first deploy's manifest is put back (a restore): new
    # LastModified, old entries.
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=saved, CacheControl="no-store", ContentEncoding="gzip")
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=60")
    assert proc.returncode == 0, proc.output
    assert "was stored" not in proc.output, "7 s is within the allowance for a slow upload"
    assert head_keys(requests) == sorted(k.rsplit("/", 1)[-1] for k in FILES), "every object changed since"
    assert copies_of(requests) == sorted(k.rsplit("/", 1)[-1] for k in FILES)
    assert_cache_control(s3, bucket, "max-age=60")
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site, CACHE_CONTROL="max-age=60"))


def test_a_manifest_stored_long_after_it_was_written_is_named(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site).returncode == 0
    manifest = manifest_json(s3, bucket)
    # As if it had been written an hour before it was stored.
    manifest["written"] -= 3600
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=json.dumps(manifest).encode())
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert "was stored 36" in proc.output and "s after the time it records" in proc.output, proc.output
    # Every object was written after the time it records: each is checked once.
    assert len(heads(requests)) == len(FILES) and site_writes(requests) == [], proc.output
    # The manifest rewritten with what the HeadObject calls found: no more.
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site))


def test_a_manifest_that_records_a_time_after_it_was_stored_vouches_for_no_headers(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site, CACHE_CONTROL="max-age=60").returncode == 0
    saved = manifest_json(s3, bucket)
    time.sleep(1.5)
    assert deploy(site, CACHE_CONTROL="max-age=120").returncode == 0
    time.sleep(1.5)
    # The first deploy's manifest put back, as written by a clock 30 s ahead
    # of S3's: its record would pass every object fixed since.
    saved["written"] += 30
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=json.dumps(saved).encode())
    with moto.record() as requests:
        proc = deploy(site, CACHE_CONTROL="max-age=60")
    assert proc.returncode == 0, proc.output
    assert "s after S3 stored it" in proc.output and "runs ahead of S3's" in proc.output, proc.output
    assert len(heads(requests)) == len(FILES) and len(copies(requests)) == len(FILES), proc.output
    assert_cache_control(s3, bucket, "max-age=60")


def test_a_large_manifest_is_read_in_two_ranged_gets_and_still_vouches(tmp_path, deploy, s3, bucket, moto):
    """A manifest past its first 4 MiB (about 100,000 entries) is fetched
    alongside the listing up to there, and read on from there in a second
    GetObject of the same object (If-Match) once the listing is in."""
    site = make_site(tmp_path, FILES)
    assert deploy(site).returncode == 0
    manifest = manifest_json(s3, bucket)
    # Padding the pipe skips, incompressible enough to pass 4 MiB gzipped.
    manifest["padding"] = os.urandom(6 << 20).hex()
    body = gzip.compress(json.dumps(manifest).encode(), compresslevel=1)
    assert len(body) > 5 << 20
    # Stored in a later second than every object, as the deploy's own
    # manifest would have been had it waited: it vouches for all of them.
    time.sleep(1.1)
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=body, ContentEncoding="gzip")
    etag = s3.head_object(Bucket=bucket, Key=MANIFEST)["ETag"]
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    gets = [r for r in requests if r["method"] == "GET" and MANIFEST in r["url"]]
    ranges = [{k.lower(): v for k, v in r["headers"].items()} for r in gets]
    assert [h.get("range") for h in ranges] == ["bytes=0-4194303", "bytes=4194304-"], ranges
    assert ranges[1].get("if-match") == etag, ranges
    # Every entry vouches: no HeadObject, no write.
    assert heads(requests) == [] and writes(requests) == [], proc.output
    assert "unreadable" not in proc.output


def test_an_empty_manifest_object_is_unreadable_and_rewritten(tmp_path, deploy, s3, bucket, moto):
    """S3 answers a range of an empty object 416 InvalidRange: the deploy
    goes on as with any unreadable manifest."""
    site = make_site(tmp_path, FILES)
    assert deploy(site).returncode == 0
    s3.put_object(Bucket=bucket, Key=MANIFEST, Body=b"")
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert "is unreadable" in proc.output, proc.output
    assert len(heads(requests)) == len(FILES) and site_writes(requests) == [], proc.output
    assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site))


# --- state objects are never site content ----------------------------------


def test_manifest_off_with_delete_flag_leaves_the_manifest(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, FILES)
    assert deploy(site, DELETE_FLAG="true").returncode == 0
    manifest = s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read()
    report = tmp_path / "report.json"
    moved = "moved.s3-cloudfront-deploy-manifest.json"
    for extra in ({"MANIFEST": "false", "DRY_RUN": "true"}, {"MANIFEST": "false"}, {"MANIFEST_KEY": moved}):
        with moto.record() as requests:
            proc = deploy(site, DELETE_FLAG="true", REPORT_FILE=str(report), **extra)
        assert proc.returncode == 0, proc.output
        assert "delete:" not in proc.output, proc.output
        assert "0 deleted" in proc.output or "0 to delete" in proc.output, proc.output
        assert f"{len(FILES)} unchanged" in proc.output, proc.output
        assert [r for r in requests if r["method"] in ("DELETE", "POST")] == []
        assert all(MANIFEST not in o["key"] for o in json.loads(report.read_text())["objects"])
        assert s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read() == manifest


@pytest.mark.parametrize("where", ["another bucket", "another prefix"])
def test_a_manifest_outside_the_prefix_leaves_only_site_files(tmp_path, deploy, s3, bucket, moto, where):
    state = bucket + "-state" if where == "another bucket" else bucket
    if where == "another bucket":
        s3.create_bucket(Bucket=state)
    key = "manifests/site.s3-cloudfront-deploy-manifest.json"
    site = make_site(tmp_path, FILES)
    env = {"MANIFEST_KEY": f"s3://{state}/{key}", "DELETE_FLAG": "true"}
    proc = deploy(site, prefix="site", env=env)
    assert proc.returncode == 0, proc.output
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="site/")["Contents"])
    assert listed == sorted("site/" + k for k in FILES)
    body = manifest_text(s3, state, key)
    assert json.loads(body)["version"] == 3 and "page" not in body
    _, requests = assert_redeploy_quiet(
        moto, s3, bucket, lambda: deploy(site, prefix="site", env=env), manifest_key=key, manifest_bucket=state, prefix="site/"
    )
    assert len([r for r in requests if r["method"] == "GET" and "list-type" not in r["url"] and "?uploads" not in r["url"]]) == 1


# --- scoped: a deploy replaces only what it covered -------------------------

PASSES = {
    "filters": (
        {"EXTRA_ARGS": "--exclude '*.html'", "CACHE_CONTROL": "max-age=31536000"},
        {"EXTRA_ARGS": "--exclude '*' --include '*.html'", "CACHE_CONTROL": "no-cache"},
    ),
    "ignore rules": (
        {"RULES": '- match: "*.html"\n  ignore: true', "CACHE_CONTROL": "max-age=31536000"},
        {"RULES": '- match: "*.js"\n  ignore: true', "CACHE_CONTROL": "no-cache"},
    ),
}


@pytest.mark.parametrize("how", sorted(PASSES))
def test_two_pass_deploys_keep_each_other_s_entries(tmp_path, deploy, s3, bucket, moto, how):
    site = make_site(tmp_path, FILES)
    assets, pages = PASSES[how]
    assert deploy(site, env=assets).returncode == 0
    assert deploy(site, env=pages).returncode == 0
    with moto.record() as requests:
        for env in (assets, pages):
            proc = deploy(site, env=env)
            assert proc.returncode == 0, proc.output
            assert "0 uploaded (0 B), 8 unchanged" in proc.output, proc.output
    assert writes(requests) == [] and heads(requests) == []
    assert s3.head_object(Bucket=bucket, Key="a/0.js")["CacheControl"] == "max-age=31536000"
    assert s3.head_object(Bucket=bucket, Key="page0.html")["CacheControl"] == "no-cache"
