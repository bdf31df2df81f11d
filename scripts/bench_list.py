#!/usr/bin/env python3
"""How long listing a large prefix takes: scripts/listserver.py serves
--keys generated keys (a site-like tree) with --latency-ms before every
answer, and each tool lists the whole bucket.

- this pipe: a real deploy (DRY_RUN, an empty LOCAL_PATH) timed by its own
  JSON report's "scan and list" phase, which is the listing (scanning an
  empty folder takes no time); the run's wall time is shown too. The pipe
  itself rather than a test harness, so that what is timed is what users
  run: the release binary, its client settings and its runtime.
- --baseline-bin: the same for another build (e.g. main before parallel
  listing), to show before and after on one server.
- rclone lsf -R --fast-list, when rclone is installed: the peer's recursive
  listing, one chain of pages.

LIST requests are counted at the server. Every tool must see --keys keys.

    .venv/bin/python scripts/bench_list.py --bin target/x86_64-unknown-linux-gnu/release/s3-cloudfront-deploy
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


class ListServer:
    def __init__(self, keys, latency_ms):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "listserver.py"), "--keys", str(keys), "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise SystemExit("listserver did not start")
        self.endpoint = line[1]

    def stats(self):
        return json.loads(urllib.request.urlopen(self.endpoint + "/_listserver/stats").read())

    def reset(self):
        urllib.request.urlopen(urllib.request.Request(self.endpoint + "/_listserver/reset", method="POST", data=b""))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def pipe(binary, server, work):
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    report = work / "report.json"
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "S3_BUCKET": "bench",
        "LOCAL_PATH": str(empty),
        "DRY_RUN": "true",
        "REPORT_FILE": str(report),
        "DEBUG": "false",
    }
    start = time.monotonic()
    proc = subprocess.run([str(binary)], env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{binary} failed:\n{proc.stdout}{proc.stderr}")
    data = json.loads(report.read_text())
    listing = next(t["seconds"] for t in data["timings"] if t["phase"] == "scan and list")
    # With DELETE_FLAG off, every listed object is kept.
    remote = data["totals"]["kept"]
    return {"listing s": round(listing, 2), "wall s": round(wall, 2), "objects": remote}


def rclone(server):
    # rclone's SDK cannot load a custom CA bundle into its transport.
    env = dict(
        {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
        RCLONE_CONFIG="/dev/null",
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="bench",
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="bench",
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG_BENCH_LIST_VERSION="2",
    )
    start = time.monotonic()
    proc = subprocess.run(
        ["rclone", "lsf", "-R", "--fast-list", "--files-only", "bench:bench"], env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"rclone failed:\n{proc.stderr}")
    return {"listing s": round(wall, 2), "wall s": round(wall, 2), "objects": len(proc.stdout.splitlines())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--baseline-bin", help="another build of the pipe to compare with")
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--latency-ms", type=float, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-list-"))
    server = ListServer(args.keys, args.latency_ms)
    runs = [("this pipe", lambda: pipe(args.bin, server, work))]
    if args.baseline_bin:
        runs.append(("baseline pipe", lambda: pipe(args.baseline_bin, server, work)))
    if shutil.which("rclone"):
        runs.append(("rclone lsf -R --fast-list", lambda: rclone(server)))
    else:
        print("rclone is not installed: apt-get install rclone", file=sys.stderr)
    results = {}
    try:
        for name, run in runs:
            server.reset()
            result = run()
            result["LIST requests"] = server.stats().get("ListObjectsV2", 0)
            results[name] = result
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.keys:,} keys, {args.latency_ms:g} ms a request")
    print(f"{'tool':<28}{'listing s':>10}{'wall s':>8}{'LIST requests':>15}{'objects':>9}")
    for name, r in results.items():
        print(f"{name:<28}{r['listing s']:>10}{r['wall s']:>8}{r['LIST requests']:>15}{str(r['objects']):>9}")
    print(json.dumps({"keys": args.keys, "latency ms": args.latency_ms, "results": results}))
    wrong = [n for n, r in results.items() if r["objects"] is not None and r["objects"] != args.keys]
    if wrong:
        raise SystemExit(f"listed a wrong number of objects: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
