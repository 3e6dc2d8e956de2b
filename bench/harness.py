"""Shared benchmark plumbing: a real server in a subprocess, latency statistics, results.

The server and the load generator run in separate processes, pinned to different cores
when ``taskset`` exists, so that the load generator does not steal the server's CPU.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(command: list[str], core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *command]
    return command


def pin_self(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


class LeanClient:
    """One keep-alive HTTP/1.1 connection posting GraphQL: the thinnest client the standard
    library offers, so a latency figure is the server's and not the load generator's."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if token is not None:
            self._headers["authorization"] = f"Bearer {token}"

    def post(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = json.dumps({"query": query, "variables": variables or {}})
        self._conn.request("POST", "/graphql", body, self._headers)
        response = self._conn.getresponse()
        return json.loads(response.read())

    def close(self) -> None:
        self._conn.close()


@contextmanager
def bookql_server(env: dict[str, str], *, core: int = 0, workers: int = 1) -> Iterator[Server]:
    """``bookql serve`` on a free port; waits for ``/healthz``, stops it afterwards."""
    command = [sys.executable, "-m", "bookql", "serve", "--workers", str(workers)]
    with http_server(command, env, core=core) as server:
        yield server


@contextmanager
def http_server(
    command: Sequence[str], env: dict[str, str], *, core: int = 0, cwd: Path | None = None
) -> Iterator[Server]:
    """Any server command taking ``--port``, pinned to ``core``, serving ``/healthz``.

    Its stderr goes to a file rather than a pipe: nobody reads a pipe while the benchmark
    runs, and a full one would stall the server mid-measurement.
    """
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            pin([*command, "--port", str(port)], core),
            env={**os.environ, **env},
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start: {log.read()}")
                time.sleep(0.1)
            yield Server(url=url, process=process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    count: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(p50_ms=percentile(ms, 50), p99_ms=percentile(ms, 99), count=len(ms))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def code_version() -> dict[str, Any]:
    """The commit measured, and whether ``src/`` differs from it (a dirty tree's figures)."""

    def git(*args: str) -> str:
        found = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return found.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "src_dirty": bool(git("status", "--porcelain", "--", "src")),
        "tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }
