"""Integration test harness: a real moto server on 127.0.0.1 and the real
release binary, run the way Bitbucket runs it (environment variables only)."""

import base64
import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("PIPE_BIN", ROOT / "target/x86_64-unknown-linux-gnu/release/s3-cloudfront-deploy")).resolve()
REGION = "us-east-1"
STATIC_KEY_ID = "AKIASTATICKEYEXAMPLE"
STATIC_SECRET = "static/secret/never/printed/EXAMPLEKEY"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """One moto server for the session. Its request recorder shows what the
    binary really sent; tests run one at a time, so a recording is theirs."""

    def __init__(self, tmp):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.recording = tmp / "moto_recording"
        moto_server = Path(sys.executable).parent / "moto_server"
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self.recording))
        self.log = open(tmp / "moto.log", "w")
        self.proc = subprocess.Popen(
            [str(moto_server), "-H", "127.0.0.1", "-p", str(self.port)], stdout=self.log, stderr=self.log, env=env
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)
                break
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto did not start: see {tmp / 'moto.log'}")
                time.sleep(0.1)

    def api(self, path):
        req = urllib.request.Request(self.endpoint + "/moto-api/" + path, method="POST", data=b"")
        return urllib.request.urlopen(req, timeout=10).read()

    @contextlib.contextmanager
    def record(self):
        """Yields a list that, after the block, holds every request the
        server received during it: dicts with method, url, headers, body."""
        self.api("recorder/reset-recording")
        self.api("recorder/start-recording")
        requests = []
        try:
            yield requests
        finally:
            self.api("recorder/stop-recording")
            raw = urllib.request.urlopen(self.endpoint + "/moto-api/recorder/download-recording").read().decode()
            # The recorder appends JSON objects without separators.
            decoder = json.JSONDecoder()
            text, i = raw.strip(), 0
            while i < len(text):
                obj, end = decoder.raw_decode(text, i)
                if obj.get("body_encoded") and obj.get("body"):
                    obj["body"] = base64.b64decode(obj["body"])
                requests.append(obj)
                i = end
                while i < len(text) and text[i].isspace():
                    i += 1

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def private_moto(tmp_path_factory):
    """A server of the test's own, for tests that read moto's model dump
    (/moto-api/data.json), which fails once other tests' objects are gone."""
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def client(moto, service):
    return boto3.client(
        service,
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3(moto):
    return client(moto, "s3")


@pytest.fixture
def bucket(s3):
    name = "t-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


def writes(requests):
    """The requests that change a bucket."""
    return [r for r in requests if r["method"] in ("PUT", "POST", "DELETE")]


def site_writes(requests):
    """Writes to the site's objects, leaving out the deploy manifest."""
    return [r for r in writes(requests) if ".s3-cloudfront-deploy-manifest.json" not in r["url"]]


def base_env(moto, **extra):
    """A clean environment: nothing leaks in from the machine running the tests."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": STATIC_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": STATIC_SECRET,
        "AWS_ENDPOINT_URL": moto.endpoint,
        # No profile file or instance metadata lookups from the test machine.
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def run_pipe(env, cwd=None, args=()):
    proc = subprocess.run([str(BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    proc.output = proc.stdout + proc.stderr
    return proc


@pytest.fixture
def deploy(moto, bucket):
    """Runs the pipe on a folder to the test's bucket; returns the process
    (with .output) and asserts nothing about it."""

    def run(local_path, prefix="", env=None, **extra):
        target = bucket + ("/" + prefix if prefix else "")
        return run_pipe(base_env(moto, S3_BUCKET=target, LOCAL_PATH=str(local_path), **(env or {}), **extra))

    return run


def make_site(root, files):
    for name, body in files.items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return Path(root)


MANIFEST = ".s3-cloudfront-deploy-manifest.json"


def bucket_contents(s3, bucket, prefix=""):
    """{key: bytes} of every object under the prefix but the pipe's deploy
    manifest, which is not part of the site."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            if o["Key"].endswith(MANIFEST):
                continue
            out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def manifest_text(s3, bucket, key=MANIFEST):
    """The manifest object's JSON text. Since 0.7.0 it is stored
    gzip-compressed, with Content-Encoding: gzip."""
    got = s3.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    assert got.get("ContentEncoding") == "gzip" and body[:2] == b"\x1f\x8b", body[:20]
    return gzip.decompress(body).decode()


def manifest_json(s3, bucket, key=MANIFEST):
    """The manifest object, parsed (see manifest_text)."""
    return json.loads(manifest_text(s3, bucket, key))


def stamped_with_manifest(s3, bucket, manifest_key=MANIFEST, manifest_bucket=None, prefix=""):
    """The site's keys under `prefix` stamped in the manifest's own second
    or later, sorted. The manifest cannot vouch for their headers, so the
    next run reads them with HeadObject: after a deploy that wrote no more
    than CONCURRENCY objects in its last second, those (the manifest does
    not wait for the next second then; README, "When an entry counts")."""
    stamp = s3.head_object(Bucket=manifest_bucket or bucket, Key=manifest_key)["LastModified"]
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["LastModified"] >= stamp and not o["Key"].endswith(MANIFEST)]
    return sorted(keys)


def head_object_keys(requests, bucket):
    """The keys of `bucket` HeadObject asked for, sorted."""
    marker = f"/{bucket}/"
    return sorted(
        urllib.parse.unquote(urllib.parse.urlsplit(r["url"]).path.split(marker, 1)[1])
        for r in requests
        if r["method"] == "HEAD" and marker in r["url"]
    )


def assert_quiet(requests, bucket, fresh):
    """A redeploy of an unchanged folder: no write but the manifest, which
    only a run that read headers rewrites, and HeadObject only for `fresh`
    (what [`stamped_with_manifest`] gave before the run)."""
    assert head_object_keys(requests, bucket) == fresh
    assert (site_writes if fresh else writes)(requests) == [], writes(requests)


def assert_redeploy_quiet(moto, s3, bucket, deploy_again, **where):
    """Runs `deploy_again()` (a redeploy of an unchanged folder, which must
    succeed) and checks it with [`assert_quiet`] against the keys
    [`stamped_with_manifest`] (given `where`) names before it. Returns the
    run and the requests it sent."""
    fresh = stamped_with_manifest(s3, bucket, **where)
    with moto.record() as requests:
        proc = deploy_again()
    assert proc.returncode == 0, proc.output
    assert_quiet(requests, bucket, fresh)
    return proc, requests
