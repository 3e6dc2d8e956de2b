"""Job kinds for the queue's own tests, and a worker process that runs them.

``python -m tests.support.job_kinds DATABASE_URL DATA_DIR`` runs a worker for the ``sleep`` kind
(with the ``BOOKQL_JOB_*`` settings of its environment) until SIGTERM, or SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.core.config import Settings
from bookql.db.engine import create_async_db_engine
from bookql.jobs.handler import ClaimedJob, PermanentJobError, Progress
from bookql.jobs.queue import JobQueue
from bookql.jobs.worker import Worker


class Recorder:
    """Notes every run and every fate the queue decided, for the test to compare."""

    kind = "record"

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, str]] = []  # job, attempt, worker
        self.requeued_messages: list[str] = []
        self.failed_messages: list[str] = []

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        await asyncio.sleep(0.01)
        self.runs.append((job.id, job.attempt, job.claimed_by))

    async def requeued(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        self.requeued_messages.append(message)

    async def failed(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        self.failed_messages.append(message)


class Failing(Recorder):
    """Fails every attempt: ``permanent`` in the payload asks for no retries."""

    kind = "fail"

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        await super().run(job, progress)
        if job.payload.get("permanent"):
            raise PermanentJobError("this cannot work")
        raise RuntimeError("boom")


class Waiting(Recorder):
    """Reports half its progress, then waits for the test to let it finish."""

    kind = "wait"

    def __init__(self) -> None:
        super().__init__()
        self.finish = asyncio.Event()

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        self.runs.append((job.id, job.attempt, job.claimed_by))
        progress.report("half way", 0.5)
        await self.finish.wait()


class Sleeper(Recorder):
    """Writes each start and end to ``sleeper.log``; the first attempt sleeps a long time."""

    kind = "sleep"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.log = data_dir / "sleeper.log"

    def _note(self, job: ClaimedJob, event: str) -> None:
        with self.log.open("a") as file:
            file.write(f"{job.id} {job.attempt} {os.getpid()} {event}\n")

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        self._note(job, "start")
        await asyncio.sleep(float(job.payload["seconds"]) if job.attempt == 1 else 0)
        self._note(job, "done")


async def _main(database_url: str, data_dir: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=data_dir)
    engine = create_async_db_engine(settings)
    worker = Worker(
        JobQueue.for_settings(engine, settings),
        {Sleeper.kind: Sleeper(data_dir)},
        poll_seconds=settings.job_poll_seconds,
        grace_seconds=settings.job_shutdown_grace_seconds,
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], Path(sys.argv[2])))
