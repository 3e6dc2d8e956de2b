"""The ``train`` job: train a queued version off the event loop, store it, maybe activate it.

Trying again is safe: a version already in the store (its attempt saved it, then its worker
died) is not trained twice, and activation is an atomic rename of the alias file, which
every process serving predictions follows within a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction
from bookql.jobs.handler import ClaimedJob, PermanentJobError, Progress
from bookql.ml.features import load_training_set
from bookql.ml.price_model import train_price_model
from bookql.ml.store import BrokenVersion, ModelStore, UnknownVersion
from bookql.ml.tables import ModelStatus
from bookql.ml.training_runs import (
    TRAIN_JOB,
    begin_training,
    finish_training,
    note_training,
)


class TrainingJob:
    kind = TRAIN_JOB

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        activated: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store = ModelStore(settings.effective_models_dir)
        self._activated = activated

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        version = str(job.payload["version"])
        if not await begin_training(self.engine, version):
            return  # settled already (an earlier attempt finished before its worker said so)
        if not await asyncio.to_thread(self._stored, version):
            progress.report("loading the catalogue", 0.0)
            frame, names = await load_training_set(self.engine)
            seed = int(job.payload["seed"])
            try:
                trained = await asyncio.to_thread(
                    train_price_model, frame, names, seed=seed, progress=progress.report
                )
            except ValueError as exc:  # too few books: no retry will find more
                raise PermanentJobError(str(exc)) from None
            await asyncio.to_thread(self.store.save, trained, version=version)
        if job.payload.get("activate"):
            try:
                await asyncio.to_thread(self.store.activate, version)
            except BrokenVersion as exc:  # stored, but it failed its checks: no retry mends it
                raise PermanentJobError(f"model {version} was not activated: {exc}") from None
            if self._activated is not None:
                self._activated()
        async with async_write_transaction(self.engine) as conn:
            await finish_training(conn, version, ModelStatus.READY, None)

    async def requeued(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        await note_training(conn, str(payload["version"]), message)

    async def failed(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        await finish_training(conn, str(payload["version"]), ModelStatus.FAILED, message)

    def _stored(self, version: str) -> bool:
        try:
            self.store.get(version)
        except UnknownVersion:
            return False
        except BrokenVersion:
            return True  # stored, damaged since: activation refuses it
        return True
