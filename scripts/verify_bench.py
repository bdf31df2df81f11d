#!/usr/bin/env python3
"""What VERIFY costs on the benchmark's site: 2,000 generated files deployed
to a local moto server, then 1% edited (half keeping their size) and 1%
deleted, as `make bench`'s phase c, and deployed again with VERIFY through
the test suite's stand-in for the CDN (test/cdnstub.py, one Python process
in front of moto). Each round uses a fresh bucket; medians are printed.

    .venv/bin/python scripts/verify_bench.py --bin target/x86_64-unknown-linux-gnu/release/s3-cloudfront-deploy

Requests and bytes are counted at the stand-in; seconds are the `verify`
phase of the pipe's report and the whole second deploy's wall time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))

from bench import Server, generate, mutate  # noqa: E402
from cdnstub import CdnStub  # noqa: E402


def run(binary, server, site, bucket, report, **extra):
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
        "S3_BUCKET": bucket,
        "LOCAL_PATH": str(site),
        "DELETE_FLAG": "true",
        "REPORT_FILE": str(report),
        **extra,
    }
    started = time.monotonic()
    proc = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"the pipe failed:\n{proc.stdout}{proc.stderr}")
    return took, json.loads(report.read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = Path(args.bin).resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = Server(tmp)
        try:
            for n in range(args.rounds):
                bucket = f"verify-bench-{n}"
                server.s3.create_bucket(Bucket=bucket)
                site = tmp / f"site{n}"
                generate(site, args.files, seed=7)
                run(binary, server, site, bucket, tmp / "first.json")
                mutate(site, 0.01, seed=11 + n)
                stub = CdnStub(server.s3, bucket)
                try:
                    wall, report = run(binary, server, site, bucket, tmp / "second.json", VERIFY="true", VERIFY_URL=stub.url)
                finally:
                    stub.close()
                v = report["verification"]
                verify_s = next(t["seconds"] for t in report["timings"] if t["phase"] == "verify")
                rows.append(
                    {
                        "changed keys": v["candidates"],
                        "checked": v["checked"],
                        "requests": len(stub.requests),
                        "KB served": stub.bytes_served / 1000,
                        "verify s": verify_s,
                        "deploy wall s": wall,
                        "failed": v["failed"],
                    }
                )
                print(f"round {n + 1}: {json.dumps(rows[-1])}", flush=True)
        finally:
            server.close()
    print("median:", json.dumps({k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}))


if __name__ == "__main__":
    os.umask(0o022)
    main()
