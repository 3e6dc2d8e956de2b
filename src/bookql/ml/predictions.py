"""Making and logging predictions: all of it blocking work, done in one worker-thread call.

A prediction looks up its books, builds the feature frame, calls the model and writes the
log. Every step blocks (database, pandas, XGBoost), so the whole of it runs on a worker
thread with a sync engine: the event loop pays one thread hop per request rather than one
per statement (aiosqlite) plus one for the model. The log is written before the answer
leaves, so every prediction a caller sees has its row, and its id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from bookql.catalog.tables import books, categories, descriptions
from bookql.core.errors import BadUserInput, BookQLError, NotFound
from bookql.db.engine import write_transaction
from bookql.db.types import utcnow
from bookql.ml.features import FEATURES, BookInputs, feature_rows, features_frame
from bookql.ml.serving import Predictor
from bookql.ml.tables import predictions

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


@dataclass(frozen=True)
class _Subject:
    """What a prediction is about: the feature inputs, and the book when the catalogue has it."""

    inputs: BookInputs
    book_id: int | None
    actual_price: float | None


_BOOKS_BY_UPC = (
    select(
        books.c.id,
        books.c.upc,
        books.c.title,
        categories.c.name.label("category"),
        books.c.rating,
        books.c.availability,
        descriptions.c.description,
        books.c.price_incl_tax_pence.label("pence"),
    )
    .select_from(
        books.join(categories).outerjoin(descriptions, descriptions.c.book_id == books.c.id)
    )
    .where(books.c.upc.in_(bindparam("upcs", expanding=True)))
)
# executemany form: compiled once and cached, batched by SQLAlchemy's "insertmanyvalues"
_LOG_PREDICTIONS = predictions.insert().returning(predictions.c.id, sort_by_parameter_order=True)


class PredictionPipeline:
    """Look-ups, features, model and log for a batch of requests; call it off the loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._names: tuple[float, dict[str, str]] | None = None
        self._names_lock = threading.Lock()

    def run(
        self,
        requests: Sequence[PredictionRequest],
        predictor: Predictor,
        *,
        user_id: int | None,
        request_id: str | None,
    ) -> list[Prediction | BookQLError]:
        """One result per request, in order: a prediction, or the error that item met."""
        started = time.perf_counter()
        results: list[Prediction | BookQLError | None] = [None] * len(requests)
        subjects: list[_Subject] = []
        positions: list[int] = []
        with self.engine.connect() as conn:
            known = _books(conn, [r.upc for r in requests if r.upc is not None])
            names = self._category_names(conn)
        for index, request in enumerate(requests):
            try:
                subjects.append(_subject(request, known, names))
                positions.append(index)
            except BookQLError as error:
                results[index] = error
        if subjects:
            rows = feature_rows((s.inputs for s in subjects), set(predictor.categories))
            prices = predictor.predict(features_frame(rows, predictor.categories))
            latency = (time.perf_counter() - started) * 1000 / len(rows)
            stored = self._log(
                subjects, rows, prices.tolist(), predictor, latency, user_id, request_id
            )
            for index, prediction in zip(positions, stored, strict=True):
                results[index] = prediction
        return [result for result in results if result is not None]

    def _category_names(self, conn: Connection) -> dict[str, str]:
        """Every way a caller may name a category (slug or name, any case) -> its name."""
        with self._names_lock:
            now = time.monotonic()
            if self._names is None or now - self._names[0] >= CATEGORY_CACHE_SECONDS:
                rows = conn.execute(select(categories.c.name, categories.c.slug))
                names = {key: name for name, slug in rows for key in (name.lower(), slug)}
                self._names = (now, names)
            return self._names[1]

    def _log(
        self,
        subjects: list[_Subject],
        rows: list[tuple[Any, ...]],
        prices: list[float],
        predictor: Predictor,
        latency_ms: float,
        user_id: int | None,
        request_id: str | None,
    ) -> list[Prediction]:
        now = utcnow()
        values: list[dict[str, Any]] = []
        for subject, features, price in zip(subjects, rows, prices, strict=True):
            price = max(price, 0.0)
            values.append(
                {
                    "created_at": now,
                    "request_id": request_id,
                    "user_id": user_id,
                    "model_version": predictor.version,
                    "book_id": subject.book_id,
                    "features": dict(zip(FEATURES, features, strict=True)),
                    "price": round(price, 2),
                    "lower": round(max(price - predictor.half_width, 0.0), 2),
                    "upper": round(price + predictor.half_width, 2),
                    "latency_ms": latency_ms,
                }
            )
        with write_transaction(self.engine) as conn:
            ids = [row.id for row in conn.execute(_LOG_PREDICTIONS, values)]
        return [
            Prediction(
                id=prediction_id,
                price=value["price"],
                lower=value["lower"],
                upper=value["upper"],
                model_version=value["model_version"],
                book_id=value["book_id"],
                created_at=now,
                actual_price=subject.actual_price,
            )
            for prediction_id, value, subject in zip(ids, values, subjects, strict=True)
        ]


def _books(conn: Connection, upcs: list[str]) -> dict[str, _Subject]:
    if not upcs:
        return {}
    return {
        row.upc: _Subject(
            inputs=BookInputs(
                row.category, row.rating, row.availability, row.title, row.description
            ),
            book_id=row.id,
            actual_price=row.pence / 100,
        )
        for row in conn.execute(_BOOKS_BY_UPC, {"upcs": list(set(upcs))})
    }


def _subject(
    request: PredictionRequest, known: dict[str, _Subject], names: dict[str, str]
) -> _Subject:
    if request.upc is not None:
        book = known.get(request.upc)
        if book is None:
            raise NotFound(f"no book with UPC {request.upc!r}", field="book")
        return book
    assert request.inputs is not None
    given = request.inputs
    category = names.get(given.category.lower())
    if category is None:
        raise BadUserInput(f"no category {given.category!r} (a slug or a name)", field="category")
    if not 1 <= given.rating <= 5:
        raise BadUserInput("`rating` must be between 1 and 5", field="rating")
    if given.availability < 0:
        raise BadUserInput("`availability` must not be negative", field="availability")
    if not given.title.strip() or len(given.title) > 1000:
        raise BadUserInput("`title` must have 1 to 1000 characters", field="title")
    inputs = BookInputs(category, given.rating, given.availability, given.title, given.description)
    return _Subject(inputs=inputs, book_id=None, actual_price=None)
