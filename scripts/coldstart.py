#!/usr/bin/env python3
"""Cold start: from launching the pipe to its first request reaching S3, for
the container (docker run, as Bitbucket runs it) and for the bare binary, in
one run, alternating. A local listener stands in for S3 and only notes when
the first connection arrives."""

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time


def first_request(cmd, port):
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        server.settimeout(60)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn, _ = server.accept()
        elapsed = time.perf_counter() - started
        conn.close()
    proc.kill()
    proc.wait()
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--image", default="s3-cloudfront-deploy:local")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    site = tempfile.mkdtemp()
    open(os.path.join(site, "index.html"), "w").write("x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "S3_BUCKET": "cold",
        "LOCAL_PATH": site,
    }
    bare = ["env", "-i", *[f"{k}={v}" for k, v in env.items()], os.path.abspath(args.bin)]
    docker = ["docker", "run", "--rm", "--network", "host", "-v", f"{site}:{site}", "-w", site]
    for k, v in env.items():
        docker += ["-e", f"{k}={v}"]
    docker.append(args.image)
    times = {"container": [], "bare binary": []}
    for i in range(args.runs):
        order = [("container", docker), ("bare binary", bare)]
        for name, cmd in order if i % 2 == 0 else reversed(order):
            times[name].append(first_request(cmd, port))
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values) * 1000:.0f} ms to the first request ({args.runs} runs)")
    ratio = statistics.median(times["container"]) / statistics.median(times["bare binary"])
    print(f"container / bare binary = {ratio:.1f}x")


if __name__ == "__main__":
    main()
