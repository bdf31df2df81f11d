"""DELETE_GRACE against moto's S3 and CloudFront (issue 14): an asset whose
file is gone stays published, and uninvalidated, until its grace is over,
counted in deploys or judged by the clock S3_CLOUDFRONT_DEPLOY_NOW sets;
a killed deploy neither loses nor advances a grace."""

import json
import os
import signal
import subprocess

import jsonschema

from conftest import BIN, MANIFEST, base_env, bucket_contents, make_site, run_pipe
from test_cdn import cloudfront, distribution, invalidations  # noqa: F401 (a fixture)
from test_report import SCHEMA
from test_stops import proxy_for, wait_for_upload_in_flight

MIB = 1024 * 1024


def rebuild(site, files):
    """The folder's whole content becomes `files`, as a new build's."""
    for path in sorted(site.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    return make_site(site, files)


def build(version, asset):
    return {"index.html": f"<script src=/{asset}></script> {version}", asset: f"app {asset}"}


def object_of(report_file, key):
    return next((o for o in json.loads(report_file.read_text())["objects"] if o["key"] == key), None)


class Timeline:
    """Deploys one build after another to the test's bucket, behind a
    distribution; records after each which keys the bucket holds, what the
    distribution was asked to invalidate, and the plan's line for app.1.js."""

    def __init__(self, tmp_path, moto, s3, bucket, cloudfront, **env):
        self.s3, self.bucket, self.cloudfront = s3, bucket, cloudfront
        self.dist_id, _ = distribution(cloudfront, bucket)
        self.site = tmp_path / "site"
        self.env = base_env(
            moto, S3_BUCKET=bucket, LOCAL_PATH=str(self.site), DELETE_FLAG="true", DISTRIBUTION_ID=self.dist_id, **env
        )
        self.seen, self.rows = set(), []

    def deploy(self, version, asset, **extra):
        rebuild(self.site, build(version, asset))
        proc = run_pipe(dict(self.env, **extra))
        assert proc.returncode == 0, proc.output
        now = invalidations(self.cloudfront, self.dist_id)
        new = [paths for inv, paths in now.items() if inv not in self.seen]
        self.seen |= set(now)
        lines = proc.output.splitlines()
        line = next((line for line in lines if "keep: app.1.js" in line or "delete: app.1.js" in line), None)
        self.rows.append((version, sorted(bucket_contents(self.s3, self.bucket)), new, line))
        print(self.rows[-1])
        return proc


def kept_through_v3(kept_v2, kept_v3):
    """The timeline when app.1.js, gone from v2 on, is kept by v2 and v3 (the
    plan printing these lines) and deleted, and only then invalidated, by v4."""
    keep = "INFO: keep: app.1.js (no local file; grace until {})"
    return [
        ("v1", ["app.1.js", "index.html"], [], None),
        ("v2", ["app.1.js", "app.2.js", "index.html"], [["/", "/index.html"]], keep.format(kept_v2)),
        ("v3", ["app.1.js", "app.2.js", "index.html"], [["/", "/index.html"]], keep.format(kept_v3)),
        (
            "v4",
            ["app.2.js", "index.html"],
            [["/", "/app.1.js", "/index.html"]],
            "INFO: delete: app.1.js (not in the local folder)",
        ),
    ]


def test_a_grace_of_two_deploys_keeps_the_old_asset_through_v3_and_deletes_it_at_v4(
    tmp_path, moto, s3, bucket, cloudfront
):
    timeline = Timeline(tmp_path, moto, s3, bucket, cloudfront, DELETE_GRACE="2 deploys")
    timeline.deploy("v1", "app.1.js")
    for version in ("v2", "v3", "v4"):
        timeline.deploy(version, "app.2.js")
    assert timeline.rows == kept_through_v3("2 more deploys", "1 more deploy")


def test_a_grace_of_two_hours_by_the_clock_the_test_sets(tmp_path, moto, s3, bucket, cloudfront):
    report = tmp_path / "report.json"
    timeline = Timeline(tmp_path, moto, s3, bucket, cloudfront, DELETE_GRACE="2h", REPORT_FILE=str(report))

    def at(version, asset, time):
        return timeline.deploy(version, asset, S3_CLOUDFRONT_DEPLOY_NOW=f"2030-01-01T{time}Z")

    first = at("v1", "app.1.js", "00:00:00")
    assert "S3_CLOUDFRONT_DEPLOY_NOW sets this deploy's clock to 2030-01-01 00:00 UTC" in first.output
    at("v2", "app.2.js", "01:00:00")
    jsonschema.validate(json.loads(report.read_text()), SCHEMA)
    grace = object_of(report, "app.1.js")["grace"]
    assert grace == {"since": "2030-01-01T01:00:00Z", "until": "2030-01-01T03:00:00Z", "deploys_left": None}
    at("v3", "app.2.js", "02:59:59")
    at("v4", "app.2.js", "03:00:00")
    until = "2030-01-01 03:00 UTC"
    assert timeline.rows == kept_through_v3(until, until)
    record = json.loads(report.read_text())
    assert record["totals"]["deleted"] == 1 and record["totals"]["pending_delete"] == 0


def test_a_marking_clock_behind_s3_starts_the_grace_at_s3_s_time(tmp_path, moto, s3, bucket):
    """The marking deploy's clock says 2001: the grace starts when S3 stamped
    its manifest instead, so three hours later by that clock is not two
    hours after the mark."""
    report = tmp_path / "report.json"
    site = make_site(tmp_path / "site", build("v1", "app.1.js"))
    env = base_env(
        moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), DELETE_FLAG="true", DELETE_GRACE="2h", REPORT_FILE=str(report)
    )
    assert run_pipe(env).returncode == 0
    rebuild(site, build("v2", "app.2.js"))
    proc = run_pipe(dict(env, S3_CLOUDFRONT_DEPLOY_NOW="2001-01-01T00:00:00Z"))
    assert "keep: app.1.js (no local file; grace until 2001-01-01 02:00 UTC)" in proc.output, proc.output
    stamped = s3.head_object(Bucket=bucket, Key=MANIFEST)["LastModified"]
    proc = run_pipe(dict(env, S3_CLOUDFRONT_DEPLOY_NOW="2001-01-01T03:00:00Z"))
    assert proc.returncode == 0, proc.output
    assert "app.1.js" in bucket_contents(s3, bucket), proc.output
    since = object_of(report, "app.1.js")["grace"]["since"]
    assert since > stamped.strftime("%Y-%m-%dT%H:%M:%SZ"), (since, stamped)


