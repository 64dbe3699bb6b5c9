"""A tiny HTTP server on 127.0.0.1 for the fetcher and scrape tests: real sockets, answers the test decides.

A site subclasses `LoopbackHandler` and implements `route`; `start` serves it on a free port in a daemon thread
and `stop` shuts it down. HTTP/1.0: every response ends its connection, so a body without Content-Length works.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        """`headers` by keyword: Retry_After="1" sends Retry-After: 1."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with contextlib.suppress(OSError):  # the client hung up, as the fetcher does on purpose (caps, deadline)
            self.route(parts.path, parts.query)

    def route(self, path: str, query: str) -> None:
        raise NotImplementedError


def start(handler: type[LoopbackHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop(*servers: ThreadingHTTPServer) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()
