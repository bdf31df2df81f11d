"""A small HTTP proxy for the tests, between the pipe and moto on loopback:
it forwards each request and, as told, answers some with 503 SlowDown or
500 InternalError, resets the connection (before forwarding, or after, so
that the response is lost), holds UploadPart requests for a while, or
accepts connections and never answers at all (a black hole)."""

import http.client
import random
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOWDOWN = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"""
INTERNAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"""


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a stopped pipe), or moto gone after the test,
    is expected, not an error."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FaultProxy:
    """Forwards to `upstream` (host, port). `fault_rate`: the share of
    requests that get a fault, drawn from a generator seeded with `seed`;
    `part_delay`: seconds each UploadPart is held before it is forwarded;
    `latency`: seconds every request is held, as a distant region adds."""

    def __init__(self, upstream, fault_rate=0.0, seed=0, part_delay=0.0, latency=0.0):
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.part_delay = part_delay
        self.latency = latency
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.faults = {"503": 0, "500": 0, "reset": 0, "lost": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                body = self.read_body()
                fault = proxy.draw()
                if fault in ("503", "500"):
                    status, payload = (503, SLOWDOWN) if fault == "503" else (500, INTERNAL)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "reset":
                    return self.reset()
                if proxy.part_delay and self.command == "PUT" and "partNumber=" in self.path:
                    threading.Event().wait(proxy.part_delay)
                if proxy.latency:
                    threading.Event().wait(proxy.latency)
                status, headers, payload = proxy.forward(self.command, self.path, self.headers, body)
                if fault == "lost":
                    return self.reset()
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def reset(self):
                # SO_LINGER 0: the close sends RST, as a dropped connection does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.request_queue_size = 1024
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def draw(self):
        with self.lock:
            self.requests += 1
            if self.random.random() >= self.fault_rate:
                return None
            fault = self.random.choice(["503", "503", "500", "reset", "lost"])
            self.faults[fault] += 1
            return fault

    def forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            skip = ("connection", "transfer-encoding", "content-length")
            sent = {k: v for k, v in headers.items() if k.lower() not in skip}
            sent["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """Accepts every connection, reads what comes, never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.held = []
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self):
        self.running = False
        self.sock.close()
        for conn in self.held:
            conn.close()
