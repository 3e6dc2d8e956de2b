"""A real ``bookql serve`` for the tests that need sockets: streams, browsers, disconnects."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def live_server(env: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """The server's URL once ``/healthz`` answers; stopped afterwards. Output goes to ``log``
    (quoted when the server fails to start) or nowhere."""
    port = free_port()
    output: Any = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "bookql", "serve", "--port", str(port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    if log:
        output.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            started = process.poll() is None and time.monotonic() < deadline
            assert started, log.read_text()[-3000:] if log else "bookql serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
