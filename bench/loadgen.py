"""A load generator in a process of its own: N keep-alive HTTP/1.1 connections, each sending
one prepared request after another for a fixed time.

The benchmark starts it once (``LoadProcess``), pinned to the core the servers do not use,
and sends it one block at a time over a pipe, so that each block measures the server and
not the load generator's start-up or its share of the server's CPU. Each request is bytes
prepared in advance; a response is read by its ``Content-Length`` and never decoded, so the
load generator costs a few tens of microseconds a request, far below any server's cost.

    python -m bench.loadgen   # reads one JSON block a line on stdin, answers one a line
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.harness import ROOT, percentile, pin


@dataclass(frozen=True)
class Request:
    """One request, prepared once: method, path, body and the headers a JSON client sends,
    plus any ``headers`` (``name: value`` lines); ``status`` is the answer that succeeds."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[str, ...] = ()
    status: int = 200

    def encode(self, host: str) -> bytes:
        head = [f"{self.method} {self.path} HTTP/1.1", f"host: {host}", "accept: application/json"]
        head += self.headers
        if self.body:
            head += ["content-type: application/json", f"content-length: {len(self.body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Block:
    """What one block measured: completed requests over the block's wall time."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _client(
    host: str, port: int, request: bytes, deadline: float, timings: list[float], status: int
) -> int:
    """Sends ``request`` over one connection until ``deadline``; returns how many answers
    had another status than ``status``."""
    reader, writer = await asyncio.open_connection(host, port)
    failures = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            await reader.readexactly(length)
            timings.append(time.perf_counter() - started)
            if not head.startswith(f"HTTP/1.1 {status} ".encode()):
                failures += 1
    finally:
        writer.close()
    return failures


def _content_length(head: bytes) -> int:
    if head.startswith(b"HTTP/1.1 304 "):
        return 0  # never a body
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line[15:])
    raise ValueError(f"a response without Content-Length: {head[:200]!r}")


async def run_block(url: str, request: Request, clients: int, seconds: float) -> Block:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = request.encode(f"{host}:{port}")
    timings: list[float] = []
    started = time.perf_counter()
    failures = await asyncio.gather(
        *(
            _client(host, port, raw, started + seconds, timings, request.status)
            for _ in range(clients)
        )
    )
    elapsed = time.perf_counter() - started
    ms = [t * 1000 for t in timings]
    return Block(
        requests=len(ms),
        seconds=elapsed,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        failures=sum(failures),
    )


class LoadProcess:
    """The load generator's process, pinned to ``core``: one block per :meth:`run`."""

    def __init__(self, core: int) -> None:
        self._process = subprocess.Popen(
            pin([sys.executable, "-m", "bench.loadgen"], core),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, url: str, request: Request, clients: int, seconds: float) -> Block:
        assert self._process.stdin is not None and self._process.stdout is not None
        spec = {
            "method": request.method,
            "path": request.path,
            "body": request.body.decode(),
            "headers": request.headers,
            "status": request.status,
        }
        order = {"url": url, "request": spec, "clients": clients, "seconds": seconds}
        self._process.stdin.write(json.dumps(order) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError("the load generator died (its error is above)")
        return Block(**json.loads(answer))

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (uvicorn[standard] brings it): the cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve_orders() -> None:
    """Runs each order read from stdin on one event loop and writes its ``Block``."""
    loop = new_loop()
    for line in sys.stdin:
        order: dict[str, Any] = json.loads(line)
        spec = order["request"]
        request = Request(
            spec["method"],
            spec["path"],
            spec["body"].encode(),
            tuple(spec.get("headers", ())),
            spec.get("status", 200),
        )
        block = loop.run_until_complete(
            run_block(order["url"], request, order["clients"], order["seconds"])
        )
        sys.stdout.write(json.dumps(asdict(block)) + "\n")
        sys.stdout.flush()
    loop.close()


if __name__ == "__main__":
    _serve_orders()
