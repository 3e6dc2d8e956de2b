"""The ``crawl`` job: run ``scrapy crawl books`` for a queued run and follow it to its end.

The crawler is a child process of the worker (its own session, its log in the data dir).
It dies with its worker: on Linux the kernel kills it the moment the worker dies (the
parent-death signal), elsewhere it watches its parent and exits within seconds. Its run
stays open, and the job, taken back by the queue when the worker's lease lapses, starts the
run again, never beside a crawler of the last attempt. A crawl that ran to its end is never
repeated: a run that finished (succeeded, partial or failed) ends the job.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.config import Settings
from bookql.core.processes import process_alive
from bookql.crawls.runs import fail_if_active, get_run, requeue_run
from bookql.crawls.tables import ACTIVE, CrawlStatus
from bookql.db.engine import async_write_transaction
from bookql.jobs.handler import ClaimedJob, PermanentJobError, Progress

log = logging.getLogger("bookql.crawls")
CRAWL_JOB = "crawl"
RUN_ID_VARIABLE = "BOOKQL_CRAWL_RUN_ID"
FOLLOW_SECONDS = 1.0  # how often the run's counts become the job's progress
STOP_SECONDS = 15.0  # a stopped crawler's time to store what it has before it is killed
PREVIOUS_CRAWLER_SECONDS = 30.0  # how long an attempt waits for the last one's crawler to go
LOG_TAIL_BYTES = 2_000  # of a crawler's log, read for why it stopped


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> Callable[[], None] | None:
    """A hook for the child, between fork and exec: the kernel kills it when we die.

    SIGKILL, not a polite stop: a crawler whose worker is gone has no one to report to, and
    the run restarts from scratch. The signal comes when the forking thread ends, which is
    the event loop's (it forks), living as long as the worker. None off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up now, not in the forked child
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the request took effect
            os._exit(1)

    return hook


def installed_crawler(settings: Settings) -> Path | None:
    """The Scrapy project's directory, if it is there."""
    crawler_dir = settings.effective_crawler_dir
    if crawler_dir is None or not (crawler_dir / "scrapy.cfg").is_file():
        return None
    return crawler_dir


class CrawlJob:
    kind = CRAWL_JOB

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        run_id = int(job.payload["run_id"])
        run = await get_run(self.engine, run_id)
        if run is None:
            raise PermanentJobError(f"crawl run {run_id} no longer exists")
        if run.status not in ACTIVE:
            return  # an earlier attempt saw it through before its worker could say so
        crawler_dir = installed_crawler(self.settings)
        if crawler_dir is None:
            raise PermanentJobError("the crawler is not installed here (BOOKQL_CRAWLER_DIR)")
        await self._outlive_previous_crawler(run)
        if run.status == CrawlStatus.RUNNING.value:
            async with async_write_transaction(self.engine) as conn:
                await requeue_run(conn, run_id, f"restarted: attempt {job.attempt}")
        process = await self._spawn(run_id, run.start_url, crawler_dir)
        try:
            code = await self._follow(process, run_id, progress)
        except asyncio.CancelledError:
            await self._stop(process)
            raise
        run = await get_run(self.engine, run_id)
        if run is not None and run.status in ACTIVE:
            last = await asyncio.to_thread(self._last_log_line, run_id)
            raise RuntimeError(
                f"the crawler exited (status {code}) without finishing the run"
                + (f": {last}" if last else "")
            )
        if run is not None and run.status == CrawlStatus.FAILED.value:
            raise PermanentJobError(run.message or "the crawl failed")

    async def requeued(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        await requeue_run(conn, int(payload["run_id"]), message)

    async def failed(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        if await fail_if_active(conn, int(payload["run_id"]), message):
            log.error("crawl run %s failed: %s", payload["run_id"], message)

    async def _outlive_previous_crawler(self, run: Row[Any]) -> None:
        """Two crawlers must never write one run: wait for an earlier attempt's to stop."""
        if run.pid is None or run.host != socket.gethostname():
            return  # never started, or elsewhere (and it stops when its own worker is gone)
        for _ in range(int(PREVIOUS_CRAWLER_SECONDS / FOLLOW_SECONDS)):
            if not process_alive(run.pid):
                return
            await asyncio.sleep(FOLLOW_SECONDS)
        raise RuntimeError(f"the previous attempt's crawler (pid {run.pid}) is still running")

    async def _spawn(
        self, run_id: int, start_url: str, crawler_dir: Path
    ) -> asyncio.subprocess.Process:
        log_file = await asyncio.to_thread(self._open_log, run_id)
        with log_file:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "scrapy",
                "crawl",
                "books",
                "-a",
                f"start_url={start_url}",
                *self._setting_flags(),
                cwd=crawler_dir,
                env=self._environment(run_id),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )

    async def _follow(
        self, process: asyncio.subprocess.Process, run_id: int, progress: Progress
    ) -> int:
        """Wait for the crawler, passing the run's counts on as the job's progress."""
        while True:
            try:
                return await asyncio.wait_for(process.wait(), FOLLOW_SECONDS)
            except TimeoutError:
                run = await get_run(self.engine, run_id)
                if run is not None:
                    progress.report(f"{run.pages} pages, {run.items} books stored")

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM: Scrapy stops, stores what it has and leaves the run to the next attempt."""
        if process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    def _environment(self, run_id: int) -> dict[str, str]:
        """The crawler writes where this worker reads, whatever its own environment says."""
        return {
            **os.environ,
            "BOOKQL_DATA_DIR": str(self.settings.data_dir),
            "BOOKQL_DATABASE_URL": self.settings.effective_database_url,
            RUN_ID_VARIABLE: str(run_id),
        }

    def _setting_flags(self) -> list[str]:
        flags: list[str] = []
        for name, value in self.settings.crawl_settings.items():
            flags += ["-s", f"{name}={value}"]
        return flags

    def _log_path(self, run_id: int) -> Path:
        return self.settings.data_dir / "crawls" / f"run-{run_id}.log"

    def _open_log(self, run_id: int) -> BinaryIO:
        path = self._log_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")

    def _last_log_line(self, run_id: int) -> str | None:
        """The crawler's last word (a crawler that could not start says why there)."""
        try:
            with self._log_path(run_id).open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - LOG_TAIL_BYTES))
                lines = log_file.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return None
        return lines[-1][:LOG_TAIL_BYTES] if lines else None
