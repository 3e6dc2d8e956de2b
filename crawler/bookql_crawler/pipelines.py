"""Item pipelines: check every book, then store them in batches through bookql's own layer.

The database pipeline never blocks the reactor: Scrapy runs on the asyncio reactor and the
pipeline awaits bookql's async engine, writing each full batch in the background while the
crawl goes on (it waits only if the database falls several batches behind). Each batch is
one transaction (one ``INSERT … ON CONFLICT`` keyed by UPC), so a failure loses no more than
that batch, and the batch is kept and written again at the next flush. At the end the crawl
run records what the crawl saw; only a complete crawl marks the books it did not see as
removed. A crawl run by a job (``BOOKQL_CRAWL_RUN_ID``) that is stopped from outside (its
worker stopping, or gone) stores what it has and leaves its run open: the job runs it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.catalog.records import BookRecord
from bookql.catalog.store import UpsertCounts, mark_unseen_removed, upsert_books
from bookql.core.config import get_settings
from bookql.crawls.runs import (
    CrawlAlreadyRunning,
    RunCounts,
    RunLost,
    create_run,
    fail_orphans,
    finish_run,
    record_progress,
    run_status,
    start_run,
)
from bookql.crawls.tables import CrawlStatus
from bookql.db.engine import async_write_transaction, create_async_db_engine
from bookql.db.types import utcnow
from bookql_crawler.items import BookItem
from bookql_crawler.validation import InvalidBook, to_record

log = logging.getLogger(__name__)
RUN_ID_VARIABLE = "BOOKQL_CRAWL_RUN_ID"  # set when a queued job runs this crawl
MAX_FAILED_FLUSHES = 3
BACKLOG_BATCHES = 4  # buffered batches before the crawl waits for the database
PROGRESS_INTERVAL_SECONDS = 1.0  # crawlProgress needs no more than this
PARENT_CHECK_SECONDS = 1.0
WORKER_LOST_EXIT_SECONDS = 5.0  # off Linux: how long a crawler outlives its worker at most
WORKER_LOST = "worker_lost"
INTERRUPTED = frozenset({"shutdown", WORKER_LOST})  # a job's run stays open after these


class ValidationPipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidationPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, BookItem):
            return item
        try:
            return to_record(item)
        except InvalidBook as invalid:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value(f"bookql/dropped/{invalid.reason}")
            raise DropItem(f"{item.product_url}: {invalid}") from None


class DatabasePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.batch_size = crawler.settings.getint("BOOKQL_BATCH_SIZE", 200)
        self.enabled = crawler.settings.getbool("BOOKQL_STORE", True)
        self.buffer: list[BookRecord] = []
        self.lock = asyncio.Lock()
        self.writing: asyncio.Future[bool] | None = None
        self.category_ids: dict[str, int] = {}
        self.progress_reported_at = 0.0
        self.counts = UpsertCounts()
        self.stored = 0
        self.failed_flushes = 0
        self.write_errors = 0
        self.engine: AsyncEngine | None = None
        self.run_id: int | None = None
        self.queued = False
        self.parent_watch: asyncio.Task[None] | None = None
        self.stop_reason: str | None = None
        self.started_at = utcnow()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DatabasePipeline:
        return cls(crawler)

    async def open_spider(self) -> None:
        if not self.enabled:
            return
        settings = get_settings()
        self.engine = create_async_db_engine(settings)
        start_url = getattr(self.crawler.spider, "start_url", "")
        queued = os.environ.get(RUN_ID_VARIABLE)
        try:
            if queued:
                run = await start_run(self.engine, int(queued))
            else:
                await fail_orphans(self.engine)  # a crawler that died must not block this one
                run = await create_run(self.engine, start_url, status=CrawlStatus.RUNNING)
        except CrawlAlreadyRunning:
            log.error("another crawl is queued or running; this one stops")
            await self._stop("crawl_already_running")
            return
        self.run_id = run.id
        self.started_at = run.started_at
        if queued:
            self.queued = True
            self.parent_watch = asyncio.ensure_future(self._watch_parent(os.getppid()))
        log.info("crawl run %s started (%s)", self.run_id, start_url)

    async def process_item(self, item: Any) -> Any:
        if self.run_id is not None and isinstance(item, BookRecord):
            self.buffer.append(item)
            idle = self.writing is None or self.writing.done()
            if len(self.buffer) >= self.batch_size and idle:
                self.writing = asyncio.ensure_future(self.flush())
            elif len(self.buffer) >= self.batch_size * BACKLOG_BATCHES and self.writing:
                await self.writing  # the database is falling behind: let it catch up
        return item

    async def flush(self, *, everything: bool = False) -> bool:
        """Write full batches (or everything) one transaction each; keep a failed one.

        Batches of one size make statements of one shape, which SQLAlchemy compiles once.
        """
        while self.buffer and (everything or len(self.buffer) >= self.batch_size):
            if not await self._write_batch():
                return False
        return True

    async def _write_batch(self) -> bool:
        async with self.lock:
            if not self.buffer or self.engine is None:
                return True
            batch, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size :]
            known = dict(self.category_ids)  # kept only if the transaction commits
            try:
                async with async_write_transaction(self.engine) as conn:
                    counts = await upsert_books(conn, batch, known)
            except (DBAPIError, OSError) as exc:
                self.buffer[:0] = batch
                self.write_errors += 1
                self.failed_flushes += 1
                log.error("could not store %d books (kept for retry): %s", len(batch), exc)
                if self.failed_flushes >= MAX_FAILED_FLUSHES:
                    await self._stop("database_unavailable")
                return False
            self.failed_flushes = 0
            self.category_ids = known
            self.counts += counts
            self.stored += len(batch)
        await self._report_progress()
        return True

    async def close_spider(self) -> None:
        if self.parent_watch is not None:
            self.parent_watch.cancel()
        if self.engine is None or self.run_id is None:
            if self.engine is not None:
                await self.engine.dispose()
            return
        if self.writing is not None:
            await self.writing
        stored_everything = await self.flush(everything=True)
        reason = self._close_reason()
        if self.queued and reason in INTERRUPTED:
            await self.engine.dispose()
            log.warning("crawl run %s interrupted (%s): left to its job", self.run_id, reason)
            return
        stats = self._stats()
        complete = (
            stored_everything
            and reason == "finished"
            and stats.get("bookql/listing_complete", 0) == 1
            and stats.get("bookql/failed_requests", 0) == 0
            and stats.get("bookql/offsite_redirects", 0) == 0
            and stats.get("item_dropped_count", 0) == 0
        )
        status = run_status(
            stored_everything=stored_everything, stored=self.stored, complete=complete
        )
        try:
            async with async_write_transaction(self.engine) as conn:
                removed = (
                    await mark_unseen_removed(conn, self.started_at, utcnow()) if complete else 0
                )
                await finish_run(
                    conn,
                    self.run_id,
                    status=status,
                    counts=self._run_counts(removed),
                    complete=complete,
                    message=self._message(reason, stored_everything, complete),
                )
        except (DBAPIError, OSError, RunLost) as exc:
            log.error("could not record the end of crawl run %s: %s", self.run_id, exc)
        finally:
            await self.engine.dispose()
        log.info(
            "crawl run %s %s: %d new, %d updated, %d unchanged, complete=%s",
            self.run_id,
            status.value.lower(),
            self.counts.new,
            self.counts.updated,
            self.counts.unchanged,
            complete,
        )

    async def _report_progress(self) -> None:
        if self.engine is None or self.run_id is None:
            return
        now = time.monotonic()
        if now - self.progress_reported_at < PROGRESS_INTERVAL_SECONDS:
            return
        self.progress_reported_at = now
        try:
            await record_progress(self.engine, self.run_id, self._run_counts(0))
        except (DBAPIError, OSError) as exc:
            log.warning("could not record progress: %s", exc)

    async def _watch_parent(self, parent: int) -> None:
        """A job's crawler outlives its worker only briefly: the job will run it again."""
        while True:  # no event says a parent died: polling is the portable way
            await asyncio.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                break
        log.error("the worker that started this crawl is gone; stopping")
        await self._stop(WORKER_LOST)
        # the next attempt must not find this crawler still writing: a bounded goodbye
        asyncio.get_running_loop().call_later(WORKER_LOST_EXIT_SECONDS, os._exit, 1)

    async def _stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        engine = self.crawler.engine
        if engine is not None:
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(engine.close_spider_async(reason=reason))
            )

    def _stats(self) -> dict[str, Any]:
        assert self.crawler.stats is not None
        return self.crawler.stats.get_stats()

    def _close_reason(self) -> str:
        """Why the spider closes (Scrapy records its ``finish_reason`` only after pipelines)."""
        if self.stop_reason is not None:
            return self.stop_reason
        if not self.crawler.crawling:
            return "shutdown"  # stopped from outside: SIGTERM or SIGINT
        return str(self._stats().get("finish_reason", "finished"))

    def _run_counts(self, removed: int) -> RunCounts:
        stats = self._stats()
        return RunCounts(
            pages=int(stats.get("bookql/pages", 0)),
            items=self.stored,
            new_books=self.counts.new,
            updated_books=self.counts.updated,
            unchanged_books=self.counts.unchanged,
            removed_books=removed,
            dropped=int(stats.get("item_dropped_count", 0)),
            errors=int(stats.get("bookql/failed_requests", 0))
            + int(stats.get("bookql/offsite_redirects", 0))
            + self.write_errors,
        )

    def _message(self, reason: str, stored_everything: bool, complete: bool) -> str | None:
        stats = self._stats()
        problems = []
        if not self.stored:
            first = stats.get("bookql/first_error")
            problems.append("nothing was stored" + (f": {first}" if first else ""))
        if reason != "finished":
            problems.append(f"stopped: {reason}")
        if not stored_everything:
            problems.append(f"{len(self.buffer)} books could not be stored")
        if stats.get("bookql/failed_requests"):
            problems.append(f"{stats['bookql/failed_requests']} pages could not be fetched")
        if stats.get("bookql/offsite_redirects"):
            problems.append(
                f"{stats['bookql/offsite_redirects']} pages redirected off the site, not followed"
            )
        if stats.get("item_dropped_count"):
            reasons = sorted(
                f"{key.removeprefix('bookql/dropped/')} x{value}"
                for key, value in stats.items()
                if key.startswith("bookql/dropped/")
            )
            problems.append(f"{stats['item_dropped_count']} pages dropped ({', '.join(reasons)})")
        if not stats.get("bookql/listing_complete"):
            problems.append("the listing was not walked to its last page")
        if problems and not complete:
            problems.append("removals not applied: the crawl was incomplete")
        return "; ".join(problems) or None
