"""Crawl-run records: created, started, advanced and finished; one active at a time.

The ``active_slot`` column is unique and set only while a run is queued or running, so the
database itself refuses a second active crawl, however many processes ask at once. A run
queued from the API belongs to a job (``job_id``): if its crawler dies, the job retries or
fails it; a run started by hand is failed by the next crawl once its process is gone.

Every change is one conditional ``UPDATE``: a crawler writes its run only while the run is
RUNNING under its own host and pid, so a crawler whose run was failed, or given to another
attempt, changes nothing (``RunLost`` when it tries to finish it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.errors import Conflict, NotFound
from bookql.core.processes import process_alive
from bookql.crawls.tables import ACTIVE, CrawlStatus, crawl_runs
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow


@dataclass(frozen=True, slots=True)
class RunCounts:
    pages: int = 0
    items: int = 0
    new_books: int = 0
    updated_books: int = 0
    unchanged_books: int = 0
    removed_books: int = 0
    dropped: int = 0
    errors: int = 0


def run_status(*, stored_everything: bool, stored: int, complete: bool) -> CrawlStatus:
    """How a crawl that ran to its end went: ``SUCCEEDED`` only when it saw the whole site.

    Nothing stored (the site unreachable, an off-host redirect, every page failed) or books
    it could not store is ``FAILED``; books stored from an incomplete crawl (pages failed,
    dropped or redirected away, the listing cut short, stopped early) is ``PARTIAL``.
    """
    if not stored_everything or stored == 0:
        return CrawlStatus.FAILED
    return CrawlStatus.SUCCEEDED if complete else CrawlStatus.PARTIAL


class CrawlAlreadyRunning(Conflict):
    def __init__(self) -> None:
        super().__init__("a crawl is already queued or running: wait for it to finish")


class RunLost(Exception):
    """This process no longer runs the crawl run: it was failed, or another attempt took it."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"crawl run {run_id} is no longer this process's to finish")


def _owned(run_id: int) -> ColumnElement[bool]:
    """The run, while this process (host and pid) runs it."""
    return and_(
        crawl_runs.c.id == run_id,
        crawl_runs.c.status == CrawlStatus.RUNNING.value,
        crawl_runs.c.host == socket.gethostname(),
        crawl_runs.c.pid == os.getpid(),
    )


async def create_run(
    engine: AsyncEngine,
    start_url: str,
    *,
    status: CrawlStatus,
    requested_by: int | None = None,
    queue: Callable[[AsyncConnection, int], Awaitable[int]] | None = None,
) -> Row[Any]:
    """A new active run; ``CrawlAlreadyRunning`` when another one is active.

    ``queue(conn, run_id)`` queues the job that will run it, in the same transaction, and
    returns the job's id: a run is never left without its job, nor a job without its run.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "status": status.value,
        "active_slot": 1,
        "start_url": start_url,
        "requested_by": requested_by,
        "created_at": now,
    }
    if status is CrawlStatus.RUNNING:
        values |= {"started_at": now, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        async with async_write_transaction(engine) as conn:
            result = await conn.execute(
                crawl_runs.insert().values(**values).returning(*crawl_runs.c)
            )
            run = result.one()
            if queue is None:
                return run
            result = await conn.execute(
                update(crawl_runs)
                .where(crawl_runs.c.id == run.id)
                .values(job_id=await queue(conn, run.id))
                .returning(*crawl_runs.c)
            )
            return result.one()
    except IntegrityError:
        if await active_run(engine) is not None:
            raise CrawlAlreadyRunning from None
        raise


async def get_run(engine: AsyncEngine, run_id: int) -> Row[Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(crawl_runs).where(crawl_runs.c.id == run_id))
        return result.one_or_none()


async def active_run(engine: AsyncEngine) -> Row[Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(crawl_runs).where(crawl_runs.c.status.in_(ACTIVE)))
        return result.first()


async def start_run(engine: AsyncEngine, run_id: int) -> Row[Any]:
    """A queued run begins: this process now owns it."""
    async with async_write_transaction(engine) as conn:
        result = await conn.execute(
            update(crawl_runs)
            .where(crawl_runs.c.id == run_id, crawl_runs.c.status == CrawlStatus.QUEUED.value)
            .values(
                status=CrawlStatus.RUNNING.value,
                started_at=utcnow(),
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            .returning(*crawl_runs.c)
        )
        row = result.one_or_none()
    if row is None:
        raise NotFound(f"crawl run {run_id} is not waiting to start")
    return row


async def record_progress(engine: AsyncEngine, run_id: int, counts: RunCounts) -> bool:
    """The counts so far; False when the run is no longer this process's."""
    async with async_write_transaction(engine) as conn:
        result = await conn.execute(
            update(crawl_runs).where(_owned(run_id)).values(**asdict(counts))
        )
    return bool(result.rowcount)


async def finish_run(
    conn: AsyncConnection,
    run_id: int,
    *,
    status: CrawlStatus,
    counts: RunCounts,
    complete: bool,
    message: str | None = None,
) -> None:
    """End this process's run; ``RunLost`` (roll back) when it is no longer this process's."""
    result = await conn.execute(
        update(crawl_runs)
        .where(_owned(run_id))
        .values(
            status=status.value,
            active_slot=None,
            finished_at=utcnow(),
            complete=complete,
            message=message,
            **asdict(counts),
        )
    )
    if not result.rowcount:
        raise RunLost(run_id)


async def fail_orphans(engine: AsyncEngine) -> int:
    """Runs started by hand, left active by a crawler on this host that no longer exists.

    A job's run is not touched: its job retries or fails it.
    """
    host = socket.gethostname()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(crawl_runs.c.id, crawl_runs.c.pid, crawl_runs.c.status).where(
                    crawl_runs.c.status.in_(ACTIVE),
                    crawl_runs.c.host == host,
                    crawl_runs.c.job_id.is_(None),
                )
            )
        ).all()
    dead = [row.id for row in rows if row.pid is not None and not process_alive(row.pid)]
    if dead:
        async with async_write_transaction(engine) as conn:
            await conn.execute(
                update(crawl_runs)
                .where(crawl_runs.c.id.in_(dead), crawl_runs.c.status.in_(ACTIVE))
                .values(
                    status=CrawlStatus.FAILED.value,
                    active_slot=None,
                    finished_at=utcnow(),
                    message="the crawler process ended without finishing the run",
                )
            )
    return len(dead)


async def fail_if_active(conn: AsyncConnection, run_id: int, message: str) -> bool:
    """Close a run its crawler left open (its job gave up on it); True if it did."""
    result = await conn.execute(
        update(crawl_runs)
        .where(crawl_runs.c.id == run_id, crawl_runs.c.status.in_(ACTIVE))
        .values(
            status=CrawlStatus.FAILED.value,
            active_slot=None,
            finished_at=utcnow(),
            message=message,
        )
    )
    return bool(result.rowcount)


async def requeue_run(conn: AsyncConnection, run_id: int, message: str) -> None:
    """An active run waits again for its crawler, from scratch, saying why.

    Host and pid stay: the next attempt checks that the previous crawler is gone.
    """
    await conn.execute(
        update(crawl_runs)
        .where(crawl_runs.c.id == run_id, crawl_runs.c.status.in_(ACTIVE))
        .values(
            status=CrawlStatus.QUEUED.value,
            started_at=None,
            complete=False,
            message=message,
            **asdict(RunCounts()),
        )
    )
