#!/usr/bin/env python3
"""This pipe against the tools users would pick instead, on one local moto
server, in one run, on the same generated site: `aws s3 sync` (the command
atlassian/aws-s3-deploy runs), `s5cmd sync` (256 workers) and
`rclone sync --checksum --fast-list`. With --latency-ms every byte goes
through a TCP proxy (examples/latency_proxy.rs) that delays each direction
by half that, so every request costs one round trip more, as a distant
region does, whatever the tool.

Phases, each run by both tools on their own bucket:
  a. first deploy;
  b. redeploy after touching every mtime (a fresh clone in CI);
  c. redeploy after editing 1% of the files (half of the edits keep the size)
     and deleting 1%, with every mtime then reset to one fixed time, as
     reproducible builds (SOURCE_DATE_EPOCH) and restored artifacts do;
  d. redeploy after someone else re-uploaded 5 objects with the same bytes
     by another tool (a multipart upload: new ETags, another Content-Type).

Requests, writes, bytes and HeadObject calls are counted at the server
(moto's request recorder). "wrong bytes" is how many keys differ from the
folder afterwards; "wrong Content-Type" how many keys are served with another
Content-Type than the same tool's first deploy gave them (phase d's other
tool leaves binary/octet-stream: a redeploy that keeps it breaks the site). Peak RSS and CPU seconds are the tool process's own (GNU time),
without the server or the proxy.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

VENV_BIN = Path(sys.executable).parent


class LatencyProxy:
    """examples/latency_proxy.rs in front of `port`, adding `ms` per round trip."""

    def __init__(self, binary, port, ms):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(binary), f"127.0.0.1:{self.port}", f"127.0.0.1:{port}", str(ms)], stdout=subprocess.PIPE
        )
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"{binary} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(root, n, seed):
    """n files, sizes drawn like a built site: mostly small text, some images,
    a few large media files."""
    rng = random.Random(seed)
    for i in range(n):
        r = rng.random()
        if r < 0.80:
            size, ext = rng.randint(200, 40_000), rng.choice(["html", "css", "js", "json", "svg"])
        elif r < 0.99:
            size, ext = rng.randint(40_000, 400_000), rng.choice(["png", "jpg", "webp"])
        else:
            size, ext = rng.randint(4_000_000, 12_000_000), "mp4"
        path = root / f"d{i % 40}" / f"s{i % 7}" / f"f{i}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))


def overwrite_same_bytes(s3, bucket, root, count):
    keys = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())[:count]
    for key in keys:
        mpu = s3.create_multipart_upload(Bucket=bucket, Key=key)
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=(root / key).read_bytes())
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=mpu["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )


def set_mtimes(root, when):
    for p in root.rglob("*"):
        os.utime(p, (when, when))


def mutate(root, fraction, seed):
    """Edits `fraction` of the files (half keeping their size) and deletes
    another `fraction`."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    count = max(2, int(len(files) * fraction))
    chosen = rng.sample(files, 2 * count)
    for i, p in enumerate(chosen[:count]):
        data = bytearray(p.read_bytes() or b"\0")
        if i % 2 == 0:
            data[len(data) // 2] ^= 0xFF  # same size
        else:
            data += b"appended"
        p.write_bytes(bytes(data))
    for p in chosen[count:]:
        p.unlink()


class Server:
    def __init__(self, workdir):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.recording = workdir / "recording"
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self.recording))
        self.log = open(workdir / "moto.log", "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=self.log,
            env=env,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
        )

    def post(self, path):
        urllib.request.urlopen(urllib.request.Request(self.endpoint + path, method="POST", data=b""))

    def start(self):
        self.post("/moto-api/recorder/reset-recording")
        self.post("/moto-api/recorder/start-recording")

    def stop(self):
        """Counts of the recorded requests."""
        self.post("/moto-api/recorder/stop-recording")
        counts = {"requests": 0, "written": 0, "copied": 0, "bytes": 0, "deleted": 0, "head": 0}
        decoder = json.JSONDecoder()
        text = self.recording.read_text()
        i = 0
        while i < len(text):
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            req, i = decoder.raw_decode(text, i)
            counts["requests"] += 1
            method, url, headers = req["method"], req["url"], req["headers"]
            h = {k.lower(): v for k, v in headers.items()}
            size = int(h.get("x-amz-decoded-content-length") or h.get("content-length") or 0)
            if method == "PUT":
                counts["bytes"] += size
                if "x-amz-copy-source" in h:
                    counts["copied"] += 1
                elif "partNumber=" not in url:
                    counts["written"] += 1
            elif method == "POST" and "uploadId=" in url:
                counts["written"] += 1  # CompleteMultipartUpload
            elif method == "POST" and "delete" in url.split("?", 1)[-1]:
                body = req.get("body") or ""
                if req.get("body_encoded"):
                    body = base64.b64decode(body).decode(errors="replace")
                counts["deleted"] += body.count("<Key>")
            elif method == "DELETE":
                counts["deleted"] += 1
            elif method == "HEAD":
                counts["head"] += 1
        return counts

    def contents(self, bucket):
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                if o["Key"].endswith(".s3-cloudfront-deploy-manifest.json"):
                    continue  # the pipe's own bookkeeping, not part of the site
                got = self.s3.get_object(Bucket=bucket, Key=o["Key"])
                out[o["Key"]] = (hashlib.md5(got["Body"].read()).hexdigest(), got.get("ContentType"))
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def local_contents(root):
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def wrong(server, bucket, root, types):
    """(keys whose bytes differ from the folder's, keys whose Content-Type
    differs from `types`, the Content-Type of each key as read now).
    `types` is what the same tool set on its first deploy: a redeploy that
    leaves another tool's Content-Type in place serves the site wrong
    (browsers refuse a stylesheet or a script of the wrong type)."""
    remote, local = server.contents(bucket), local_contents(root)
    content = sum(1 for k in remote.keys() | local.keys() if remote.get(k, (None,))[0] != local.get(k))
    typed = sum(1 for k, (_, t) in remote.items() if k in types and t != types[k])
    return content, typed, {k: t for k, (_, t) in remote.items()}


