#!/usr/bin/env python3
"""A read-only S3 server for listing benchmarks: one bucket (any name) of N
keys it generates itself, deterministically, shaped like a large built site
(pages in nested folders, hashed assets in flat ones). moto cannot serve
100,000 objects: filling it runs at about 150 uploads a second, and it
spends about 0.64 s of CPU per 1,000-key page at that size.

    .venv/bin/python scripts/listserver.py --keys 100000 --latency-ms 100 --port 9000

It prints `ready http://127.0.0.1:PORT` once it listens. Path-style only.
Answers, each after --latency-ms (requests are answered concurrently, one
thread per connection):

- ListObjectsV2 (GET /bucket?list-type=2): prefix, delimiter, max-keys
  (default and cap 1000), continuation-token, start-after, encoding-type=url,
  as moto 5 answers them (test/test_listserver.py compares the two);
- ListObjects (v1, marker) is refused: the tools measured here use v2;
- ListMultipartUploads (GET /bucket?uploads): none;
- GetObject, HeadObject: 404 NoSuchKey (the deploy manifest is absent);
- HeadBucket, GetBucketLocation: the bucket exists, in us-east-1;
- anything that writes: 501 NotImplemented.

GET /_listserver/stats gives the requests served so far by operation, as
JSON; POST /_listserver/reset zeroes them. (No bucket name starts with `_`.)
"""

import argparse
import base64
import bisect
import hashlib
import json
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

MAX_KEYS = 1000
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
EMPTY_MD5 = hashlib.md5(b"").hexdigest()
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def site_keys(n):
    """n distinct keys of a site-like tree, the same for the same n: 6 root
    files; hashed assets in 3 flat folders (10%); blog posts by year and
    month with an image each (30%); versioned docs in sections (30%);
    products by category (30%)."""
    roots = ["404.html", "favicon.ico", "index.html", "manifest.json", "robots.txt", "sitemap.xml"]
    keys = roots[:n]
    made = [0, 0, 0, 0]
    while len(keys) < n:
        kind = (0, 1, 1, 1, 2, 2, 2, 3, 3, 3)[len(keys) % 10]
        c = made[kind]
        made[kind] += 1
        h = hashlib.md5(f"{kind} {c}".encode()).hexdigest()[:10]
        if kind == 0:
            folder, ext = (("js", "js"), ("css", "css"), ("img", "webp"))[c % 3]
            keys.append(f"assets/{folder}/{('app', 'chunk', 'vendor', 'icon')[c // 3 % 4]}-{h}.{ext}")
        elif kind == 1:
            post = c // 2
            year, month = 2010 + post % 15, 1 + post // 15 % 12
            keys.append(f"blog/{year}/{month:02d}/post-{post}/{('cover.jpg', 'index.html')[c % 2]}")
        elif kind == 2:
            keys.append(f"docs/v{c % 5 + 1}/section-{c // 5 % 40}/page-{c}.html")
        else:
            category = ("books", "garden", "kitchen", "music", "tools", "toys")[c % 6]
            keys.append(f"products/{category}/{c // 6 % 300}/item-{c}.html")
    return keys


