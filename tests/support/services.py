"""Private PostgreSQL and Redis servers that a test may stop and start at will.

The machine's shared services must never be restarted by a test, so fault tests get their
own: a PostgreSQL cluster made by ``initdb`` in a temporary directory (run as the
``postgres`` user when the tests run as root, which PostgreSQL refuses to be), and a
``redis-server`` with no persistence, each on a free port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.live import free_port


def _postgres_bin() -> Path | None:
    config = shutil.which("pg_config")
    if config:
        found = Path(subprocess.check_output([config, "--bindir"], text=True).strip())
        if (found / "initdb").exists():
            return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


def missing_tools() -> str | None:
    """Why the private servers cannot run here, or None."""
    if _postgres_bin() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl)"
    if shutil.which("redis-server") is None:
        return "redis-server"
    return None


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        bindir = _postgres_bin()
        assert bindir is not None
        self._bin = bindir
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bookql")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/bookql"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._user, str(self._bin / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
            " -c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def discard(self) -> None:
        """Stopped at once if running; the directory goes with the context manager."""
        stop = ["pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"]
        subprocess.run([*self._user, str(self._bin / stop[0]), *stop[1:]], capture_output=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    # not under pytest's tmp_path: the postgres user cannot enter root's 0700 directories
    root = Path(tempfile.mkdtemp(prefix="bookql-pg-", dir="/tmp"))
    cluster: PrivatePostgres | None = None
    try:
        cluster = PrivatePostgres(root)
        yield cluster
    finally:
        if cluster is not None:
            cluster.discard()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()
