"""scripts/listserver.py, the benchmark's ListObjectsV2 server, answers as
moto does: the same small key set is put into moto and served by
listserver, and every page of the same queries is compared, field by field
(continuation tokens are opaque: each server's are followed on its own)."""

import itertools
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, base_env, run_pipe

ODD_KEYS = [
    "a", "a-b", "a.txt", "a/", "a/b", "a/b/", "a/b/c", "a//d", "a0", "a/ b", "a/+%&<",
    "b c", "b+c", "b%c", "b&c", "b<c>", "b'\"", "é/ü", "日本/語.html", "x/", "y/z/", " lead", "~t",
    "sp ace/x y", "q?x=1", "h#1", "p/q/r/s", "p/q-1", "p/q.txt", "p/q0/t",
]  # fmt: skip

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
IGNORED = ("LastModified", "ChecksumAlgorithm")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, moto):
    """(moto's endpoint, listserver's endpoint, bucket) serving ODD_KEYS."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = "listserver-check"
    s3.create_bucket(Bucket=bucket)
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    keys_file = tmp_path_factory.mktemp("listserver") / "keys.json"
    keys_file.write_text(json.dumps(ODD_KEYS))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/listserver.py"), "--keys-file", str(keys_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ready = proc.stdout.readline().split()
    assert ready[:1] == ["ready"], "listserver did not start"
    yield moto.endpoint, ready[1], bucket
    proc.terminate()
    proc.wait(10)


def get(endpoint, bucket, params):
    url = f"{endpoint}/{bucket}?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def page(endpoint, bucket, params):
    """The answer's fields, as text, the tokens reduced to whether they are
    there. Left out: LastModified (moto's is the time of the put) and
    ChecksumAlgorithm (boto3 puts with a CRC32; the pipe reads neither)."""
    status, body = get(endpoint, bucket, params)
    assert status == 200, body
    root = ET.fromstring(body)
    fields = {}
    for child in root:
        tag = child.tag.removeprefix(NS)
        if tag == "Contents":
            fields.setdefault("Contents", []).append(
                {c.tag.removeprefix(NS): c.text for c in child if c.tag.removeprefix(NS) not in IGNORED}
            )
        elif tag == "CommonPrefixes":
            fields.setdefault("CommonPrefixes", []).append(child.find(NS + "Prefix").text)
        elif tag == "NextContinuationToken":
            fields[tag] = True
        elif tag == "ContinuationToken":
            # S3 echoes the token it was sent (its ListObjectsV2 reference);
            # moto does not.
            continue
        else:
            fields[tag] = child.text
    token = root.find(NS + "NextContinuationToken")
    return fields, (token.text if token is not None else None)


def pages(endpoint, bucket, params):
    out, token = [], None
    while True:
        fields, token = page(endpoint, bucket, dict(params, **({"continuation-token": token} if token else {})))
        out.append(fields)
        if token is None:
            return out
        assert len(out) < 100, "pagination does not end"


QUERIES = [
    dict(
        {"list-type": "2", "prefix": prefix},
        **({"delimiter": "/"} if delimiter else {}),
        **({"max-keys": str(max_keys)} if max_keys else {}),
        **({"start-after": start_after} if start_after else {}),
        **({"encoding-type": "url"} if url else {}),
    )
    for i, (prefix, delimiter, max_keys) in enumerate(
        itertools.product(["", "a", "a/", "b", "p/", "é/", "nope"], [False, True], [1, 2, 3, None])
    )
    for start_after, url in [([None, "a.txt", "a/b", "b", "zzz", "p/q"][i % 6], i % 2 == 0)]
]


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: urllib.parse.urlencode(p))
def test_pages_as_moto(servers, params):
    moto_endpoint, listserver, bucket = servers
    assert pages(listserver, bucket, params) == pages(moto_endpoint, bucket, params)


def test_odd_keys_are_encoded_as_moto(servers):
    moto_endpoint, listserver, bucket = servers
    for delimiter in ({}, {"delimiter": "/"}):
        params = {"list-type": "2", "encoding-type": "url", **delimiter}
        ours = page(listserver, bucket, params)[0]
        assert ours == page(moto_endpoint, bucket, params)[0]
    assert any(c["Key"] == "b%20c" for c in ours["Contents"]), ours


def test_a_dry_run_deploy_lists_it(servers, tmp_path):
    """What a deploy sends besides ListObjectsV2 (the manifest's GetObject,
    ListMultipartUploads) is answered, so that the pipe can be timed."""
    _, listserver, bucket = servers
    empty = tmp_path / "site"
    empty.mkdir()

    class Endpoint:
        endpoint = listserver

    env = base_env(Endpoint, S3_BUCKET=bucket, LOCAL_PATH=str(empty), DRY_RUN="true", REPORT_FILE=tmp_path / "r.json")
    proc = run_pipe(env)
    assert proc.returncode == 0, proc.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["kept"] == len(ODD_KEYS)
