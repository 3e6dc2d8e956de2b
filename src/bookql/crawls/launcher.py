"""Starting a crawl from the API: checked, recorded, and run outside the server's process.

``scrapy crawl books`` runs as a child process (its own session, its log in the data dir);
the server only watches for it to end, so that a crawler that dies without finishing its
run does not leave the run "running" for ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.api.errors import BadUserInput, ServiceUnavailable
from bookql.core.config import Settings
from bookql.crawls.models import CrawlStatus
from bookql.crawls.runs import create_run, fail_if_active, fail_orphans

log = logging.getLogger("bookql.crawls")
RUN_ID_VARIABLE = "BOOKQL_CRAWL_RUN_ID"


def checked_start_url(url: str, allowed_hosts: list[str]) -> str:
    """Only http(s) URLs on an allowed host: anything else would let callers aim us anywhere."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BadUserInput("`startUrl` must be an http(s) URL", field="startUrl")
    if parts.username or parts.password:
        raise BadUserInput("`startUrl` must not carry credentials", field="startUrl")
    if host not in allowed_hosts:
        raise BadUserInput(
            f"{host!r} is not an allowed crawl host (BOOKQL_CRAWL_ALLOWED_HOSTS)",
            field="startUrl",
        )
    return parts.geturl()


class CrawlLauncher:
    """One per server process: starts crawls and watches the processes it started."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self, start_url: str | None, requested_by: int | None) -> Row[Any]:
        url = checked_start_url(
            start_url or self.settings.crawl_start_url, self.settings.crawl_allowed_hosts
        )
        crawler_dir = self.settings.effective_crawler_dir
        if crawler_dir is None or not (crawler_dir / "scrapy.cfg").is_file():
            raise ServiceUnavailable("the crawler is not installed here (BOOKQL_CRAWLER_DIR)")
        await fail_orphans(self.engine)
        run = await create_run(
            self.engine, url, status=CrawlStatus.QUEUED, requested_by=requested_by
        )
        try:
            log_file = await asyncio.to_thread(self._open_log, run.id)
            with log_file:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "scrapy",
                    "crawl",
                    "books",
                    "-a",
                    f"start_url={url}",
                    *self._setting_flags(),
                    cwd=crawler_dir,
                    env=self._environment(run.id),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            await fail_if_active(self.engine, run.id, f"the crawler could not start: {exc}")
            raise ServiceUnavailable("the crawler could not start") from None
        watcher = asyncio.create_task(self._watch(run.id, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return run

    def _environment(self, run_id: int) -> dict[str, str]:
        """The crawler writes where this server reads, whatever its own environment says."""
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

    def _open_log(self, run_id: int) -> BinaryIO:
        logs = self.settings.data_dir / "crawls"
        logs.mkdir(parents=True, exist_ok=True)
        return open(logs / f"run-{run_id}.log", "ab")

    async def _watch(self, run_id: int, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        message = f"the crawler exited (status {code}) without finishing the run"
        if await fail_if_active(self.engine, run_id, message):
            log.error("crawl run %s: %s", run_id, message)

    async def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()
