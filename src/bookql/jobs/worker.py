"""The worker loop: claim a job, keep its lease alive while it runs, record how it ended.

Each of ``concurrency`` slots claims and runs one job at a time. While a job runs, its
heartbeat renews the lease (and writes the progress the job reported); a heartbeat that finds
the job no longer ours (the lease lapsed and the queue moved on) cancels the job and records
nothing. Beside the slots, a sweep puts back the jobs of workers that vanished and, hourly,
deletes the finished jobs older than the retention. Stopping claims nothing more, lets running
jobs finish for a grace period, then cancels them and gives them back to the queue without
counting the attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from bookql.jobs.handler import ClaimedJob, JobHandler, PermanentJobError, Progress
from bookql.jobs.queue import JobQueue

log = logging.getLogger("bookql.jobs")
PROGRESS_WRITE_SECONDS = 1.0  # progress reaches the table at most this often
SWEEP_SECONDS_MAX = 15.0
PRUNE_SECONDS = 3600.0  # finished jobs are pruned at most this often per worker
DATABASE_ERRORS = (SQLAlchemyError, OSError)  # down, unreachable, or out of connections


def worker_name() -> str:
    """Unique per worker, and says where it runs: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class _Execution:
    job: ClaimedJob
    handler: JobHandler
    task: asyncio.Task[None]
    progress: Progress
    lost: bool = False
    released: bool = False


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 1,
        poll_seconds: float = 1.0,
        grace_seconds: float = 30.0,
        retention: timedelta | None = None,
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.retention = retention
        self._pruned_at: float | None = None
        self.name = name or worker_name()
        self._stopping = asyncio.Event()
        self._release_now = asyncio.Event()
        self._running: dict[int, _Execution] = {}

    async def run(self, *, once: bool = False) -> None:
        """Run jobs until :meth:`stop` (with ``once``: until no job is due)."""
        log.info("job worker %s: running %s", self.name, ", ".join(sorted(self.handlers)))
        await self._sweep()
        tasks = [asyncio.create_task(self._slot(once)) for _ in range(self.concurrency)]
        helpers = [
            asyncio.create_task(self._sweep_periodically()),
            asyncio.create_task(self._release_after_grace()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *helpers]:
                task.cancel()
            await asyncio.gather(*tasks, *helpers, return_exceptions=True)
        log.info("job worker %s: stopped", self.name)

    @asynccontextmanager
    async def in_background(self) -> AsyncIterator[None]:
        """Run beside other work on this event loop (the API server's) until the block ends."""
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            self.stop()
            await task

    def stop(self, *, now: bool = False) -> None:
        """Claim nothing more; running jobs get the grace period (none with ``now``)."""
        self._stopping.set()
        if now:
            self._release_now.set()

    async def _slot(self, once: bool) -> None:
        while not self._stopping.is_set():
            try:
                job = await self.queue.claim(self.name, self.handlers)
            except DATABASE_ERRORS as exc:
                log.warning("job worker %s: could not claim: %s", self.name, exc)
                job = None
            else:
                if job is None and once:
                    return
            if job is None:
                await self._idle(self.poll_seconds)
            else:
                await self._execute(job)

    async def _idle(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers[job.kind]
        log.info(
            "job %s (%s) claimed by %s: attempt %d of %d",
            job.id,
            job.kind,
            self.name,
            job.attempt,
            job.max_attempts,
        )
        progress = Progress()
        task = asyncio.create_task(handler.run(job, progress), name=f"job-{job.id}")
        execution = _Execution(job, handler, task, progress)
        self._running[job.id] = execution
        heartbeat = asyncio.create_task(self._heartbeat(execution))
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            execution.released = True  # the worker itself is being torn down
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            del self._running[job.id]
            await self._record(execution)

    async def _record(self, execution: _Execution) -> None:
        """Write how the attempt ended; if that fails, the lapsing lease will say it instead."""
        job, task, handler = execution.job, execution.task, execution.handler
        if execution.lost:
            log.warning("job %s: another worker holds it now; this attempt is dropped", job.id)
            return
        try:
            if task.cancelled():
                if execution.released:
                    await self.queue.release(job, handler, "its worker stopped; queued again")
                    log.info("job %s: released for another worker", job.id)
                return
            error = task.exception()
            if error is None:
                await self.queue.complete(job)
                log.info("job %s (%s) succeeded", job.id, job.kind)
            elif isinstance(error, PermanentJobError):
                await self.queue.fail(job, str(error), handler, retry=False)
                log.error("job %s (%s) failed: %s", job.id, job.kind, error)
            else:
                message = f"{type(error).__name__}: {error}"
                await self.queue.fail(job, message, handler, retry=True)
                log.error("job %s (%s) attempt failed", job.id, job.kind, exc_info=error)
        except DATABASE_ERRORS as exc:
            log.error("job %s: could not record its end (its lease will lapse): %s", job.id, exc)

    async def _heartbeat(self, execution: _Execution) -> None:
        renew_every = self.queue.lease.total_seconds() / 4
        tick = min(PROGRESS_WRITE_SECONDS, renew_every)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            update = execution.progress.take()
            if update is None and time.monotonic() - renewed < renew_every:
                continue
            try:
                owned = await self.queue.heartbeat(execution.job, update)
            except DATABASE_ERRORS as exc:
                log.warning("job %s: could not renew its lease: %s", execution.job.id, exc)
                continue
            renewed = time.monotonic()
            if not owned:
                execution.lost = True
                execution.task.cancel()
                return

    async def _sweep(self) -> None:
        try:
            recovered = await self.queue.recover_expired(self.handlers)
        except DATABASE_ERRORS as exc:
            log.warning("job worker %s: could not look for lapsed jobs: %s", self.name, exc)
            return
        if recovered:
            log.warning("job worker %s: took back %d job(s) of lost workers", self.name, recovered)
        await self._prune_now_and_then()

    async def _prune_now_and_then(self) -> None:
        if self.retention is None:
            return
        if self._pruned_at is not None and time.monotonic() - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = time.monotonic()
        try:
            pruned = await self.queue.prune(self.retention)
        except DATABASE_ERRORS as exc:
            log.warning("job worker %s: could not prune finished jobs: %s", self.name, exc)
            return
        if pruned:
            log.info("job worker %s: deleted %d finished job(s)", self.name, pruned)

    async def _sweep_periodically(self) -> None:
        every = min(max(self.poll_seconds, self.queue.lease.total_seconds() / 4), SWEEP_SECONDS_MAX)
        while True:
            await asyncio.sleep(every)
            await self._sweep()

    async def _release_after_grace(self) -> None:
        await self._stopping.wait()
        if self._running:
            log.info(
                "job worker %s: stopping; %d job(s) have %.0f s to finish",
                self.name,
                len(self._running),
                self.grace_seconds,
            )
        with suppress(TimeoutError):
            await asyncio.wait_for(self._release_now.wait(), self.grace_seconds)
        for execution in list(self._running.values()):
            execution.released = True
            execution.task.cancel()
