"""Starting a crawl from the API: checked, recorded, and queued for a job worker.

The run and the job that will run it are written in one transaction, and the mutation
returns at once with the QUEUED run; a worker (``bookql worker``, or the server itself on
the embedded default) claims the job and runs the crawler.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.config import Settings
from bookql.core.errors import BadUserInput, ServiceUnavailable
from bookql.crawls.job import CRAWL_JOB, installed_crawler
from bookql.crawls.runs import create_run, fail_orphans
from bookql.crawls.tables import CrawlStatus
from bookql.jobs.queue import enqueue


def checked_start_url(url: str, allowed_hosts: list[str]) -> str:
    """Only http(s) URLs on an allowed host: anything else would let callers aim us anywhere."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BadUserInput("`startUrl` must be an http(s) URL", field="startUrl")
    if parts.username or parts.password:
        raise BadUserInput("`startUrl` must not carry credentials", field="startUrl")
    try:
        port = parts.port
    except ValueError:  # out of range or not a number: the crawl could fetch nothing
        port = 0
    if port == 0:
        raise BadUserInput("`startUrl` has an invalid port (1-65535)", field="startUrl")
    if host not in allowed_hosts:
        raise BadUserInput(
            f"{host!r} is not an allowed crawl host (BOOKQL_CRAWL_ALLOWED_HOSTS)",
            field="startUrl",
        )
    return parts.geturl()


class CrawlLauncher:
    """Queues crawls: the API's side of ``startCrawl`` (and of ``bookql jobs enqueue crawl``)."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine

    async def start(self, start_url: str | None, requested_by: int | None) -> Row[Any]:
        url = checked_start_url(
            start_url or self.settings.crawl_start_url, self.settings.crawl_allowed_hosts
        )
        if installed_crawler(self.settings) is None:
            raise ServiceUnavailable("the crawler is not installed here (BOOKQL_CRAWLER_DIR)")
        await fail_orphans(self.engine)  # a hand-started crawler that died must not block this

        async def queue(conn: AsyncConnection, run_id: int) -> int:
            return await enqueue(
                conn,
                CRAWL_JOB,
                {"run_id": run_id},
                max_attempts=self.settings.job_max_attempts,
            )

        return await create_run(
            self.engine, url, status=CrawlStatus.QUEUED, requested_by=requested_by, queue=queue
        )