GNU_TIME = "/usr/bin/time"


def run_tool(cmd, env):
    """Runs a command; returns (seconds, peak RSS in MB, CPU seconds,
    returncode, output). GNU time reports the tool's own peak RSS: a child
    forked from this (large) Python process would count the parent's pages."""
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-f", "%M %U %S", "-o", rss.name, *cmd],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        seconds = time.perf_counter() - started
        peak_kb, user, system = rss.read().strip().splitlines()[-1].split()
    cpu = float(user) + float(system)
    return seconds, int(peak_kb) / 1024, cpu, proc.returncode, proc.stdout.decode(errors="replace")


TOOLS = ("this pipe", "aws s3 sync", "s5cmd", "rclone")


def tools(binary, endpoint, site, pipe_env=()):
    """How each tool syncs `site` to a bucket through `endpoint`; `pipe_env`
    is (name, value) pairs added to this pipe's variables."""
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    rclone = {
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "bench",
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "bench",
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG": "/dev/null",
    }
    return {
        "this pipe": lambda bucket: (
            [str(binary)],
            dict(env, S3_BUCKET=bucket, LOCAL_PATH=str(site), DELETE_FLAG="true", **dict(pipe_env)),
        ),
        "aws s3 sync": lambda bucket: (
            [str(VENV_BIN / "aws"), "s3", "sync", str(site), f"s3://{bucket}", "--delete", "--only-show-errors"],
            env,
        ),
        "s5cmd": lambda bucket: (
            [str(VENV_BIN / "s5cmd"), "--endpoint-url", endpoint, "sync", "--delete", f"{site}/", f"s3://{bucket}/"],
            env,
        ),
        # rclone's SDK cannot load a custom CA bundle into its transport.
        "rclone": lambda bucket: (
            ["rclone", "sync", "--checksum", "--fast-list", str(site), f"bench:{bucket}"],
            {k: v for k, v in dict(env, **rclone).items() if k != "AWS_CA_BUNDLE"},
        ),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=1, help="paired runs; the order of the tools alternates")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=0, help="added to every request by a proxy")
    ap.add_argument(
        "--proxy",
        default="target/x86_64-unknown-linux-gnu/release/examples/latency_proxy",
        help="the latency proxy's binary (make bench builds it)",
    )
    ap.add_argument("--tools", default=",".join(TOOLS), help="which tools, comma-separated")
    ap.add_argument(
        "--pipe-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for this pipe, e.g. CONCURRENCY=128; repeatable",
    )
    ap.add_argument("--phases", default="abcd", help="which phases, in order: a first phase needs the ones before it")
    args = ap.parse_args()
    if not args.phases or args.phases != "abcd"[: len(args.phases)]:
        raise SystemExit(f"--phases {args.phases!r}: expected a start of abcd (a, ab, abc or abcd)")
    pipe_env = []
    for item in args.pipe_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--pipe-env {item!r}: expected NAME=VALUE, e.g. CONCURRENCY=128")
        pipe_env.append((name, value))
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} is needed to measure peak memory: apt-get install time")
    chosen = [t.strip() for t in args.tools.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    server = Server(work)
    proxy = None
    endpoint = server.endpoint
    if args.latency_ms:
        proxy = LatencyProxy(args.proxy, server.port, args.latency_ms)
        endpoint = proxy.endpoint
    results = {}  # (phase, tool) -> list of dicts
    try:
        for run in range(args.runs):
            site = work / f"site{run}"
            generate(site, args.files, args.seed)
            size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
            print(f"run {run + 1}: {args.files} files, {size / 1e6:.1f} MB", file=sys.stderr)
            copies = {}
            names = [n for n in tools(args.bin, endpoint, site) if n in chosen]
            if run % 2:
                names.reverse()
            for name in names:
                copies[name] = work / f"site{run}-{name.replace(' ', '-')}"
                shutil.copytree(site, copies[name])
            buckets = {name: f"bench-{run}-{i}" for i, name in enumerate(names)}
            for b in buckets.values():
                server.s3.create_bucket(Bucket=b)
            failed = set()
            types = {}  # tool -> {key: the Content-Type its first deploy set}
            for phase in args.phases:
                for name in [n for n in names if n not in failed]:
                    root = copies[name]
                    if phase == "d":
                        overwrite_same_bytes(server.s3, buckets[name], root, 5)
                    if phase == "b":
                        set_mtimes(root, time.time())
                    if phase == "c":
                        mutate(root, 0.01, args.seed + run)
                        set_mtimes(root, 1_577_836_800)  # 2020-01-01, a fixed build time
                    cmd, env = tools(args.bin, endpoint, root, pipe_env)[name](buckets[name])
                    server.start()
                    secs, rss, cpu, rc, out = run_tool(cmd, env)
                    counts = server.stop()
                    if rc != 0:
                        # A tool that fails is reported, not waited for.
                        print(out[-2000:], file=sys.stderr)
                        print(f"  {phase} {name}: FAILED (exit {rc}); left out from here", file=sys.stderr)
                        failed.add(name)
                        continue
                    content, typed, now = wrong(server, buckets[name], root, types.get(name, {}))
                    types.setdefault(name, now)
                    counts.update(seconds=secs, rss=rss, cpu=cpu, wrong=content, wrong_type=typed)
                    results.setdefault((phase, name), []).append(counts)
                    print(f"  {phase} {name}: {secs:.2f} s {counts}", file=sys.stderr)
    finally:
        if proxy:
            proxy.stop()
        server.close()
        shutil.rmtree(work, ignore_errors=True)

    labels = {
        "a": "a. first deploy",
        "b": "b. touch all mtimes",
        "c": "c. 1% edited, 1% deleted",
        "d": "d. 5 re-uploaded by another tool",
    }
    settings = "".join(f", {name}={value}" for name, value in pipe_env)
    print(
        f"\n{args.files} files, {args.latency_ms:g} ms added per request, "
        f"{args.runs} paired run(s), medians{settings}\n"
    )
    print(
        "| phase | tool | wall s | requests | objects written | headers fixed in place | MB uploaded "
        "| deleted | HeadObject | CPU s | peak RSS MB | wrong bytes | wrong Content-Type | this pipe / tool |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for phase in args.phases:
        row = {}
        for name in names:
            rs = results.get((phase, name))
            if not rs:
                print(f"| {labels[phase]} | {name} | failed | | | | | | | | | | | |")
                continue
            row[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        ours = row.get("this pipe", {}).get("seconds")
        for name, med in row.items():
            ratio = f"{ours / med['seconds']:.2f}x" if ours else ""
            print(
                f"| {labels[phase]} | {name} | {med['seconds']:.2f} | {med['requests']:.0f} "
                f"| {med['written']:.0f} | {med['copied']:.0f} | {med['bytes'] / 1e6:.1f} "
                f"| {med['deleted']:.0f} | {med['head']:.0f} | {med['cpu']:.2f} | {med['rss']:.0f} "
                f"| {med['wrong']:.0f} | {med['wrong_type']:.0f} | {ratio} |"
            )
        correct = {n: m["seconds"] for n, m in row.items() if n != "this pipe" and not (m["wrong"] or m["wrong_type"])}
        if ours and correct:
            peer = min(correct, key=correct.get)
            verdicts.append(f"{labels[phase]}: this pipe / fastest correct peer ({peer}) = {ours / correct[peer]:.2f}x")
        elif ours:
            verdicts.append(f"{labels[phase]}: no other tool was correct")
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
