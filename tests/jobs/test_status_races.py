"""Crawl runs and trainings change state under concurrency on both databases: a crawler
writes only the run it still holds, and only one training is ever asked for at a time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.errors import Conflict
from bookql.crawls.runs import (
    RunCounts,
    RunLost,
    create_run,
    fail_if_active,
    finish_run,
    get_run,
    record_progress,
)
from bookql.crawls.tables import CrawlStatus, crawl_runs
from bookql.db.engine import async_write_transaction, create_async_db_engine
from bookql.ml.tables import ModelStatus, model_trainings
from bookql.ml.training_runs import finish_training, queue_training
from tests.conftest import ScratchDatabase

FINISHED = RunCounts(pages=50, items=1000, new_books=1000)


@pytest.fixture
async def engine(empty_db: ScratchDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_async_db_engine(empty_db.settings())
    yield engine
    await engine.dispose()


async def _finish(engine: AsyncEngine, run_id: int) -> bool:
    """What the crawler does at its end; False when the run was no longer its own."""
    try:
        async with async_write_transaction(engine) as conn:
            await finish_run(
                conn, run_id, status=CrawlStatus.SUCCEEDED, counts=FINISHED, complete=True
            )
    except RunLost:
        return False
    return True


async def _give_up(engine: AsyncEngine, run_id: int) -> bool:
    """What the job does when it fails the run for good."""
    async with async_write_transaction(engine) as conn:
        return await fail_if_active(conn, run_id, "the job gave up")


async def test_a_crawler_and_its_job_ending_a_run_at_once_agree(engine: AsyncEngine) -> None:
    """The crawler finishing and its job giving up at the same moment: exactly one of them
    ends the run, and the run says what that one did (never a failed job's SUCCEEDED run)."""
    for trial in range(8):
        run = await create_run(engine, "http://mirror/", status=CrawlStatus.RUNNING)
        racers = [_finish(engine, run.id), _give_up(engine, run.id)]
        if trial % 2:
            racers.reverse()
        outcomes = await asyncio.gather(*racers)
        finished, gave_up = outcomes if trial % 2 == 0 else outcomes[::-1]
        ended = await get_run(engine, run.id)
        assert ended is not None and [finished, gave_up].count(True) == 1, (trial, outcomes)
        if finished:
            assert (ended.status, ended.items, ended.complete) == ("SUCCEEDED", 1000, True)
        else:
            assert (ended.status, ended.message, ended.items) == ("FAILED", "the job gave up", 0)
        assert ended.active_slot is None


async def test_a_crawler_whose_run_moved_on_writes_nothing(engine: AsyncEngine) -> None:
    """Failed by its job, or started again by another attempt (another pid), the run is no
    longer this crawler's: its progress and its end change nothing, removals included."""
    run = await create_run(engine, "http://mirror/", status=CrawlStatus.RUNNING)
    assert await record_progress(engine, run.id, RunCounts(pages=3))
    assert await _give_up(engine, run.id)
    assert not await record_progress(engine, run.id, RunCounts(pages=9, items=90))
    assert not await _finish(engine, run.id)
    failed = await get_run(engine, run.id)
    assert failed is not None
    assert (failed.status, failed.pages, failed.items) == ("FAILED", 3, 0)

    taken = await create_run(engine, "http://mirror/", status=CrawlStatus.RUNNING)
    async with async_write_transaction(engine) as conn:  # another attempt's crawler has it now
        await conn.execute(
            update(crawl_runs).where(crawl_runs.c.id == taken.id).values(pid=os.getpid() + 1)
        )
    assert not await record_progress(engine, taken.id, RunCounts(pages=7))
    assert not await _finish(engine, taken.id)
    running = await get_run(engine, taken.id)
    assert running is not None
    assert (running.status, running.pages, running.active_slot) == ("RUNNING", 0, 1)


async def test_one_training_however_many_ask_at_once(engine: AsyncEngine) -> None:
    for trial in range(3):
        asked = await asyncio.gather(
            *[
                queue_training(
                    engine, seed=trial, activate=False, requested_by=None, max_attempts=1
                )
                for _ in range(6)
            ],
            return_exceptions=True,
        )
        queued = [result for result in asked if not isinstance(result, BaseException)]
        refused = [result for result in asked if isinstance(result, Conflict)]
        assert (len(queued), len(refused)) == (1, 5), asked
        async with engine.connect() as conn:
            training = (
                await conn.execute(
                    select(model_trainings.c.version).where(
                        model_trainings.c.status == ModelStatus.TRAINING.value
                    )
                )
            ).all()
        assert [row.version for row in training] == [queued[0].version]
        async with async_write_transaction(engine) as conn:
            await finish_training(conn, queued[0].version, ModelStatus.FAILED, "next trial")
