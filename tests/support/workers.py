"""``bookql worker`` processes for the tests, configured as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Row, create_engine, select

from bookql.crawls.tables import crawl_runs
from bookql.db.urls import parse_database_url, sync_url
from bookql.jobs.tables import jobs
from tests.conftest import ScratchDatabase

QUICK_JOBS = {"job_poll_seconds": "0.1", "job_retry_delay_seconds": "0"}


def worker_env(database: ScratchDatabase, **settings: str) -> dict[str, str]:
    """The environment of a process using ``database``, with ``BOOKQL_*`` settings."""
    return {
        **os.environ,
        "BOOKQL_DATABASE_URL": database.url,
        "BOOKQL_DATA_DIR": str(database.data_dir),
        **{f"BOOKQL_{name.upper()}": value for name, value in {**QUICK_JOBS, **settings}.items()},
    }


def bookql_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bookql", *args]


def run_bookql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bookql_command(*args), env=env, capture_output=True, text=True, timeout=120, check=False
    )


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            bookql_command("worker", *args), env=env, stdout=output, stderr=subprocess.STDOUT
        )


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``bookql worker`` for the length of the block, then stopped with SIGTERM."""
    process = start_worker(env, log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


class Tables:
    """The jobs and crawl runs a database holds, read with a plain synchronous engine."""

    def __init__(self, database: ScratchDatabase) -> None:
        self.engine = create_engine(sync_url(parse_database_url(database.url)))

    def close(self) -> None:
        self.engine.dispose()

    def job(self, job_id: int) -> Row[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()

    def jobs(self) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(jobs).order_by(jobs.c.id)))

    def run(self, run_id: int) -> Row[Any]:
        with self.engine.connect() as conn:
            return conn.execute(select(crawl_runs).where(crawl_runs.c.id == run_id)).one()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``condition`` until it is truthy; its value, or a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
