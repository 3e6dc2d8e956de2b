"""Training records (``model_trainings``): queued with their job, begun, finished.

A training is TRAINING from the moment it is asked for until it is READY or FAILED; its job
may wait in the queue, run, or be retried in the meantime. ``host`` and ``pid`` name the
worker process of the latest attempt. One training at a time: asking checks for a TRAINING
one under a lock that the next asker waits for (the table's, on PostgreSQL; SQLite's write
transaction), and every later change is an ``UPDATE`` conditioned on the status.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.errors import Conflict
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow
from bookql.jobs.queue import enqueue
from bookql.ml.store import new_version
from bookql.ml.tables import ModelStatus, model_trainings

TRAIN_JOB = "train"
TRAINING = ModelStatus.TRAINING.value


async def queue_training(
    engine: AsyncEngine,
    *,
    seed: int,
    activate: bool,
    requested_by: int | None,
    max_attempts: int,
) -> Row[Any]:
    """A new TRAINING version and the job that trains it; ``Conflict`` while one is training."""
    async with async_write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # No row to lock when none is training: lock out other askers (readers still pass).
            await conn.execute(text("LOCK TABLE model_trainings IN SHARE ROW EXCLUSIVE MODE"))
        running = await conn.execute(
            select(model_trainings.c.version).where(model_trainings.c.status == TRAINING)
        )
        if running.first() is not None:
            raise Conflict("a model is already training: wait for it to finish")
        now = utcnow()
        version = new_version(now)
        result = await conn.execute(
            model_trainings.insert()
            .values(
                version=version,
                status=TRAINING,
                requested_by=requested_by,
                seed=seed,
                created_at=now,
            )
            .returning(*model_trainings.c)
        )
        row = result.one()
        payload = {"version": version, "seed": seed, "activate": activate}
        await enqueue(conn, TRAIN_JOB, payload, max_attempts=max_attempts)
    return row


async def begin_training(engine: AsyncEngine, version: str) -> bool:
    """This process trains ``version`` now; False when it is no longer TRAINING."""
    async with async_write_transaction(engine) as conn:
        result = await conn.execute(
            update(model_trainings)
            .where(model_trainings.c.version == version, model_trainings.c.status == TRAINING)
            .values(host=socket.gethostname(), pid=os.getpid())
        )
    return bool(result.rowcount)


async def finish_training(
    conn: AsyncConnection, version: str, status: ModelStatus, message: str | None
) -> None:
    await conn.execute(
        update(model_trainings)
        .where(model_trainings.c.version == version, model_trainings.c.status == TRAINING)
        .values(status=status.value, finished_at=utcnow(), message=message)
    )


async def note_training(conn: AsyncConnection, version: str, message: str) -> None:
    """Say why a training still waits (an attempt failed, its worker went away)."""
    await conn.execute(
        update(model_trainings)
        .where(model_trainings.c.version == version, model_trainings.c.status == TRAINING)
        .values(message=message)
    )
