"""Predictions and trainings for the API: every prediction logged, every training queued.

A prediction names its book (by id or UPC) or gives the features' raw inputs; either way the
one feature function turns it into model inputs. Predictions are logged with the request id,
user, model version, inputs, output and latency, so ``liveMetrics`` can later compare each
version's predictions with the prices the books actually have.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.catalog.tables import books
from bookql.core.config import Settings
from bookql.core.errors import BadUserInput, BookQLError, Conflict, NotFound, ServiceUnavailable
from bookql.core.metrics import PREDICTIONS
from bookql.db.blocking import BlockingDatabase
from bookql.ml.dataset import TrainingData
from bookql.ml.predictions import (
    Prediction,
    PredictionPipeline,
    PredictionRequest,
)
from bookql.ml.serving import ActiveModel, Predictor
from bookql.ml.store import (
    BrokenVersion,
    InvalidVersion,
    ModelStore,
    StoredModel,
    UnknownVersion,
    UnreadableModel,
)
from bookql.ml.tables import model_trainings, predictions
from bookql.ml.training_runs import queue_training

MAX_BATCH = 1000


class PriceService:
    def __init__(self, settings: Settings, engine: AsyncEngine, blocking: BlockingDatabase) -> None:
        self.engine = engine
        self.blocking = blocking
        self.pipeline = PredictionPipeline(blocking.engine)
        self.training_data = TrainingData(engine, settings.max_concurrent_exports)
        self.store = ModelStore(settings.effective_models_dir)
        self.active = ActiveModel(self.store)
        self.max_attempts = settings.job_max_attempts

    # -- predictions ---------------------------------------------------------------------

    async def predictor(self) -> Predictor:
        predictor = await self.active.get()
        if predictor is None:
            problem = self.active.serving.problem
            if problem is not None:
                raise ServiceUnavailable(f"no price model can be served: {problem}")
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
        results = await self.blocking.run(
            self.pipeline.run, requests, predictor, user_id=user_id, request_id=request_id
        )
        made = sum(not isinstance(result, BookQLError) for result in results)
        if made:
            PREDICTIONS.labels(predictor.version).inc(made)
        return results

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

    async def versions(self) -> tuple[list[StoredModel | UnreadableModel], list[Row[Any]]]:
        """Versions in the store (damaged ones with their problem), and trainings not stored
        (running or failed)."""
        stored = await asyncio.to_thread(self.store.versions)
        ready = {model.version for model in stored}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(model_trainings).order_by(model_trainings.c.version.desc())
            )
            pending = [row for row in rows if row.version not in ready]
        return stored, pending

    async def activate(self, version: str) -> StoredModel:
        """Check ``version`` and switch the alias to it; a bad one changes nothing:
        ``BAD_USER_INPUT`` (not a version name), ``NOT_FOUND``, ``CONFLICT`` (it is damaged)."""
        try:
            model = await asyncio.to_thread(self.store.activate, version)
        except InvalidVersion as exc:
            raise BadUserInput(str(exc), field="version") from None
        except UnknownVersion:
            raise NotFound(f"no ready model version {version!r}", field="version") from None
        except BrokenVersion as exc:
            raise Conflict(
                f"model version {version!r} cannot be served: {exc}", field="version"
            ) from None
        self.active.forget()
        return model

    async def start_training(
        self, *, seed: int, activate: bool, requested_by: int | None
    ) -> Row[Any]:
        """Queue a training; a job worker trains it (see ``bookql.ml.job``)."""
        return await queue_training(
            self.engine,
            seed=seed,
            activate=activate,
            requested_by=requested_by,
            max_attempts=self.max_attempts,
        )
