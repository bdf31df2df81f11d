"""The container image, run exactly the way Bitbucket runs a pipe: the clone
mounted at /opt/atlassian/pipelines/agent/build, which is also the working
directory, BITBUCKET_* context variables, and each pipe variable as -e."""

import io
import json
import os
import subprocess
import tarfile
import time

import pytest

from conftest import STATIC_KEY_ID, STATIC_SECRET, bucket_contents, client, make_site
from test_auth import ROLE, TOKEN, assumed_roles, signing_key_ids

IMAGE = os.environ.get("PIPE_IMAGE", "s3-cloudfront-deploy:local")
BUILD_DIR = "/opt/atlassian/pipelines/agent/build"
VERSION = next(
    line.split('"')[1]
    for line in open(os.path.join(os.path.dirname(__file__), "..", "Cargo.toml"))
    if line.startswith("version")
)


def docker(*args, **kw):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module", autouse=True)
def image():
    found = docker("image", "inspect", IMAGE)
    assert found.returncode == 0, f"image {IMAGE} not found: run `make image` (make test does)"
    return json.loads(found.stdout)[0]


def bitbucket_run(moto, clone, variables, oidc=False):
    """docker run as a Pipelines step runs a pipe."""
    env = {
        "BITBUCKET_CLONE_DIR": BUILD_DIR,
        "BITBUCKET_BUILD_NUMBER": "77",
        "BITBUCKET_REPO_SLUG": "website",
        "BITBUCKET_REPO_OWNER": "acme",
        "BITBUCKET_WORKSPACE": "acme",
        "BITBUCKET_BRANCH": "main",
        "BITBUCKET_COMMIT": "0123456789abcdef0123456789abcdef01234567",
        "BITBUCKET_PIPE_STORAGE_DIR": "/opt/atlassian/pipelines/agent/build/.bitbucket/pipelines/generated/pipeline/pipes/acme/s3-cloudfront-deploy",
        "BITBUCKET_PIPE_SHARED_STORAGE_DIR": "/opt/atlassian/pipelines/agent/build/.bitbucket/pipelines/generated/pipeline/pipes",
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        **variables,
    }
    if oidc:
        env["BITBUCKET_STEP_OIDC_TOKEN"] = TOKEN
    args = ["run", "--rm", "--network", "host", "-v", f"{clone}:{BUILD_DIR}", "-w", BUILD_DIR]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    proc = docker(*args, IMAGE)
    proc.output = proc.stdout + proc.stderr
    return proc


