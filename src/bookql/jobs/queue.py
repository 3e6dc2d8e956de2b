"""The queue's operations: enqueue, claim, renew, finish, release, recover lapsed claims, and
prune finished jobs.

Claiming is one conditional ``UPDATE`` of the oldest due job. On PostgreSQL its candidate is
chosen with ``FOR UPDATE SKIP LOCKED``, so concurrent workers each take a different job
without waiting on each other; on SQLite the write transaction begins ``IMMEDIATE``, so
claims are serialised and the ``status = 'QUEUED'`` condition settles any race. Every later
change to a claimed job is conditioned on the claim (worker, attempt, status), so a worker
that lost its job (its lease lapsed and another worker took over) can change nothing.
Time comes from the database on PostgreSQL: workers on several machines share one clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow
from bookql.jobs.handler import ClaimedJob, JobHandler
from bookql.jobs.tables import JobStatus, jobs

RECOVERY_BATCH = 50
CLAIMED = (jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts)


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock on PostgreSQL (one clock for every machine), else this host's."""
    if conn.dialect.name == "postgresql":
        value: datetime = (await conn.execute(select(func.now()))).scalar_one()
        return value.astimezone(UTC)
    return utcnow()


async def enqueue(
    conn: AsyncConnection, kind: str, payload: dict[str, Any], *, max_attempts: int
) -> int:
    """Queue a job inside the caller's transaction, beside the record it will work on."""
    now = await database_now(conn)
    result = await conn.execute(
        jobs.insert()
        .values(
            kind=kind,
            payload=payload,
            status=JobStatus.QUEUED.value,
            attempts=0,
            max_attempts=max_attempts,
            run_after=now,
            created_at=now,
        )
        .returning(jobs.c.id)
    )
    job_id: int = result.scalar_one()
    return job_id


def _owned(job: ClaimedJob) -> ColumnElement[bool]:
    return and_(
        jobs.c.id == job.id,
        jobs.c.status == JobStatus.RUNNING.value,
        jobs.c.claimed_by == job.claimed_by,
        jobs.c.attempts == job.attempt,
    )


