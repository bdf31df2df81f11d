"""A stand-in for the CDN in front of moto, for the VERIFY tests and the
measurement: it serves the bucket's objects by path below a prefix, as
CloudFront serves an S3 origin (the bytes as stored, status, ETag,
Content-Type, Content-Encoding, Cache-Control, X-Cache), and as told per
path: what a cache still holds (`freeze`: old bytes, a deleted object), a
wrong Content-Type, another status (403), or a redirect. Optionally it
compresses what is stored uncompressed with brotli, weakening the ETag, as
CloudFront's "Compress objects automatically" does, and serves a folder's
index document at the folder's URL. Every request is recorded with its
headers."""

import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

import brotli

from faultproxy import QuietServer

PASSED = ("etag", "content-type", "content-encoding", "cache-control", "last-modified")


class CdnStub:
    """`s3`: a client of the origin, signing as CloudFront's origin access
    control does; keys are `prefix/` + the path.
    `missing`: the status of a missing key (S3 answers 403 to a reader
    that may not list the bucket, as CloudFront with OAC and no
    s3:ListBucket). `index`: `dir/` serves `dir/<index>`. `tls`: (certificate
    file, key file) to serve HTTPS."""

    def __init__(self, s3, bucket, prefix="", missing=404, index=None, compress=False, tls=None):
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.missing = missing
        self.index = index
        self.compress = compress
        self.lock = threading.Lock()
        self.faults = {}
        self.requests = []
        self.bytes_served = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with stub.lock:
                    stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    fault = stub.faults.get(self.path)
                if fault and fault[0] == "frozen":
                    status, headers, body = fault[1]
                    headers = dict(headers, **{"x-cache": "Hit from cloudfront", "age": "120"})
                else:
                    status, headers, body = stub.fetch(self.path)
                    headers["x-cache"] = "Miss from cloudfront"
                if fault and fault[0] == "type":
                    headers["content-type"] = fault[1]
                if fault and fault[0] == "status":
                    status, headers, body = fault[1], {"content-type": "text/html"}, b"<h1>refused"
                if fault and fault[0] == "redirect":
                    status, headers, body = 301, {"location": fault[1]}, b""
                accepts = self.headers.get("Accept-Encoding", "")
                if stub.compress and status == 200 and "content-encoding" not in headers and "br" in accepts:
                    body = brotli.compress(body)
                    headers["content-encoding"] = "br"
                    if headers.get("etag", "").startswith('"'):
                        headers["etag"] = "W/" + headers["etag"]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with stub.lock:
                    stub.bytes_served += len(body)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fetch(self, path):
        """What the origin holds for `path`: (status, headers, body)."""
        relative = urllib.parse.unquote(path.split("?")[0].lstrip("/"))
        if self.index and (relative == "" or relative.endswith("/")):
            relative += self.index
        key = f"{self.prefix}/{relative}" if self.prefix else relative
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            body = b"<Error><Code>AccessDenied</Code></Error>" if self.missing == 403 else b"<Error><Code>NoSuchKey</Code></Error>"
            return self.missing, {"content-type": "application/xml"}, body
        raw = got["ResponseMetadata"]["HTTPHeaders"]
        headers = {k: v for k, v in raw.items() if k in PASSED}
        return 200, headers, got["Body"].read()

    def freeze(self, path):
        """From now on `path` answers as it does now: a cache that keeps it."""
        answer = self.fetch(path)
        with self.lock:
            self.faults[path] = ("frozen", answer)

    def wrong_type(self, path, content_type):
        with self.lock:
            self.faults[path] = ("type", content_type)

    def status(self, path, status):
        with self.lock:
            self.faults[path] = ("status", status)

    def redirect(self, path, location):
        with self.lock:
            self.faults[path] = ("redirect", location)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
