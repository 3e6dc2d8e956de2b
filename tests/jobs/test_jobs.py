"""Queued jobs on both databases: claimed once, renewed, retried, recovered, released."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction, create_async_db_engine
from bookql.db.types import utcnow
from bookql.jobs.handler import JobHandler
from bookql.jobs.queue import JobQueue, enqueue
from bookql.jobs.tables import jobs
from bookql.jobs.worker import Worker
from bookql.ml.store import ModelStore
from bookql.server.job_kinds import build_worker
from tests.conftest import ScratchDatabase
from tests.support.admin_session import admin_session, seed
from tests.support.job_kinds import Failing, Recorder, Sleeper, Waiting
from tests.support.workers import Tables, run_bookql, wait_until, worker_env

QUICK = {"job_lease_seconds": 2.0, "job_retry_delay_seconds": 0.0, "job_poll_seconds": 0.05}


@pytest.fixture
def settings(empty_db: ScratchDatabase) -> Settings:
    return empty_db.settings(**QUICK)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_db_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def tables(empty_db: ScratchDatabase) -> Any:
    tables = Tables(empty_db)
    yield tables
    tables.close()


async def queue(
    engine: AsyncEngine, kind: str, payloads: list[dict[str, Any]], *, max_attempts: int = 3
) -> list[int]:
    async with async_write_transaction(engine) as conn:
        return [await enqueue(conn, kind, p, max_attempts=max_attempts) for p in payloads]


def worker(engine: AsyncEngine, settings: Settings, handler: JobHandler, **options: Any) -> Worker:
    return Worker(
        JobQueue.for_settings(engine, settings),
        {handler.kind: handler},
        poll_seconds=settings.job_poll_seconds,
        **options,
    )


@pytest.mark.slow
async def test_each_job_is_claimed_exactly_once(settings: Settings, tables: Tables) -> None:
    """Four workers, each with its own connections and two slots, share fifty jobs."""
    engines = [create_async_db_engine(settings) for _ in range(4)]
    try:
        ids = await queue(engines[0], "record", [{"n": n} for n in range(50)])
        recorder = Recorder()
        workers = [worker(e, settings, recorder, concurrency=2) for e in engines]
        await asyncio.gather(*(w.run(once=True) for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(job for job, _, _ in recorder.runs) == ids
    assert len({name for _, _, name in recorder.runs}) > 1  # they did compete
    assert {(row.status, row.attempts) for row in tables.jobs()} == {("SUCCEEDED", 1)}
    assert {row.progress for row in tables.jobs()} == {1.0}


async def test_a_failing_job_is_retried_then_fails(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    [job_id] = await queue(engine, "fail", [{}], max_attempts=3)
    failing = Failing()
    await worker(engine, settings, failing).run(once=True)
    row = tables.job(job_id)
    assert (row.status, row.attempts) == ("FAILED", 3)
    assert row.error == "failed after 3 attempts: RuntimeError: boom"
    assert [attempt for _, attempt, _ in failing.runs] == [1, 2, 3]
    assert len(failing.requeued_messages) == 2
    assert "attempt 1 of 3 failed (RuntimeError: boom); retrying" in failing.requeued_messages
    assert failing.failed_messages == [row.error]


async def test_a_permanent_failure_is_not_retried(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    [job_id] = await queue(engine, "fail", [{"permanent": True}])
    failing = Failing()
    await worker(engine, settings, failing).run(once=True)
    row = tables.job(job_id)
    assert (row.status, row.attempts, row.error) == ("FAILED", 1, "this cannot work")
    assert failing.failed_messages == ["this cannot work"]


async def test_retries_wait_for_their_back_off(settings: Settings, tables: Tables) -> None:
    slow = settings.model_copy(update={"job_retry_delay_seconds": 3600.0})
    engine = create_async_db_engine(slow)
    try:
        [job_id] = await queue(engine, "fail", [{}])
        await worker(engine, slow, Failing()).run(once=True)
    finally:
        await engine.dispose()
    row = tables.job(job_id)
    assert (row.status, row.attempts) == ("QUEUED", 1)
    assert row.run_after - row.created_at > timedelta(minutes=59)


async def test_progress_is_reported_while_the_job_runs(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    [job_id] = await queue(engine, "wait", [{}])
    waiting = Waiting()
    running = asyncio.create_task(worker(engine, settings, waiting).run(once=True))
    for _ in range(200):
        row = tables.job(job_id)
        if row.progress_message is not None:
            break
        await asyncio.sleep(0.05)
    assert (row.status, row.progress, row.progress_message) == ("RUNNING", 0.5, "half way")
    assert row.lease_expires_at > row.heartbeat_at
    waiting.finish.set()
    await running
    assert tables.job(job_id).status == "SUCCEEDED"


async def test_a_stopping_worker_gives_its_job_back(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    [job_id] = await queue(engine, "wait", [{}])
    waiting = Waiting()
    stopping = worker(engine, settings, waiting, grace_seconds=0.2)
    running = asyncio.create_task(stopping.run())
    for _ in range(200):
        if waiting.runs:
            break
        await asyncio.sleep(0.05)
    stopping.stop()
    await running
    row = tables.job(job_id)
    assert (row.status, row.attempts, row.claimed_by) == ("QUEUED", 0, None)  # not counted
    assert waiting.requeued_messages == ["its worker stopped; queued again"]


async def test_a_lapsed_claim_on_the_last_attempt_fails_the_job(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    [job_id] = await queue(engine, "record", [{}], max_attempts=1)
    lapsing = JobQueue(engine, lease=timedelta(seconds=0.1), retry_delay=timedelta(0))
    claimed = await lapsing.claim("ghost", ["record"])
    assert claimed is not None
    assert await lapsing.claim("another", ["record"]) is None  # claimed once
    await asyncio.sleep(0.3)
    recorder = Recorder()
    assert await lapsing.recover_expired({"record": recorder}) == 1
    row = tables.job(job_id)
    message = "failed after 1 attempts: its worker (ghost) stopped renewing its claim"
    assert (row.status, row.error) == ("FAILED", message)
    assert recorder.failed_messages == [message]
    # the worker that lost it can no longer change it
    assert not await lapsing.heartbeat(claimed)
    assert not await lapsing.complete(claimed)


@pytest.mark.slow
def test_a_killed_worker_s_job_is_finished_by_another(
    empty_db: ScratchDatabase, settings: Settings, tables: Tables, tmp_path: Path
) -> None:
    async def queue_one() -> int:
        engine = create_async_db_engine(settings)
        try:
            [job_id] = await queue(engine, "sleep", [{"seconds": 600}])
        finally:
            await engine.dispose()
        return job_id

    job_id = asyncio.run(queue_one())
    env = worker_env(empty_db, job_lease_seconds="1")
    sleeper_log = empty_db.data_dir / "sleeper.log"
    with (tmp_path / "worker.log").open("wb") as output:
        doomed = subprocess.Popen(
            [sys.executable, "-m", "tests.support.job_kinds", empty_db.url, str(empty_db.data_dir)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: sleeper_log.is_file() and sleeper_log.read_text(), "the first start")
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    assert tables.job(job_id).status == "RUNNING"  # until its lease lapses

    async def take_over() -> str:
        engine = create_async_db_engine(settings)
        survivor = worker(engine, settings, Sleeper(empty_db.data_dir))
        running = asyncio.create_task(survivor.run())
        try:
            for _ in range(400):
                if tables.job(job_id).status == "SUCCEEDED":
                    break
                await asyncio.sleep(0.05)
        finally:
            survivor.stop()
            await running
            await engine.dispose()
        return survivor.name

    survivor = asyncio.run(take_over())
    row = tables.job(job_id)
    assert (row.status, row.attempts, row.claimed_by) == ("SUCCEEDED", 2, survivor)
    assert "its worker (" in row.error and "stopped renewing its claim" in row.error
    assert sleeper_log.read_text().splitlines() == [
        f"{job_id} 1 {doomed.pid} start",
        f"{job_id} 2 {os.getpid()} start",
        f"{job_id} 2 {os.getpid()} done",
    ]


@pytest.mark.slow
async def test_worker_once_trains_a_queued_model(empty_db: ScratchDatabase) -> None:
    """Queued from the command line, trained by `bookql worker --once` (a process of its own),
    then served by an API process that runs no jobs: activation reaches it through the store."""
    await seed(empty_db)
    env = worker_env(empty_db)
    queued = await asyncio.to_thread(run_bookql, env, "jobs", "enqueue", "train", "--activate")
    assert queued.returncode == 0, queued.stderr
    version = queued.stdout.split()[-1]
    worked = await asyncio.to_thread(run_bookql, env, "worker", "--once")
    assert worked.returncode == 0, worked.stderr
    assert "job 1 (train) claimed by" in worked.stderr
    listed = await asyncio.to_thread(run_bookql, env, "jobs", "list")
    assert listed.stdout.split()[:5] == ["1", "train", "SUCCEEDED", "1/3", "100%"]
    assert ModelStore(empty_db.data_dir / "models_store").active_version() == version

    async with admin_session(empty_db, seeded=False, run_jobs_in_server=False) as client:
        models = (await client.admin("{ models { version status active } }"))["models"]
        assert models == [{"version": version, "status": "READY", "active": True}]
        predicted = await client.data(
            'mutation { predictPrice(input: {upc: "a897fe39b1053632"}) { modelVersion } }',
            token=client.user_token,
        )
        assert predicted["predictPrice"]["modelVersion"] == version


@pytest.mark.slow
def test_a_worker_refuses_a_database_behind_the_code(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}
    result = run_bookql(env, "worker", "--once")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bookql: error: the database schema is behind: run `bookql db upgrade`"
    ]


async def age(engine: AsyncEngine, job_ids: list[int], days: float, **values: Any) -> None:
    """Pretend these jobs finished ``days`` ago."""
    async with async_write_transaction(engine) as conn:
        finished = utcnow() - timedelta(days=days)
        await conn.execute(
            update(jobs).where(jobs.c.id.in_(job_ids)).values(finished_at=finished, **values)
        )


async def test_finished_jobs_past_the_retention_are_pruned(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    done = await queue(engine, "record", [{"n": n} for n in range(4)])
    await worker(engine, settings, Recorder()).run(once=True)
    [waiting] = await queue(engine, "record", [{"n": 9}])
    await age(engine, done[:1], 31)
    await age(engine, done[1:2], 31, status="FAILED", error="gave up")
    await age(engine, done[2:3], 29)
    await age(engine, [waiting], 400, status="RUNNING")  # unfinished: kept whatever its age
    assert await JobQueue.for_settings(engine, settings).prune(timedelta(days=30)) == 2
    assert [row.id for row in tables.jobs()] == [*done[2:], waiting]
    assert await JobQueue.for_settings(engine, settings).prune(timedelta(days=30)) == 0


async def test_a_worker_prunes_with_the_configured_retention(
    settings: Settings, engine: AsyncEngine, tables: Tables
) -> None:
    done = await queue(engine, "record", [{"n": n} for n in range(2)])
    await worker(engine, settings, Recorder()).run(once=True)
    await age(engine, done[:1], 8)
    keeping = settings.model_copy(update={"job_retention_days": 0})
    await build_worker(keeping, engine).run(once=True)
    assert [row.id for row in tables.jobs()] == done  # 0 keeps every job
    weekly = settings.model_copy(update={"job_retention_days": 7})
    await build_worker(weekly, engine).run(once=True)
    assert [row.id for row in tables.jobs()] == done[1:]


@pytest.mark.slow
def test_jobs_prune_keeps_the_crawl_run_of_a_deleted_job(
    empty_db: ScratchDatabase, settings: Settings, tables: Tables
) -> None:
    env = worker_env(empty_db)
    queued = run_bookql(env, "jobs", "enqueue", "crawl")
    assert queued.returncode == 0, queued.stderr
    run_id, job_id = (int(word.strip("():")) for word in queued.stdout.split()[3:6:2])
    assert tables.run(run_id).job_id == job_id

    async def finish_and_age() -> None:
        engine = create_async_db_engine(settings)
        try:
            await age(engine, [job_id], 3, status="SUCCEEDED")
        finally:
            await engine.dispose()

    asyncio.run(finish_and_age())
    kept = run_bookql(env, "jobs", "prune")
    assert kept.stdout.strip() == "deleted 0 finished job(s) older than 30 day(s)"
    pruned = run_bookql(env, "jobs", "prune", "--older-than-days", "2")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.strip() == "deleted 1 finished job(s) older than 2 day(s)"
    assert tables.jobs() == []
    assert tables.run(run_id).job_id is None
