"""CloudFront invalidation against moto's CloudFront: what changed, mapped
through the origin path, within the budget; invalidate-only mode."""

import uuid

import pytest

from conftest import base_env, client, make_site, run_pipe

SITE = {
    "index.html": "<h1>home",
    "docs/index.html": "<h1>docs",
    "docs/guide.html": "guide",
    "assets/app.js": "app",
    "assets/site.css": "css",
    "caf\u00e9 menu.txt": "menu",
}


@pytest.fixture
def cloudfront(moto):
    return client(moto, "cloudfront")


def distribution(cloudfront, bucket, origin_path=""):
    config = {
        "CallerReference": uuid.uuid4().hex,
        "Comment": "test",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "s3",
                    "DomainName": f"{bucket}.s3.us-east-1.amazonaws.com",
                    "OriginPath": origin_path,
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "s3",
            "ViewerProtocolPolicy": "redirect-to-https",
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "MinTTL": 0,
        },
    }
    d = cloudfront.create_distribution(DistributionConfig=config)["Distribution"]
    return d["Id"], d["DomainName"]


def invalidations(cloudfront, dist_id):
    """Every invalidation on the distribution: {id: sorted paths}."""
    out = {}
    for summary in cloudfront.list_invalidations(DistributionId=dist_id)["InvalidationList"].get("Items", []):
        inv = cloudfront.get_invalidation(DistributionId=dist_id, Id=summary["Id"])["Invalidation"]
        out[inv["Id"]] = sorted(inv["InvalidationBatch"]["Paths"].get("Items", []))
    return out


def test_deploy_invalidates_exactly_what_changed(tmp_path, deploy, cloudfront, bucket):
    dist_id, domain = distribution(cloudfront, bucket)
    site = make_site(tmp_path, SITE)
    first = deploy(site, DISTRIBUTION_ID=dist_id, DELETE_FLAG="true")
    assert first.returncode == 0, first.output
    # A first deploy only adds keys: nothing was cached, nothing to invalidate.
    assert "No cached object changed (new keys are in no cache): no CloudFront invalidation is needed" in first.output
    assert invalidations(cloudfront, dist_id) == {}

    (site / "docs/index.html").write_text("<h1>docs v2")
    (site / "caf\u00e9 menu.txt").write_text("MENU")
    (site / "assets/site.css").unlink()
    (site / "assets/new.js").write_text("new")
    proc = deploy(site, DISTRIBUTION_ID=dist_id, DELETE_FLAG="true", WAIT="true")
    assert proc.returncode == 0, proc.output
    (paths,) = invalidations(cloudfront, dist_id).values()
    assert paths == sorted(["/docs/index.html", "/docs/", "/docs", "/caf%C3%A9%20menu.txt", "/assets/site.css"])
    assert "✔ Successfully created a cloudfront invalidation: " in proc.output
    assert f"Invalidating 5 path(s) on {dist_id} ({domain})" in proc.output
    assert "Invalidation completed on" in proc.output

    again = deploy(site, DISTRIBUTION_ID=dist_id, DELETE_FLAG="true")
    assert again.returncode == 0, again.output
    assert "No cached object changed (new keys are in no cache): no CloudFront invalidation is needed" in again.output
    assert len(invalidations(cloudfront, dist_id)) == 1


def test_root_index_and_origin_path_mapping(tmp_path, deploy, cloudfront, bucket):
    dist_id, _ = distribution(cloudfront, bucket, origin_path="/site")
    site = make_site(tmp_path, SITE)
    assert deploy(site, prefix="site").returncode == 0
    (site / "index.html").write_text("<h1>home v2")
    proc = deploy(site, prefix="site", DISTRIBUTION_ID=dist_id)
    assert proc.returncode == 0, proc.output
    (paths,) = invalidations(cloudfront, dist_id).values()
    assert paths == ["/", "/index.html"]


def test_many_changes_collapse_to_wildcards_within_the_budget(tmp_path, deploy, cloudfront, bucket):
    dist_id, _ = distribution(cloudfront, bucket)
    files = {f"assets/{i}.js": f"v1 {i}" for i in range(40)}
    files.update({"index.html": "home", "about.html": "about"})
    site = make_site(tmp_path, files)
    assert deploy(site).returncode == 0
    for name in files:
        (site / name).write_text((site / name).read_text() + " v2")
    proc = deploy(site, DISTRIBUTION_ID=dist_id, INVALIDATION_MAX_PATHS="5")
    assert proc.returncode == 0, proc.output
    (paths,) = invalidations(cloudfront, dist_id).values()
    assert paths == ["/", "/about.html", "/assets/*", "/index.html"]


def test_paths_override_and_several_distributions(tmp_path, deploy, cloudfront, bucket):
    one, _ = distribution(cloudfront, bucket)
    two, _ = distribution(cloudfront, bucket)
    site = make_site(tmp_path, SITE)
    proc = deploy(site, DISTRIBUTION_ID=f"{one}, {two}", PATHS="/index.html /docs/*")
    assert proc.returncode == 0, proc.output
    for dist_id in (one, two):
        assert list(invalidations(cloudfront, dist_id).values()) == [["/docs/*", "/index.html"]]


def test_invalidate_only_mode_defaults_to_everything(moto, cloudfront, bucket):
    dist_id, _ = distribution(cloudfront, bucket)
    proc = run_pipe(base_env(moto, DISTRIBUTION_ID=dist_id))
    assert proc.returncode == 0, proc.output
    assert list(invalidations(cloudfront, dist_id).values()) == [["/*"]]
    assert "✔ Successfully created a cloudfront invalidation: " in proc.output
    assert "Deploying" not in proc.output
    proc = run_pipe(base_env(moto, DISTRIBUTION_ID=dist_id, PATHS="/a.html /b/*"))
    assert proc.returncode == 0, proc.output
    assert sorted(invalidations(cloudfront, dist_id).values()) == [["/*"], ["/a.html", "/b/*"]]


def test_invalidation_can_be_switched_off(tmp_path, deploy, cloudfront, bucket):
    dist_id, _ = distribution(cloudfront, bucket)
    site = make_site(tmp_path, SITE)
    assert deploy(site).returncode == 0
    (site / "index.html").write_text("changed")
    proc = deploy(site, DISTRIBUTION_ID=dist_id, INVALIDATE="false")
    assert proc.returncode == 0, proc.output
    assert invalidations(cloudfront, dist_id) == {}


def test_unknown_distribution_fails_before_the_upload(tmp_path, deploy, s3, bucket):
    """A changed page that cannot be invalidated would stay stale in the
    CDN, and the next run would see nothing to invalidate: so the
    distribution is looked up before anything is written."""
    site = make_site(tmp_path, SITE)
    assert deploy(site).returncode == 0
    (site / "index.html").write_text("changed")
    proc = deploy(site, DISTRIBUTION_ID="ENOSUCHDIST1")
    assert proc.returncode == 1
    assert "upload:" not in proc.output and "Deployment successful" not in proc.output
    assert "The files are deployed" not in proc.output
    assert "NoSuchDistribution" in proc.output and "Hint: check DISTRIBUTION_ID" in proc.output
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() != b"changed"
