"""The deploy engine against a real S3 API (moto): the aws-s3-deploy contract
with content-hash diffing."""

import hashlib
import os
import time
import unicodedata

import boto3.s3.transfer
import pytest

from conftest import (
    MANIFEST,
    assert_quiet,
    assert_redeploy_quiet,
    base_env,
    bucket_contents,
    make_site,
    run_pipe,
    site_writes,
    stamped_with_manifest,
    writes,
)

SITE = {
    "index.html": "<h1>home</h1>",
    "about/index.html": "<h1>about</h1>",
    "css/site.css": "body{}",
    "js/app.js": "console.log(1)",
    ".well-known/security.txt": "Contact: mailto:x@example.com",
    "empty.txt": "",
}

TRICKY = [
    "with space.html",
    "plus+sign.txt",
    "percent%.txt",
    "literal%20twenty.txt",
    "hash#tag.txt",
    "amp&ersand.txt",
    "equals=sign.txt",
    "question?mark.txt",
    "caf\u00e9.txt",
    "emoji-\U0001f680.txt",
    "deep/nested/index.html",
    "a/b/c/index.html",
]


def local_files(root):
    out = {}
    for dirpath, _, names in os.walk(root, followlinks=True):
        for n in names:
            p = os.path.join(dirpath, n)
            key = unicodedata.normalize("NFC", os.path.relpath(p, root))
            out[key] = open(p, "rb").read()
    return out


def test_first_deploy_mirrors_the_folder(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, SITE)
    proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert bucket_contents(s3, bucket) == local_files(site)
    assert "✔ Deployment successful: 6 uploaded" in proc.output
    assert "upload: about/index.html (new file" in proc.output


def test_redeploy_after_touching_every_mtime_writes_nothing(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, SITE)
    assert deploy(site).returncode == 0
    later = time.time() + 3600
    for p in site.rglob("*"):
        os.utime(p, (later, later))
    proc, _ = assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(site))
    assert "0 uploaded (0 B), 6 unchanged, 0 deleted" in proc.output


def test_same_size_content_change_is_uploaded(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, SITE)
    assert deploy(site).returncode == 0
    (site / "css/site.css").write_text("BODY{}")  # same size
    stat = (site / "js/app.js").stat()
    with moto.record() as requests:
        proc = deploy(site)
    assert proc.returncode == 0, proc.output
    puts = [r["url"] for r in site_writes(requests)]
    assert len(puts) == 1 and "/css/site.css?" in puts[0], puts
    assert len(writes(requests)) == 2, "and the manifest records the new ETag"
    assert "content changed (same size, different MD5)" in proc.output
    assert s3.get_object(Bucket=bucket, Key="css/site.css")["Body"].read() == b"BODY{}"
    assert stat.st_size == (site / "js/app.js").stat().st_size


def test_delete_flag_deletes_and_its_absence_keeps(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, SITE)
    assert deploy(site).returncode == 0
    (site / "js/app.js").unlink()
    proc = deploy(site)
    assert proc.returncode == 0, proc.output
    assert "js/app.js" in bucket_contents(s3, bucket)
    assert "1 remote objects are not in the local folder and are kept" in proc.output
    proc = deploy(site, DELETE_FLAG="true")
    assert proc.returncode == 0, proc.output
    assert bucket_contents(s3, bucket) == local_files(site)
    assert "delete: js/app.js" in proc.output


def test_prefix_is_isolated(tmp_path, deploy, s3, bucket):
    s3.put_object(Bucket=bucket, Key="site2/keep.txt", Body=b"other site")
    s3.put_object(Bucket=bucket, Key="sitemap.txt", Body=b"root object")
    s3.put_object(Bucket=bucket, Key="site/stale.txt", Body=b"old")
    site = make_site(tmp_path, SITE)
    proc = deploy(site, prefix="site/", DELETE_FLAG="yes")
    assert proc.returncode == 0, proc.output
    everything = bucket_contents(s3, bucket)
    assert everything["site2/keep.txt"] == b"other site"
    assert everything["sitemap.txt"] == b"root object"
    assert "site/stale.txt" not in everything
    assert {k[5:]: v for k, v in everything.items() if k.startswith("site/")} == local_files(site)


def test_tricky_names_round_trip_and_do_not_reupload(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, {name: f"body of {name}" for name in TRICKY})
    # A name written in decomposed form (as macOS does) deploys as NFC.
    decomposed = unicodedata.normalize("NFD", "r\u00e9sum\u00e9.txt")
    (site / decomposed).write_text("cv")
    proc = deploy(site, prefix="p")
    assert proc.returncode == 0, proc.output
    got = bucket_contents(s3, bucket)
    expected = {"p/" + k: v for k, v in local_files(site).items()}
    assert got == expected
    assert "p/r\u00e9sum\u00e9.txt" in got
    assert_redeploy_quiet(
        moto, s3, bucket, lambda: deploy(site, prefix="p", DELETE_FLAG="true"), manifest_key="p/" + MANIFEST, prefix="p/"
    )


