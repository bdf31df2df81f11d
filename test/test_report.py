"""The JSON report: written where documented, valid against its schema, and
true to what happened at the server."""

import json
from pathlib import Path

import jsonschema

from conftest import make_site
from test_cdn import distribution

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "report.schema.json").read_text())


def test_report_in_shared_storage_matches_the_run(tmp_path, deploy, s3, bucket, moto):
    site = make_site(tmp_path / "site", {"index.html": "v1", "a.css": "a", "old.js": "o"})
    assert deploy(site).returncode == 0
    (site / "index.html").write_text("v2")
    (site / "old.js").unlink()
    storage = tmp_path / "storage"
    cloudfront = __import__("conftest").client(moto, "cloudfront")
    dist_id, domain = distribution(cloudfront, bucket)
    proc = deploy(site, DELETE_FLAG="true", DISTRIBUTION_ID=dist_id, BITBUCKET_PIPE_SHARED_STORAGE_DIR=str(storage))
    assert proc.returncode == 0, proc.output
    report = json.loads((storage / "s3-cloudfront-deploy/report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["success"] is True and report["error"] is None
    actions = {o["key"]: (o["action"], o["etag"]) for o in report["objects"]}
    index_etag = s3.head_object(Bucket=bucket, Key="index.html")["ETag"].strip('"')
    assert actions["index.html"] == ("upload", index_etag)
    assert actions["a.css"][0] == "skip"
    assert actions["old.js"][0] == "delete"
    assert report["totals"] == {"uploaded": 1, "uploaded_bytes": 2, "headers_updated": 0, "unchanged": 1, "deleted": 1, "kept": 0, "pending_delete": 0, "excluded": 0, "incomplete_uploads_aborted": 0}
    (inv,) = report["invalidations"]
    assert inv["distribution_id"] == dist_id and inv["domain_name"] == domain
    assert sorted(inv["paths"]) == ["/", "/index.html", "/old.js"]
    phases = [t["phase"] for t in report["timings"]]
    assert phases[0] == "credentials" and phases[-1] == "total" and "upload" in phases
    assert "Summary:" in proc.output and "slowest phase:" in proc.output


def test_report_file_on_failure(tmp_path, deploy):
    site = make_site(tmp_path / "site", {"a.txt": "a"})
    proc = deploy(site, REPORT_FILE=str(tmp_path / "out/r.json"), DISTRIBUTION_ID="ENOSUCHDIST1", PATHS="/a.txt")
    assert proc.returncode == 1
    report = json.loads((tmp_path / "out/r.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["success"] is False and "NoSuchDistribution" in report["error"]


def test_validation_failure_in_bitbucket_replaces_the_last_report(tmp_path, deploy, moto):
    """A second run in the same step that fails validation must not leave
    the first run's success behind."""
    site = make_site(tmp_path / "site", {"a.txt": "a"})
    storage = tmp_path / "storage"
    assert deploy(site, BITBUCKET_PIPE_SHARED_STORAGE_DIR=str(storage)).returncode == 0
    path = storage / "s3-cloudfront-deploy/report.json"
    assert json.loads(path.read_text())["success"] is True
    proc = deploy(site, BITBUCKET_PIPE_SHARED_STORAGE_DIR=str(storage), ACL="public", EXPIRES="2030-13-01")
    assert proc.returncode == 1
    assert "✖ Validation errors:" in proc.output
    report = json.loads(path.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["success"] is False
    assert report["error"].startswith("Validation errors:")
    assert sorted(report["validation_errors"]) == ["ACL", "EXPIRES"]
    assert "is not one of: private, public-read" in report["validation_errors"]["ACL"][0]
    assert report["objects"] == [] and report["destination"] is None