def test_a_killed_deploy_neither_loses_nor_advances_a_grace(tmp_path, moto, s3, bucket):
    site = make_site(tmp_path / "site", build("v1", "app.1.js"))
    env = base_env(moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), DELETE_FLAG="true", DELETE_GRACE="2 deploys")
    assert run_pipe(env).returncode == 0
    rebuild(site, build("v2", "app.2.js"))
    assert run_pipe(env).returncode == 0
    manifest = s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read()

    # v3 is killed while a big asset is on its way: no manifest written.
    make_site(site, {"big.bin": os.urandom(24 * MIB), "index.html": "v3"})
    proxy = proxy_for(moto, part_delay=1.0)
    try:
        slow = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
        proc = subprocess.Popen([str(BIN)], env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for_upload_in_flight(s3, bucket, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proxy.stop()
    assert proc.returncode == -signal.SIGKILL
    assert s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read() == manifest
    assert "app.1.js" in bucket_contents(s3, bucket)

    # The killed deploy did not count: v4 still keeps it, v5 deletes it.
    v4 = run_pipe(env)
    assert v4.returncode == 0, v4.output
    assert "keep: app.1.js (no local file; grace until 1 more deploy)" in v4.output, v4.output
    assert "app.1.js" in bucket_contents(s3, bucket)
    v5 = run_pipe(env)
    assert v5.returncode == 0, v5.output
    assert "delete: app.1.js (not in the local folder)" in v5.output, v5.output
    assert "app.1.js" not in bucket_contents(s3, bucket)


def test_delete_grace_without_the_manifest_is_refused_before_any_call(tmp_path, moto, bucket):
    site = make_site(tmp_path / "site", {"index.html": "x"})
    env = base_env(
        moto, S3_BUCKET=bucket, LOCAL_PATH=str(site), DELETE_FLAG="true", DELETE_GRACE="7d", MANIFEST="false"
    )
    with moto.record() as requests:
        proc = run_pipe(env)
    assert proc.returncode == 1
    assert "DELETE_GRACE:\n- needs the deploy manifest" in proc.output, proc.output
    assert requests == []
