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
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.api.errors import BadUserInput, BookQLError, Conflict, NotFound, ServiceUnavailable
from bookql.catalog.models import books, categories, descriptions
from bookql.core.config import Settings
from bookql.core.processes import process_alive
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow
from bookql.ml.features import book_features, load_books_frame, load_categories
from bookql.ml.models import ModelStatus, model_trainings, predictions
from bookql.ml.predictor import ActiveModel, Predictor
from bookql.ml.store import ModelStore, StoredModel, UnknownVersion, new_version
from bookql.ml.training import train_price_model

log = logging.getLogger("bookql.ml")
MAX_BATCH = 1000
CATEGORY_CACHE_SECONDS = 5.0  # a new category becomes predictable within this


@dataclass(frozen=True)
class FeatureInputs:
    """The raw inputs of the features, for a book the catalogue does not hold."""

    category: str
    rating: int
    availability: int
    title: str
    description: str | None = None


@dataclass(frozen=True)
class PredictionRequest:
    upc: str | None = None
    inputs: FeatureInputs | None = None


@dataclass(frozen=True)
class Prediction:
    id: int
    price: float
    lower: float
    upper: float
    model_version: str
    book_id: int | None
    created_at: datetime
    actual_price: float | None = None


class PriceService:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.engine = engine
        self.store = ModelStore(settings.effective_models_dir)
        self.active = ActiveModel(self.store)
        self._trainings: set[asyncio.Task[None]] = set()
        self._names: tuple[float, dict[str, str]] | None = None

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
        started = time.perf_counter()
        results: list[Prediction | BookQLError | None] = [None] * len(requests)
        rows: list[dict[str, Any]] = []
        positions: list[int] = []
        known = await self._books([r.upc for r in requests if r.upc is not None])
        names = await self._category_names()
        for index, request in enumerate(requests):
            try:
                rows.append(self._inputs(request, known, names))
                positions.append(index)
            except BookQLError as error:
                results[index] = error
        if rows:
            frame = pd.DataFrame(rows)
            features = book_features(frame, predictor.categories)
            prices = await asyncio.to_thread(predictor.predict, features)
            latency = (time.perf_counter() - started) * 1000 / len(rows)
            stored = await self._log(
                frame, features, prices, predictor, latency, user_id, request_id
            )
            for index, prediction in zip(positions, stored, strict=True):
                results[index] = prediction
        return [result for result in results if result is not None]

    def _inputs(
        self, request: PredictionRequest, known: dict[str, Any], names: dict[str, str]
    ) -> dict[str, Any]:
        if request.upc is not None:
            book = known.get(request.upc)
            if book is None:
                raise NotFound(f"no book with UPC {request.upc!r}", field="book")
            return dict(book._mapping)
        assert request.inputs is not None
        given = request.inputs
        category = names.get(given.category.lower())
        if category is None:
            raise BadUserInput(
                f"no category {given.category!r} (a slug or a name)", field="category"
            )
        if not 1 <= given.rating <= 5:
            raise BadUserInput("`rating` must be between 1 and 5", field="rating")
        if given.availability < 0:
            raise BadUserInput("`availability` must not be negative", field="availability")
        if not given.title.strip() or len(given.title) > 1000:
            raise BadUserInput("`title` must have 1 to 1000 characters", field="title")
        return {
            "id": None,
            "upc": None,
            "title": given.title,
            "category": category,
            "rating": given.rating,
            "availability": given.availability,
            "description": given.description,
            "price": None,
        }

    async def _books(self, upcs: list[str]) -> dict[str, Any]:
        if not upcs:
            return {}
        statement = (
            select(
                books.c.id,
                books.c.upc,
                books.c.title,
                categories.c.name.label("category"),
                books.c.rating,
                books.c.availability,
                descriptions.c.description,
                (books.c.price_incl_tax_pence / 100.0).label("price"),
            )
            .select_from(
                books.join(categories).outerjoin(descriptions, descriptions.c.book_id == books.c.id)
            )
            .where(books.c.upc.in_(set(upcs)))
        )
        async with self.engine.connect() as conn:
            return {row.upc: row for row in await conn.execute(statement)}

    async def _category_names(self) -> dict[str, str]:
        """Every way a caller may name a category (slug or name, any case) -> its name."""
        now = time.monotonic()
        if self._names is not None and now - self._names[0] < CATEGORY_CACHE_SECONDS:
            return self._names[1]
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(categories.c.name, categories.c.slug))
            names = {key: name for name, slug in rows for key in (name.lower(), slug)}
        self._names = (now, names)
        return names

    async def _log(
        self,
        frame: pd.DataFrame,
        features: pd.DataFrame,
        prices: Any,
        predictor: Predictor,
        latency_ms: float,
        user_id: int | None,
        request_id: str | None,
    ) -> list[Prediction]:
        now = utcnow()
        inputs = features.astype({"category": "object"}).to_dict(orient="records")
        books_seen = frame.to_dict(orient="records")
        values: list[dict[str, Any]] = []
        for row, features_row, price in zip(books_seen, inputs, prices, strict=True):
            price = max(float(price), 0.0)
            values.append(
                {
                    "created_at": now,
                    "request_id": request_id,
                    "user_id": user_id,
                    "model_version": predictor.version,
                    "book_id": row["id"] if pd.notna(row["id"]) else None,
                    "features": {k: (None if pd.isna(v) else v) for k, v in features_row.items()},
                    "price": round(price, 2),
                    "lower": round(max(price - predictor.half_width, 0.0), 2),
                    "upper": round(price + predictor.half_width, 2),
                    "latency_ms": latency_ms,
                }
            )
        async with async_write_transaction(self.engine) as conn:
            result = await conn.execute(
                predictions.insert().values(values).returning(predictions.c.id)
            )
            ids = [row.id for row in result]
        return [
            Prediction(
                id=prediction_id,
                price=value["price"],
                lower=value["lower"],
                upper=value["upper"],
                model_version=value["model_version"],
                book_id=value["book_id"],
                created_at=now,
                actual_price=row["price"] if pd.notna(row["price"]) else None,
            )
            for prediction_id, value, row in zip(ids, values, books_seen, strict=True)
        ]

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
