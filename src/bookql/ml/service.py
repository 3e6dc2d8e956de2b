"""Predictions and trainings for the API: every prediction logged, every training off the loop.

A prediction names its book (by id or UPC) or gives the features' raw inputs; either way the
one feature function turns it into model inputs. Predictions are logged with the request id,
user, model version, inputs, output and latency, so ``liveMetrics`` can later compare each
version's predictions with the prices the books actually have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.api.errors import BadUserInput, BookQLError, Conflict, NotFound, ServiceUnavailable
from bookql.catalog.models import books
from bookql.core.config import Settings
from bookql.core.processes import process_alive
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow
from bookql.ml.features import load_books_frame, load_categories
from bookql.ml.models import ModelStatus, model_trainings, predictions
from bookql.ml.predicting import (
    Prediction,
    PredictionPipeline,
    PredictionRequest,
)
from bookql.ml.predictor import ActiveModel, Predictor
from bookql.ml.store import ModelStore, StoredModel, UnknownVersion, new_version
from bookql.ml.training import train_price_model
from bookql.ml.training_data import TrainingData

log = logging.getLogger("bookql.ml")
MAX_BATCH = 1000


class PriceService:
    def __init__(self, settings: Settings, engine: AsyncEngine, blocking: BlockingDatabase) -> None:
        self.engine = engine
        self.blocking = blocking
        self.pipeline = PredictionPipeline(blocking.engine)
        self.training_data = TrainingData(engine, settings.max_concurrent_exports)
        self.store = ModelStore(settings.effective_models_dir)
        self.active = ActiveModel(self.store)
        self._trainings: set[asyncio.Task[None]] = set()

    # -- predictions ---------------------------------------------------------------------

    async def predictor(self) -> Predictor:
        predictor = await self.active.get()
        if predictor is None:
            raise ServiceUnavailable(
                "no price model is active yet: train one (bookql train --activate, or trainModel)"
            )
        return predictor

    async def predict(
        self,
        requests: list[PredictionRequest],
        *,
        user_id: int | None,
        request_id: str | None,
    ) -> list[Prediction | BookQLError]:
        """One result per request, in order: a prediction, or the error that item met."""
        if len(requests) > MAX_BATCH:
            raise BadUserInput(f"at most {MAX_BATCH} predictions per request")
        predictor = await self.predictor()
        return await self.blocking.run(
            self.pipeline.run, requests, predictor, user_id=user_id, request_id=request_id
        )

    async def live_metrics(self) -> dict[str, tuple[int, float | None]]:
        """Per version: predictions of books still known, and their MAE against today's price."""
        error = func.abs(predictions.c.price - books.c.price_incl_tax_pence / 100.0)
        statement = (
            select(predictions.c.model_version, func.count(), func.avg(error))
            .select_from(predictions.join(books, books.c.id == predictions.c.book_id))
            .group_by(predictions.c.model_version)
        )
        async with self.engine.connect() as conn:
            return {
                version: (int(count), float(mae) if mae is not None else None)
                for version, count, mae in await conn.execute(statement)
            }

    # -- versions and trainings ----------------------------------------------------------

    async def versions(self) -> tuple[list[StoredModel], list[Row[Any]]]:
        """Ready versions from the store, and trainings not ready (running or failed)."""
        await self.fail_orphaned_trainings()
        stored = await asyncio.to_thread(self.store.versions)
        ready = {model.version for model in stored}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(model_trainings).order_by(model_trainings.c.version.desc())
            )
            pending = [row for row in rows if row.version not in ready]
        return stored, pending

    async def activate(self, version: str) -> StoredModel:
        try:
            model = await asyncio.to_thread(self.store.activate, version)
        except UnknownVersion:
            raise NotFound(f"no ready model version {version!r}", field="version") from None
        self.active.forget()
        return model

    async def fail_orphaned_trainings(self) -> None:
        """Trainings left TRAINING by a server process on this host that has since died."""
        host = socket.gethostname()
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(model_trainings.c.version, model_trainings.c.pid).where(
                    model_trainings.c.status == ModelStatus.TRAINING.value,
                    model_trainings.c.host == host,
                )
            )
            dead = [row.version for row in rows if row.pid is None or not process_alive(row.pid)]
        if not dead:
            return
        async with async_write_transaction(self.engine) as conn:
            await conn.execute(
                update(model_trainings)
                .where(
                    model_trainings.c.version.in_(dead),
                    model_trainings.c.status == ModelStatus.TRAINING.value,
                )
                .values(
                    status=ModelStatus.FAILED.value,
                    finished_at=utcnow(),
                    message="the server process ended during training",
                )
            )

    async def start_training(
        self, *, seed: int, activate: bool, requested_by: int | None
    ) -> Row[Any]:
        await self.fail_orphaned_trainings()
        async with async_write_transaction(self.engine) as conn:
            running = await conn.execute(
                select(model_trainings.c.version).where(
                    model_trainings.c.status == ModelStatus.TRAINING.value
                )
            )
            if running.first() is not None:
                raise Conflict("a model is already training: wait for it to finish")
            now = utcnow()
            version = new_version(now)
            result = await conn.execute(
                model_trainings.insert()
                .values(
                    version=version,
                    status=ModelStatus.TRAINING.value,
                    requested_by=requested_by,
                    seed=seed,
                    created_at=now,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
                .returning(*model_trainings.c)
            )
            row = result.one()
        task = asyncio.create_task(self._train(version, seed, activate))
        self._trainings.add(task)
        task.add_done_callback(self._trainings.discard)
        return row

    async def _train(self, version: str, seed: int, activate: bool) -> None:
        try:
            async with self.engine.connect() as conn:
                frame = await load_books_frame(conn)
                names = await load_categories(conn)
            trained = await asyncio.to_thread(train_price_model, frame, names, seed=seed)
            await asyncio.to_thread(self.store.save, trained, version=version)
            if activate:
                await self.activate(version)
            await self._finish(version, ModelStatus.READY, None)
        except asyncio.CancelledError:
            await self._finish(version, ModelStatus.FAILED, "the server stopped during training")
            raise
        except Exception as exc:
            log.error("training %s failed", version, exc_info=exc)
            await self._finish(version, ModelStatus.FAILED, f"{type(exc).__name__}: {exc}")

    async def _finish(self, version: str, status: ModelStatus, message: str | None) -> None:
        async with async_write_transaction(self.engine) as conn:
            await conn.execute(
                update(model_trainings)
                .where(model_trainings.c.version == version)
                .values(status=status.value, finished_at=utcnow(), message=message)
            )

    async def wait_for_trainings(self) -> None:
        """For tests and shutdown: let running trainings end."""
        if self._trainings:
            await asyncio.gather(*self._trainings, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._trainings):
            task.cancel()
        await self.wait_for_trainings()
