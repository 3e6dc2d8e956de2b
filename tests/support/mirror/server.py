"""Serve a :class:`MirrorSite` over HTTP on 127.0.0.1 for crawler tests.

A real socket, so the crawler under test runs unchanged (its own HTTP client, redirects,
retries, concurrency), but nothing leaves the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.mirror.site import MirrorSite, Response


class _MirrorServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the test process alive
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections from a crawler opening 16 at
    # once, and each drop costs a one-second SYN retry.
    request_queue_size = 128

    def __init__(self, site: MirrorSite) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.site = site


class _Handler(BaseHTTPRequestHandler):
    server: _MirrorServer
    server_version = "bookql-mirror/1"

    def do_GET(self) -> None:
        self._send(self.server.site.get(self.path), body=True)

    def do_HEAD(self) -> None:
        self._send(self.server.site.get(self.path), body=False)

    def _send(self, response: Response, *, body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the site counts requests itself (MirrorSite.hits)."""


@contextmanager
def serve_mirror(site: MirrorSite | None = None) -> Iterator[str]:
    """Run ``site`` (default: a fresh MirrorSite) on an OS-chosen port; yield its base URL.

    The base URL has no trailing slash: ``f"{base_url}/index.html"``. The server thread is a
    daemon and is shut down and joined on exit.
    """
    server = _MirrorServer(MirrorSite() if site is None else site)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
