"""Per-file rules against a real S3 API: headers by pattern, gzip and brotli
round trips, precompressed siblings, ignores, and precise errors."""

import gzip

import brotli

from conftest import bucket_contents, make_site, writes

RULES = """
- match: "index.html"
  headers:
    Cache-Control: "no-cache"
- match: "assets/**"
  headers:
    Cache-Control: "public, max-age=31536000, immutable"
    x-amz-meta-team: web
  compress: br
- match: "*.css"
  compress: gzip
- match: "drafts/**"
  ignore: true
"""

TEXT = "function f() { return 42; }\n" * 200


def site(tmp_path):
    return make_site(
        tmp_path / "site",
        {"index.html": "<h1>home", "assets/app.js": TEXT, "style.css": TEXT, "drafts/wip.html": "wip", "robots.txt": "x"},
    )


def test_rules_file_headers_and_compression_round_trip(tmp_path, deploy, s3, bucket, moto):
    (tmp_path / "rules.yml").write_text(RULES)
    s3.put_object(Bucket=bucket, Key="drafts/published-elsewhere.html", Body=b"keep")
    root = site(tmp_path)
    proc = deploy(root, RULES_FILE=str(tmp_path / "rules.yml"), CACHE_CONTROL="max-age=60", DELETE_FLAG="true")
    assert proc.returncode == 0, proc.output

    index = s3.head_object(Bucket=bucket, Key="index.html")
    assert index["CacheControl"] == "no-cache"
    robots = s3.head_object(Bucket=bucket, Key="robots.txt")
    assert robots["CacheControl"] == "max-age=60", "no rule: the variable applies"

    app = s3.get_object(Bucket=bucket, Key="assets/app.js")
    assert app["ContentEncoding"] == "br"
    assert app["ContentType"] == "text/javascript; charset=utf-8"
    assert app["CacheControl"] == "public, max-age=31536000, immutable"
    assert app["Metadata"] == {"team": "web"}
    body = app["Body"].read()
    assert len(body) < len(TEXT) / 10
    assert brotli.decompress(body).decode() == TEXT

    css = s3.get_object(Bucket=bucket, Key="style.css")
    assert css["ContentEncoding"] == "gzip" and css["ContentType"] == "text/css; charset=utf-8"
    assert gzip.decompress(css["Body"].read()).decode() == TEXT

    got = bucket_contents(s3, bucket)
    assert "drafts/wip.html" not in got
    assert got["drafts/published-elsewhere.html"] == b"keep", "ignored keys are never deleted"

    with moto.record() as requests:
        again = deploy(root, RULES_FILE=str(tmp_path / "rules.yml"), CACHE_CONTROL="max-age=60", DELETE_FLAG="true")
    assert again.returncode == 0, again.output
    assert writes(requests) == [], "compressed output is deterministic: nothing to upload"


def test_inline_rules_and_the_default_file_name(tmp_path, moto, s3, bucket):
    from conftest import base_env, run_pipe

    root = site(tmp_path)
    (tmp_path / ".s3-cloudfront-deploy.yml").write_text('- match: "*.txt"\n  headers: {Cache-Control: "max-age=5"}\n')
    env = base_env(moto, S3_BUCKET=bucket, LOCAL_PATH="site", RULES='- match: "index.html"\n  headers: {Content-Language: fr}\n')
    proc = run_pipe(env, cwd=tmp_path)
    assert proc.returncode == 0, proc.output
    assert "Using 1 rule(s) from" in proc.output
    assert s3.head_object(Bucket=bucket, Key="robots.txt")["CacheControl"] == "max-age=5"
    assert s3.head_object(Bucket=bucket, Key="index.html")["ContentLanguage"] == "fr"


def test_precompressed_siblings(tmp_path, deploy, s3, bucket):
    root = make_site(
        tmp_path,
        {"app.js": TEXT, "app.js.br": b"BR-BYTES", "app.js.gz": gzip.compress(TEXT.encode(), mtime=0), "lib.js": TEXT, "lib.js.gz": gzip.compress(b"lib", mtime=0)},
    )
    proc = deploy(root, PRECOMPRESSED="true")
    assert proc.returncode == 0, proc.output
    got = bucket_contents(s3, bucket)
    assert sorted(got) == ["app.js", "lib.js"]
    assert got["app.js"] == b"BR-BYTES"
    assert s3.head_object(Bucket=bucket, Key="app.js")["ContentEncoding"] == "br"
    lib = s3.get_object(Bucket=bucket, Key="lib.js")
    assert lib["ContentEncoding"] == "gzip" and gzip.decompress(lib["Body"].read()) == b"lib"


def test_broken_rules_file_names_the_line_and_the_reason(tmp_path, deploy, moto):
    (tmp_path / "rules.yml").write_text('- match: "*.html"\n  headers:\n    Cache-Control: no-cache\n  gzip: true\n')
    with moto.record() as requests:
        proc = deploy(site(tmp_path), RULES_FILE=str(tmp_path / "rules.yml"))
    assert proc.returncode == 1
    assert "RULES_FILE:" in proc.output and "line 4" in proc.output and "unknown field `gzip`" in proc.output
    assert requests == []
    proc = deploy(site(tmp_path / "b"), RULES='- match: "*.html"\n  headers: {X-Frame-Options: DENY}\n')
    assert proc.returncode == 1
    assert "RULES:\n- RULES rule 1: header \"X-Frame-Options\" is not one of" in proc.output