def test_image_holds_only_the_binary_and_ca_bundle(image):
    assert image["Size"] <= 15 * 1024 * 1024, image["Size"]
    assert image["Config"]["Entrypoint"] == ["/s3-cloudfront-deploy"]
    labels = image["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    for label in ("title", "description", "source", "licenses"):
        assert labels[f"org.opencontainers.image.{label}"]
    container = docker("create", IMAGE).stdout.strip()
    try:
        exported = subprocess.run(["docker", "export", container], capture_output=True, timeout=120).stdout
    finally:
        docker("rm", container)
    names = {m.name.rstrip("/") for m in tarfile.open(fileobj=io.BytesIO(exported)).getmembers()}
    ours = {"s3-cloudfront-deploy", "tmp", "etc", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt"}
    # Docker adds its own mount points and resolver files to every container.
    dockers = {".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "proc", "sys", "etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf"}
    assert names - dockers == ours
    assert "bin/sh" not in names


def test_version_and_help_run_in_the_image():
    proc = docker("run", "--rm", IMAGE, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"s3-cloudfront-deploy {VERSION}"
    proc = docker("run", "--rm", IMAGE, "--help")
    assert proc.returncode == 0 and "S3_BUCKET (required)" in proc.stdout


def test_key_auth_deploy_with_a_relative_local_path(tmp_path, moto, s3, bucket):
    make_site(tmp_path / "public", {"index.html": "<p>from docker", "css/a.css": "a{}"})
    proc = bitbucket_run(
        moto,
        tmp_path,
        {"S3_BUCKET": bucket, "LOCAL_PATH": "public", "AWS_ACCESS_KEY_ID": STATIC_KEY_ID, "AWS_SECRET_ACCESS_KEY": STATIC_SECRET},
    )
    assert proc.returncode == 0, proc.output
    assert "✔ Deployment successful: 2 uploaded" in proc.output
    assert bucket_contents(s3, bucket) == {"index.html": b"<p>from docker", "css/a.css": b"a{}"}


def test_oidc_deploy(tmp_path, private_moto):
    moto, s3, bucket = private_moto, client(private_moto, "s3"), "oidc-in-docker"
    s3.create_bucket(Bucket=bucket)
    make_site(tmp_path / "dist", {"index.html": "<p>oidc in docker"})
    with moto.record() as requests:
        proc = bitbucket_run(moto, tmp_path, {"S3_BUCKET": bucket, "LOCAL_PATH": "dist", "AWS_OIDC_ROLE_ARN": ROLE}, oidc=True)
    assert proc.returncode == 0, proc.output
    assert "Authenticating with a OpenID Connect (OIDC) Web Identity Provider" in proc.output
    issued = [r["access_key_id"] for r in assumed_roles(moto) if r["session_name"] == "bitbucket-website-77"]
    s3_calls = [r for r in requests if "AssumeRoleWithWebIdentity" not in str(r.get("body"))]
    assert signing_key_ids(s3_calls) == {issued[-1]}
    assert bucket_contents(s3, bucket) == {"index.html": b"<p>oidc in docker"}


def test_validation_failure_exits_1(tmp_path, moto):
    proc = bitbucket_run(moto, tmp_path, {"S3_BUCKET": "x", "LOCAL_PATH": "missing", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    assert proc.returncode == 1
    assert "✖ Validation errors:" in proc.output
    assert f"{BUILD_DIR}/missing cannot be read" in proc.output


def test_deploy_and_invalidation_in_one_step(tmp_path, moto, s3, bucket):
    from test_cdn import distribution, invalidations
    from conftest import client

    cloudfront = client(moto, "cloudfront")
    dist_id, _ = distribution(cloudfront, bucket)
    variables = {
        "S3_BUCKET": bucket,
        "LOCAL_PATH": "public",
        "AWS_ACCESS_KEY_ID": STATIC_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": STATIC_SECRET,
        "DISTRIBUTION_ID": dist_id,
        "WAIT": "true",
    }
    make_site(tmp_path / "public", {"index.html": "v1", "app.js": "a"})
    assert bitbucket_run(moto, tmp_path, variables).returncode == 0
    (tmp_path / "public/index.html").write_text("v2")
    proc = bitbucket_run(moto, tmp_path, variables)
    assert proc.returncode == 0, proc.output
    assert list(invalidations(cloudfront, dist_id).values()) == [["/", "/index.html"]]
    assert "✔ Successfully created a cloudfront invalidation:" in proc.output
    report = tmp_path / ".bitbucket/pipelines/generated/pipeline/pipes/s3-cloudfront-deploy/report.json"
    assert report.exists(), "the report lands in the shared pipe storage, inside the clone"


def test_docker_kill_term_stops_the_pipe_clean(tmp_path, moto, s3, bucket):
    """PID 1 gets no default action for SIGTERM: the pipe handles it itself."""
    from test_stops import incomplete_uploads, proxy_for, site_with_big_file, wait_for_upload_in_flight

    clone = tmp_path / "clone"
    site_with_big_file(clone / "public")
    proxy = proxy_for(moto, part_delay=1.0)
    name = f"pipe-stop-{bucket}"
    variables = {
        "S3_BUCKET": bucket,
        "LOCAL_PATH": "public",
        "AWS_ACCESS_KEY_ID": STATIC_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": STATIC_SECRET,
        "AWS_ENDPOINT_URL": proxy.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "BITBUCKET_BUILD_NUMBER": "78",
    }
    args = ["docker", "run", "--name", name, "--network", "host", "-v", f"{clone}:{BUILD_DIR}", "-w", BUILD_DIR]
    for key, value in variables.items():
        args += ["-e", f"{key}={value}"]
    proc = subprocess.Popen([*args, IMAGE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_upload_in_flight(s3, bucket, proc)
        sent = time.monotonic()
        assert docker("kill", "-s", "TERM", name).returncode == 0
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
        code = json.loads(docker("inspect", name).stdout)[0]["State"]["ExitCode"]
    finally:
        proxy.stop()
        docker("rm", "-f", name)
    print(f"\nSIGTERM to exit (docker kill -s TERM): {took:.2f} s")
    assert code == 143, output
    assert took <= 2.5, took
    assert "✖ stopped by SIGTERM" in output
    assert incomplete_uploads(s3, bucket) == []