def test_large_file_goes_in_parts_and_redeploy_skips_it(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path, {"video.bin": os.urandom(9 * 1024 * 1024 + 17), "index.html": "x"})
    proc = deploy(site)
    assert proc.returncode == 0, proc.output
    etag = s3.head_object(Bucket=bucket, Key="video.bin")["ETag"]
    assert etag.endswith('-2"'), etag
    assert bucket_contents(s3, bucket) == local_files(site)
    fresh = stamped_with_manifest(s3, bucket)
    with moto.record() as requests:
        again = deploy(site)
    assert again.returncode == 0, again.output
    assert not [r for r in requests if "partNumber=" in r["url"]], "our own part size needs no HeadObject"
    assert_quiet(requests, bucket, fresh)


def test_object_uploaded_with_another_part_size_is_compared_exactly(tmp_path, deploy, s3, bucket, moto):
    data = os.urandom(12 * 1024 * 1024)
    site = make_site(tmp_path, {"data.bin": data})
    cfg = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(site / "data.bin"), bucket, "data.bin", Config=cfg)
    assert s3.head_object(Bucket=bucket, Key="data.bin")["ETag"].endswith('-3"')
    with moto.record() as requests:
        proc = deploy(site, DEBUG="true")
    assert proc.returncode == 0, proc.output
    # Same content, so no upload; boto3 stored another Content-Type than this
    # pipe sets, so the headers are fixed in place with one CopyObject.
    (copy,) = site_writes(requests)
    assert "x-amz-copy-source" in {k.lower() for k in copy["headers"]}
    assert "update headers: data.bin" in proc.output
    heads = [r["url"] for r in requests if r["method"] == "HEAD"]
    # One for the part size; one for the headers, which no manifest vouches for yet.
    assert len(heads) == 2 and sum("partNumber=1" in h for h in heads) == 1, heads
    fresh = stamped_with_manifest(s3, bucket)
    with moto.record() as requests:
        assert deploy(site).returncode == 0
    assert_quiet(requests, bucket, fresh)  # the manifest now knows it
    # Same size, other content: uploaded again.
    (site / "data.bin").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    proc = deploy(site)
    assert "content changed" in proc.output
    assert s3.get_object(Bucket=bucket, Key="data.bin")["Body"].read() == (site / "data.bin").read_bytes()


def test_headers_are_set_from_the_variables(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {"index.html": "<p>", "app.mjs": "x", "logo.svg": "<svg/>", "blob": "b"})
    proc = deploy(site, CACHE_CONTROL="max-age=60", EXPIRES="2030-01-31T12:00:00Z", STORAGE_CLASS="STANDARD_IA")
    assert proc.returncode == 0, proc.output
    head = s3.head_object(Bucket=bucket, Key="index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["CacheControl"] == "max-age=60"
    assert head["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Thu, 31 Jan 2030 12:00:00 GMT"
    assert head["StorageClass"] == "STANDARD_IA"
    assert s3.head_object(Bucket=bucket, Key="app.mjs")["ContentType"] == "text/javascript; charset=utf-8"
    assert s3.head_object(Bucket=bucket, Key="logo.svg")["ContentType"] == "image/svg+xml; charset=utf-8"
    assert s3.head_object(Bucket=bucket, Key="blob")["ContentType"] == "application/octet-stream"


def test_acl_is_applied(tmp_path, deploy, s3, bucket):
    site = make_site(tmp_path, {"index.html": "<p>"})
    assert deploy(site, ACL="public-read").returncode == 0
    grants = s3.get_object_acl(Bucket=bucket, Key="index.html")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("/global/AllUsers") for g in grants), grants


def test_validation_errors_are_collected_and_nothing_is_called(tmp_path, moto):
    env = base_env(moto, S3_BUCKET="Not_A_Bucket", LOCAL_PATH=str(tmp_path / "missing"), ACL="open", DELETE_FLAG="sure")
    del env["AWS_DEFAULT_REGION"]
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 1
    out = proc.output
    assert "✖ Validation errors:" in out
    for var in ("S3_BUCKET:", "LOCAL_PATH:", "ACL:", "DELETE_FLAG:", "AWS_DEFAULT_REGION:"):
        assert var in out, out
    assert "is not one of: private, public-read" in out
    assert requests == []
    assert "panicked" not in out


@pytest.mark.parametrize(
    "case,expected",
    [
        ("no_bucket", "NoSuchBucket"),
        ("unreachable", "could not be reached"),
    ],
)
def test_aws_errors_name_the_fix(tmp_path, moto, case, expected):
    site = make_site(tmp_path, {"a.txt": "a"})
    if case == "no_bucket":
        env = base_env(moto, S3_BUCKET="no-such-bucket-here", LOCAL_PATH=str(site))
    else:
        env = base_env(moto, S3_BUCKET="b-1", LOCAL_PATH=str(site), AWS_ENDPOINT_URL="http://127.0.0.1:9")
    proc = run_pipe(env)
    assert proc.returncode == 1
    assert "✖" in proc.output and expected in proc.output, proc.output
    assert "Hint:" in proc.output
    assert "panicked" not in proc.output


def test_relative_local_path_and_aws_region(tmp_path, moto, s3, bucket):
    make_site(tmp_path / "public", {"index.html": "x"})
    env = base_env(moto, S3_BUCKET=bucket, LOCAL_PATH="public", AWS_REGION="us-east-1")
    del env["AWS_DEFAULT_REGION"]
    proc = run_pipe(env, cwd=tmp_path)
    assert proc.returncode == 0, proc.output
    assert list(bucket_contents(s3, bucket)) == ["index.html"]
    assert hashlib.md5(b"x").hexdigest() in s3.head_object(Bucket=bucket, Key="index.html")["ETag"]