class Bucket:
    """Sorted keys (Python orders str by code point, which is S3's UTF-8
    byte order) with a size and an ETag each."""

    def __init__(self, keys, sizes=None, etags=None):
        self.keys = sorted(set(keys))
        self.sizes = sizes
        self.etags = etags

    def size(self, key):
        if self.sizes is not None:
            return self.sizes[key]
        return 200 + zlib.crc32(key.encode()) % 60_000

    def etag(self, key):
        if self.etags is not None:
            return self.etags[key]
        return hashlib.md5(key.encode()).hexdigest()

    def past_folder(self, i, folder):
        """The first index from i whose key does not start with folder
        (the keys that do are contiguous)."""
        lo, hi = i, len(self.keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.keys[mid].startswith(folder):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def list(self, prefix, delimiter, max_keys, after):
        """(keys, common prefixes, next marker or None): the items (keys and
        common prefixes) that sort after `after` (a key, a common prefix
        or a StartAfter), as moto's list_objects_v2 picks them."""
        keys, folders, last = [], [], None
        i = bisect.bisect_left(self.keys, prefix)
        if after is not None:
            i = max(i, bisect.bisect_right(self.keys, after))
        count = 0
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            key = self.keys[i]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                folder = key[: cut + len(delimiter)]
                end = self.past_folder(i, folder)
                if after is not None and folder <= after:
                    i = end
                    continue
                if count == max_keys:
                    return keys, folders, last
                folders.append(folder)
                last, i = folder, end
            else:
                if count == max_keys:
                    return keys, folders, last
                keys.append(key)
                last, i = key, i + 1
            count += 1
        return keys, folders, None


def token_of(marker):
    return base64.urlsafe_b64encode(marker.encode()).decode()


def marker_of(token):
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        return None


def error_xml(code, message):
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "listserver"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", content_type="application/xml", head=False):
        if isinstance(body, str):
            body = body.encode()
        time.sleep(self.server.latency)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", "LISTSERVER")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def count(self, operation):
        with self.server.lock:
            self.server.stats[operation] = self.server.stats.get(operation, 0) + 1

    def parse(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
        return bucket, key, query

    def do_GET(self):
        bucket, key, query = self.parse()
        if bucket == "_listserver":
            with self.server.lock:
                stats = dict(self.server.stats)
            return self.send(200, json.dumps(stats), "application/json")
        if key:
            self.count("GetObject")
            return self.send(404, error_xml("NoSuchKey", "The specified key does not exist."))
        if "uploads" in query:
            self.count("ListMultipartUploads")
            return self.send(
                200,
                f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="{XMLNS}">'
                f"<Bucket>{escape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
                f"<Prefix>{escape(query.get('prefix', ''))}</Prefix><MaxUploads>1000</MaxUploads>"
                "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
            )
        if "location" in query:
            self.count("GetBucketLocation")
            return self.send(200, f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{XMLNS}"/>')
        if query.get("list-type") == "2":
            self.count("ListObjectsV2")
            return self.list_v2(bucket, query)
        self.count("unsupported GET")
        return self.send(501, error_xml("NotImplemented", "listserver answers ListObjectsV2 (list-type=2) only"))

    def list_v2(self, bucket, query):
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter") or None
        token = query.get("continuation-token")
        start_after = query.get("start-after")
        url = query.get("encoding-type") == "url"
        try:
            max_keys = min(int(query.get("max-keys", MAX_KEYS)), MAX_KEYS)
        except ValueError:
            return self.send(400, error_xml("InvalidArgument", "max-keys must be an integer"))
        if token is not None:
            after = marker_of(token)
            if not token or after is None:
                return self.send(400, error_xml("InvalidArgument", "The continuation token provided is incorrect"))
        else:
            after = start_after
        keys, folders, last = self.server.bucket.list(prefix, delimiter, max_keys, after)

        def text(s):
            return escape(urllib.parse.quote(s) if url else s)

        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{XMLNS}">',
            f"<Name>{escape(bucket)}</Name><Prefix>{text(prefix)}</Prefix>",
            f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(keys) + len(folders)}</KeyCount>",
            f"<IsTruncated>{'true' if last is not None else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        if token is not None:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        elif start_after:
            parts.append(f"<StartAfter>{escape(start_after)}</StartAfter>")
        if last is not None:
            parts.append(f"<NextContinuationToken>{token_of(last)}</NextContinuationToken>")
        b = self.server.bucket
        for k in keys:
            parts.append(
                f"<Contents><Key>{text(k)}</Key><LastModified>{LAST_MODIFIED}</LastModified>"
                f"<ETag>&quot;{b.etag(k)}&quot;</ETag><Size>{b.size(k)}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        for f in folders:
            parts.append(f"<CommonPrefixes><Prefix>{text(f)}</Prefix></CommonPrefixes>")
        parts.append("</ListBucketResult>")
        self.send(200, "".join(parts))

    def do_HEAD(self):
        bucket, key, _ = self.parse()
        if key:
            self.count("HeadObject")
            return self.send(404, head=True)
        self.count("HeadBucket")
        return self.send(200, head=True)

    def do_POST(self):
        bucket, _, _ = self.parse()
        if bucket == "_listserver":
            with self.server.lock:
                self.server.stats.clear()
            return self.send(200, "{}", "application/json")
        self.refuse()

    def refuse(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.count(f"refused {self.command}")
        self.send(501, error_xml("NotImplemented", "listserver is read-only"))

    do_PUT = do_DELETE = refuse


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Up to PAGES_IN_FLIGHT connections open at once; the default backlog
    # of 5 would drop SYNs and add a 1 s retransmit to some of them.
    request_queue_size = 256

    def __init__(self, address, bucket, latency_ms):
        super().__init__(address, Handler)
        self.bucket = bucket
        self.latency = latency_ms / 1000
        self.stats = {}
        self.lock = threading.Lock()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000, help="how many keys to generate")
    ap.add_argument(
        "--keys-file",
        help="serve these keys instead: a JSON list of strings, each an empty object (size 0, the MD5 of nothing)",
    )
    ap.add_argument("--latency-ms", type=float, default=0, help="added before every answer")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    args = ap.parse_args()
    if args.keys_file:
        with open(args.keys_file, encoding="utf-8") as f:
            keys = json.load(f)
        bucket = Bucket(keys, dict.fromkeys(keys, 0), dict.fromkeys(keys, EMPTY_MD5))
    else:
        bucket = Bucket(site_keys(args.keys))
    server = Server((args.host, args.port), bucket, args.latency_ms)
    print(f"ready http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
