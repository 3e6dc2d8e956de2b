"""A real ``bookql serve`` for the tests that need sockets: streams, browsers, disconnects,
signals and several workers; and the command line as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bookql(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """``bookql ARGS`` in a subprocess that must succeed; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "bookql", *args],
        env=env,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )
    return done.stdout


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def running_server(
    env: dict[str, str], log: Path | None = None, *, workers: int = 1
) -> Iterator[LiveServer]:
    """The server once ``/healthz`` answers (and, with ``workers``, that many are up);
    stopped afterwards if the test has not. Output goes to ``log`` (quoted when the server
    fails to start) or nowhere."""
    port = free_port()
    output: Any = log.open("wb") if log else subprocess.DEVNULL
    command = [sys.executable, "-m", "bookql", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)], env=env, stdout=output, stderr=subprocess.STDOUT
    )
    if log:
        output.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not (_answers(url) and (workers == 1 or _children(process.pid) >= workers)):
            started = process.poll() is None and time.monotonic() < deadline
            assert started, log.read_text()[-3000:] if log else "bookql serve did not start"
            time.sleep(0.1)
        yield LiveServer(url, process)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def live_server(env: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """The URL of a :func:`running_server`."""
    with running_server(env, log) as server:
        yield server.url


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _children(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return len(children.read_text().split()) if children.exists() else 0


def post_graphql(base: str, query: str, token: str | None = None, /, **variables: Any) -> Any:
    """One operation on a connection of its own, so that against several workers it may land
    on any of them; the decoded body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, timeout=30) as client:
        return client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        ).json()


def server_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """The environment of a test's ``bookql`` process: the suite's own variables, a data
    directory of the test's, argon2 at its cheapest accepted cost, no metrics directory
    (``serve`` makes its own), and ``settings`` as ``BOOKQL_*`` variables
    (``database_url=…`` is ``BOOKQL_DATABASE_URL``)."""
    from tests.conftest import FAST_ARGON2

    env = {**os.environ, "BOOKQL_DATA_DIR": str(data_dir)}
    env.update(
        {
            f"BOOKQL_{name.upper()}": str(value)
            for name, value in {**FAST_ARGON2, **settings}.items()
        }
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env
