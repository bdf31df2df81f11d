"""Per-file rules against a real S3 API: headers by pattern, gzip and brotli
round trips, precompressed siblings, ignores, and precise errors."""

import gzip

import brotli

from conftest import assert_quiet, assert_redeploy_quiet, bucket_contents, make_site, site_writes, stamped_with_manifest

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

    fresh = stamped_with_manifest(s3, bucket)
    with moto.record() as requests:
        again = deploy(root, RULES_FILE=str(tmp_path / "rules.yml"), CACHE_CONTROL="max-age=60", DELETE_FLAG="true")
    assert again.returncode == 0, again.output
    assert site_writes(requests) == [], "compressed output is deterministic: nothing to upload"
    assert_quiet(requests, bucket, [k for k in fresh if k != "drafts/published-elsewhere.html"])


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
    assert sorted(got) == ["app.js", "app.js.br", "app.js.gz", "lib.js", "lib.js.gz"], "siblings keep their own keys"
    assert got["app.js"] == b"BR-BYTES"
    assert s3.head_object(Bucket=bucket, Key="app.js")["ContentEncoding"] == "br"
    lib = s3.get_object(Bucket=bucket, Key="lib.js")
    assert lib["ContentEncoding"] == "gzip" and gzip.decompress(lib["Body"].read()) == b"lib"
    br = s3.head_object(Bucket=bucket, Key="app.js.br")
    assert br["ContentType"] == "application/octet-stream" and "ContentEncoding" not in br


def test_precompressed_sitemap_stays_published_under_its_own_name(tmp_path, deploy, s3, bucket, moto):
    """Issue 13: robots.txt names sitemap.xml.gz, as search engines expect;
    PRECOMPRESSED with DELETE_FLAG deleted it as "not in the local folder"."""
    xml = "<urlset>" + "<url><loc>https://example.com/</loc></url>" * 50 + "</urlset>"
    sitemap_gz = gzip.compress(xml.encode(), mtime=0)
    app_gz = gzip.compress(TEXT.encode(), mtime=0)
    root = make_site(
        tmp_path / "site",
        {
            "robots.txt": "Sitemap: https://example.com/sitemap.xml.gz\n",
            "sitemap.xml": xml,
            "sitemap.xml.gz": sitemap_gz,
            "app.js": TEXT,
            "app.js.gz": app_gz,
        },
    )
    # What an earlier deploy without PRECOMPRESSED (or aws s3 sync) left.
    s3.put_object(Bucket=bucket, Key="sitemap.xml.gz", Body=sitemap_gz, ContentType="application/gzip")
    proc = deploy(root, PRECOMPRESSED="true", DELETE_FLAG="true")
    assert proc.returncode == 0, proc.output
    assert "delete:" not in proc.output, proc.output

    own = s3.get_object(Bucket=bucket, Key="sitemap.xml.gz")
    assert own["Body"].read() == sitemap_gz
    assert own["ContentType"] == "application/gzip" and "ContentEncoding" not in own
    served = s3.get_object(Bucket=bucket, Key="sitemap.xml")
    assert served["ContentEncoding"] == "gzip" and served["ContentType"] == "application/xml; charset=utf-8"
    assert gzip.decompress(served["Body"].read()).decode() == xml
    app = s3.get_object(Bucket=bucket, Key="app.js")
    assert app["ContentEncoding"] == "gzip" and app["Body"].read() == app_gz
    assert s3.get_object(Bucket=bucket, Key="app.js.gz")["Body"].read() == app_gz
    assert sorted(bucket_contents(s3, bucket)) == ["app.js", "app.js.gz", "robots.txt", "sitemap.xml", "sitemap.xml.gz"]

    again, _ = assert_redeploy_quiet(moto, s3, bucket, lambda: deploy(root, PRECOMPRESSED="true", DELETE_FLAG="true"))
    assert "0 uploaded (0 B), 5 unchanged, 0 deleted" in again.output, again.output


def test_excluded_siblings_still_serve_their_original(tmp_path, deploy, s3, bucket):
    root = make_site(tmp_path, {"app.js": TEXT, "app.js.gz": gzip.compress(b"small", mtime=0)})
    proc = deploy(root, PRECOMPRESSED="true", EXTRA_ARGS="--exclude '*.gz'")
    assert proc.returncode == 0, proc.output
    assert sorted(bucket_contents(s3, bucket)) == ["app.js"]
    assert s3.head_object(Bucket=bucket, Key="app.js")["ContentEncoding"] == "gzip"


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