@dataclass(frozen=True)
class JobQueue:
    engine: AsyncEngine
    lease: timedelta
    retry_delay: timedelta

    @classmethod
    def for_settings(cls, engine: AsyncEngine, settings: Settings) -> JobQueue:
        return cls(
            engine,
            lease=timedelta(seconds=settings.job_lease_seconds),
            retry_delay=timedelta(seconds=settings.job_retry_delay_seconds),
        )

    async def _any(self, condition: Callable[[datetime], ColumnElement[bool]]) -> bool:
        """A plain read first, so an idle poll never takes SQLite's write lock."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(jobs.c.id).where(condition(await database_now(conn))))
            return found.first() is not None

    async def claim(self, worker: str, kinds: Collection[str]) -> ClaimedJob | None:
        """The oldest due job of one of ``kinds``, now held by ``worker``; None if none is due."""

        def due(now: datetime) -> ColumnElement[bool]:
            return and_(
                jobs.c.status == JobStatus.QUEUED.value,
                jobs.c.run_after <= now,
                jobs.c.kind.in_(list(kinds)),
            )

        if not kinds or not await self._any(due):
            return None
        async with async_write_transaction(self.engine) as conn:
            now = await database_now(conn)
            candidate = (
                select(jobs.c.id)
                .where(due(now))
                .order_by(jobs.c.run_after, jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == candidate, jobs.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    attempts=jobs.c.attempts + 1,
                    claimed_by=worker,
                    lease_expires_at=now + self.lease,
                    heartbeat_at=now,
                    started_at=now,
                    progress=None,
                    progress_message=None,
                )
                .returning(*CLAIMED)
            )
            row = result.one_or_none()
        if row is None:
            return None
        return ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=dict(row.payload),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            claimed_by=worker,
        )

    async def heartbeat(
        self, job: ClaimedJob, progress: tuple[float | None, str] | None = None
    ) -> bool:
        """Renew the lease (and record progress); False when the job is no longer ours."""
        async with async_write_transaction(self.engine) as conn:
            now = await database_now(conn)
            values: dict[str, Any] = {"lease_expires_at": now + self.lease, "heartbeat_at": now}
            if progress is not None:
                values |= {"progress": progress[0], "progress_message": progress[1]}
            result = await conn.execute(update(jobs).where(_owned(job)).values(**values))
        return bool(result.rowcount)

    async def complete(self, job: ClaimedJob) -> bool:
        async with async_write_transaction(self.engine) as conn:
            now = await database_now(conn)
            result = await conn.execute(
                update(jobs)
                .where(_owned(job))
                .values(
                    status=JobStatus.SUCCEEDED.value,
                    finished_at=now,
                    lease_expires_at=None,
                    progress=1.0,
                )
            )
        return bool(result.rowcount)

    async def fail(
        self, job: ClaimedJob, message: str, handler: JobHandler | None, *, retry: bool
    ) -> bool:
        """This attempt failed: queue the job again after a back-off, or fail it for good."""
        async with async_write_transaction(self.engine) as conn:
            row = await self._locked(conn, job)
            if row is None:
                return False
            await self._settle(conn, row, message, handler, retry=retry)
        return True

    async def release(self, job: ClaimedJob, handler: JobHandler | None, message: str) -> bool:
        """Give a job back untried (its worker is stopping): the attempt does not count."""
        async with async_write_transaction(self.engine) as conn:
            row = await self._locked(conn, job)
            if row is None:
                return False
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id)
                .values(
                    status=JobStatus.QUEUED.value,
                    attempts=jobs.c.attempts - 1,
                    claimed_by=None,
                    lease_expires_at=None,
                    run_after=await database_now(conn),
                )
            )
            if handler is not None:
                await handler.requeued(conn, row.payload, message)
        return True

    async def prune(self, older_than: timedelta) -> int:
        """Delete jobs that finished (succeeded or failed) over ``older_than`` ago.

        Their crawl runs and trainings keep their own record; a run's ``job_id`` becomes null.
        """

        def expired(now: datetime) -> ColumnElement[bool]:
            return and_(
                jobs.c.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value]),
                jobs.c.finished_at < now - older_than,
            )

        if not await self._any(expired):
            return 0
        async with async_write_transaction(self.engine) as conn:
            result = await conn.execute(delete(jobs).where(expired(await database_now(conn))))
            return int(result.rowcount)

    async def recover_expired(self, handlers: Mapping[str, JobHandler]) -> int:
        """Jobs whose worker stopped renewing its lease: queued again, or failed for good."""

        def lapsed(now: datetime) -> ColumnElement[bool]:
            return and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now)

        if not await self._any(lapsed):
            return 0
        async with async_write_transaction(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(lapsed(await database_now(conn)))
                    .order_by(jobs.c.id)
                    .limit(RECOVERY_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                message = f"its worker ({row.claimed_by}) stopped renewing its claim"
                await self._settle(conn, row, message, handlers.get(row.kind), retry=True)
        return len(rows)

    async def _locked(self, conn: AsyncConnection, job: ClaimedJob) -> Row[Any] | None:
        result = await conn.execute(select(jobs).where(_owned(job)).with_for_update())
        return result.one_or_none()

    async def _settle(
        self,
        conn: AsyncConnection,
        row: Row[Any],
        message: str,
        handler: JobHandler | None,
        *,
        retry: bool,
    ) -> None:
        now = await database_now(conn)
        if retry and row.attempts < row.max_attempts:
            delay = self.retry_delay * 2 ** (row.attempts - 1)
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(
                    status=JobStatus.QUEUED.value,
                    claimed_by=None,
                    lease_expires_at=None,
                    run_after=now + delay,
                    error=message,
                )
            )
            if handler is not None:
                note = f"attempt {row.attempts} of {row.max_attempts} failed ({message}); retrying"
                await handler.requeued(conn, row.payload, note)
            return
        if retry:
            message = f"failed after {row.attempts} attempts: {message}"
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(
                status=JobStatus.FAILED.value,
                lease_expires_at=None,
                finished_at=now,
                error=message,
            )
        )
        if handler is not None:
            await handler.failed(conn, row.payload, message)


async def recent_jobs(engine: AsyncEngine, limit: int) -> list[Row[Any]]:
    """The newest jobs first, for operators."""
    async with engine.connect() as conn:
        result = await conn.execute(select(jobs).order_by(jobs.c.id.desc()).limit(limit))
        return list(result)


def count_jobs(engine: Engine) -> list[tuple[str, str, int]]:
    """How many jobs of each kind are in each status (for ``/metrics``; blocking)."""
    statement = select(jobs.c.kind, jobs.c.status, func.count()).group_by(
        jobs.c.kind, jobs.c.status
    )
    with engine.connect() as conn:
        return [(kind, status, int(count)) for kind, status, count in conn.execute(statement)]
