"""Shared benchmark plumbing: scratch databases and ``bookql`` set-up commands, a real
server in a subprocess, its memory, latency statistics, tables and results.

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
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"
MAINTENANCE_DB = "test"  # connected to while a database of a fixed name is recreated
PASSWORD = "benchmark password"
SAMPLE_EVERY_S = 0.02  # how often RssSampler reads a server's memory
LOGIN = """mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken } }"""


# -- databases and set-up -----------------------------------------------------------------


def connect(url: str, database: str | None = None) -> psycopg.Connection[Any]:
    """A plain autocommit psycopg connection to the PostgreSQL database ``url`` names (or
    to ``database`` on the same server)."""
    parts = make_url(url)
    return psycopg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        dbname=database or parts.database,
        autocommit=True,
    )


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """The PostgreSQL database ``url`` names, dropped and created empty (or only dropped)."""
    name = make_url(url).database
    assert name, "the database URL names no database"
    with connect(url, MAINTENANCE_DB) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            admin.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def scratch_database(base_url: str | None, directory: Path, prefix: str) -> Iterator[str]:
    """A new empty database, dropped afterwards: a SQLite file in ``directory``, or with
    ``base_url`` a PostgreSQL database of a new name (``prefix_…``) on that server."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if base_url is None:
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    with connect(base_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with connect(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_bookql(args: Sequence[str], env: Mapping[str, str], stdin: str | None = None) -> None:
    """One ``bookql`` command of the set-up; its output is kept on the error if it fails."""
    subprocess.run(
        [sys.executable, "-m", "bookql", *args],
        input=stdin,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )


def create_users(env: Mapping[str, str], names: Sequence[str], password: str = PASSWORD) -> None:
    for name in names:
        run_bookql(["users", "create", name], env, stdin=password + "\n")


def set_up(
    env: Mapping[str, str],
    *,
    seed: bool = True,
    model: bool = False,
    users: Sequence[str] = (),
    password: str = PASSWORD,
) -> None:
    """The database ``env`` names migrated; with the bundled catalogue (``seed``), a trained
    active price model (``model``) and ``users``, each signing in with ``password``."""
    run_bookql(["db", "upgrade"], env)
    if seed:
        run_bookql(["seed"], env)
    if model:
        run_bookql(["train", "--activate"], env)
    create_users(env, users, password)


# -- servers --------------------------------------------------------------------------------


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


def login(url: str, username: str, password: str = PASSWORD) -> str:
    """An access token from the server at ``url``."""
    response = httpx.post(
        f"{url}/graphql",
        json={"query": LOGIN, "variables": {"u": username, "p": password}},
        timeout=30,
    )
    token: str = response.json()["data"]["login"]["accessToken"]
    return token


def status_kib(pid: int, key: bytes) -> int:
    """A figure of ``/proc/<pid>/status`` in KiB, such as ``b"VmRSS:"``."""
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"no {key!r} in /proc/{pid}/status")


def tree_rss_mib(pid: int) -> dict[str, float]:
    """Resident memory of a process and its children, by pid."""
    found: dict[str, float] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            rss = status_kib(current, b"VmRSS:")
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        found[str(current)] = rss / 1024
        pending.extend(int(child) for child in children)
    return found


@dataclass
class RssSampler:
    """The largest VmRSS of a process while the block runs, sampled from a thread; and the
    kernel's own high-water mark (VmHWM, reset first) when the process lets us reset it."""

    pid: int
    start_kib: int = 0
    peak_kib: int = 0
    hwm_kib: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, b"VmRSS:"))

    @contextmanager
    def running(self) -> Iterator[RssSampler]:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
            resettable = True
        except OSError:
            resettable = False
        self.start_kib = self.peak_kib = status_kib(self.pid, b"VmRSS:")
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, b"VmRSS:"))
            if resettable:
                self.hwm_kib = status_kib(self.pid, b"VmHWM:")


# -- figures --------------------------------------------------------------------------------


def timed(call: Callable[[], object], samples: int) -> list[float]:
    """The seconds of each of ``samples`` calls, one after another."""
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return timings


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


def times(value: float, baseline: float, digits: int = 2) -> str:
    """A ratio as the tables print it: ``1.23x``."""
    return f"{value / baseline:.{digits}f}x"


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def code_version() -> dict[str, Any]:
    """The commit measured, whether ``src/`` differs from it (a dirty tree's figures), and
    the tree of ``src/`` the servers run (``-dirty`` when edited)."""

    def git(*args: str) -> str:
        found = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return found.stdout.strip()

    src_dirty = bool(git("status", "--porcelain", "--", "src"))
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "src_dirty": src_dirty,
        "tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "src": git("rev-parse", "--short", "HEAD:src") + ("-dirty" if src_dirty else ""),
    }
