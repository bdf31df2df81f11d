#!/usr/bin/env python3
"""Requests of a no-change redeploy, counted at the server: a folder of N
small files is deployed once to a fresh bucket on a local moto server, then
again unchanged while moto's request recorder runs. Prints the count of each
S3 operation (ListObjectsV2, GetObject, HeadObject, PutObject, CopyObject,
DeleteObjects) of the second run, with its peak RSS and CPU seconds (GNU
time), as JSON.

    .venv/bin/python scripts/redeploy_requests.py --bin target/x86_64-unknown-linux-gnu/release/s3-cloudfront-deploy
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import Server, run_tool, tools  # noqa: E402


def operation(req):
    method, url = req["method"], req["url"]
    query = url.split("?", 1)[1] if "?" in url else ""
    headers = {k.lower() for k in req["headers"]}
    if method == "GET":
        if "list-type=2" in query:
            return "ListObjectsV2"
        return "ListMultipartUploads" if query.startswith("uploads") else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return f"{method} {query}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="redeploy-"))
    server = Server(work)
    try:
        site = work / "site"
        for i in range(args.files):
            path = site / f"d{i % 40}" / f"f{i}.{('html', 'css', 'js', 'json', 'svg')[i % 5]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"file {i}\n" * (1 + i % 20))
        server.s3.create_bucket(Bucket="site")
        cmd, env = tools(args.bin, server.endpoint, site)["this pipe"]("site")
        for run in ("first", "redeploy"):
            if run == "redeploy":
                server.start()
            _, rss, cpu, returncode, output = run_tool(cmd, env)
            if returncode != 0:
                raise SystemExit(f"{run} failed:\n{output}")
        server.post("/moto-api/recorder/stop-recording")
        counts = dict.fromkeys(("ListObjectsV2", "GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObjects"), 0)
        decoder, text, i = json.JSONDecoder(), server.recording.read_text().strip(), 0
        while i < len(text):
            req, i = decoder.raw_decode(text, i)
            while i < len(text) and text[i].isspace():
                i += 1
            op = operation(req)
            counts[op] = counts.get(op, 0) + 1
        last = output.strip().splitlines()[-1]
        print(json.dumps({"files": args.files, "requests": counts, "peak RSS MB": round(rss, 1), "CPU s": cpu, "last line": last}))
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
