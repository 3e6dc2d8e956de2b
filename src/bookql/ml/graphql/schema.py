"""The price model's root fields: features, versions, predictions, training, activation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from sqlalchemy import ColumnElement, select
from strawberry.permission import BasePermission

from bookql.accounts.graphql.permissions import IsAdmin, IsAuthenticated
from bookql.catalog.graphql.types import Book
from bookql.catalog.queries import BOOK_COLUMNS
from bookql.catalog.tables import books, categories, descriptions
from bookql.core.errors import BadUserInput, BookQLError, NotFound
from bookql.db.keyset import Ordering, SortColumn
from bookql.graphql.relay import (
    CursorArgument,
    PageArgument,
    PageInfo,
    PageRequest,
    count_rows,
    expect_global_id,
    load_page,
)
from bookql.graphql.slots import per_user_stream
from bookql.ml.dataset import COLUMNS, Shape, book_id_after, cursor_after
from bookql.ml.features import BookInputs, feature_rows, load_categories
from bookql.ml.graphql.context import Info
from bookql.ml.graphql.types import (
    ActivateModelInput,
    ModelVersion,
    PredictionConnection,
    PredictionEdge,
    PredictionError,
    PredictPriceInput,
    PredictPriceResult,
    PredictPricesInput,
    PredictPricesPayload,
    PricePrediction,
    TrainingDataBatch,
    TrainModelInput,
)
from bookql.ml.integrity import InvalidVersion, check_version_name
from bookql.ml.predictions import FeatureInputs, Prediction, PredictionRequest
from bookql.ml.store import StoredModel, UnreadableModel
from bookql.ml.tables import predictions

SIGNED_IN: list[type[BasePermission]] = [IsAuthenticated]
DEFAULT_BATCH_SIZE = 10_000
ADMIN: list[type[BasePermission]] = [IsAdmin]
NEWEST_FIRST = Ordering("predictions", (SortColumn(predictions.c.id, descending=True),))
SITE_ORDER = Ordering("features", (SortColumn(books.c.id),))


@strawberry.type(description="A book's model inputs, as the one feature function makes them.")
class BookFeatures:
    book: Book
    category: str | None
    rating: int
    availability: int
    title_length: int
    title_words: int
    has_subtitle: bool
    in_series: bool
    series_number: float
    has_description: bool
    description_length: int
    description_words: int
    price: float = strawberry.field(description="The label: the book's price, GBP.")

    @classmethod
    def of(cls, row: Any, features: tuple[Any, ...]) -> BookFeatures:
        """A stored book and its ``feature_rows`` tuple (in ``FEATURES`` order)."""
        (category, rating, availability, title_length, title_words, has_subtitle,
         in_series, series_number, has_description, description_length,
         description_words) = features  # fmt: skip
        return cls(
            book=Book.from_row(row),
            category=category,
            rating=rating,
            availability=availability,
            title_length=title_length,
            title_words=title_words,
            has_subtitle=bool(has_subtitle),
            in_series=bool(in_series),
            series_number=series_number,
            has_description=bool(has_description),
            description_length=description_length,
            description_words=description_words,
            price=row.price_incl_tax_pence / 100,
        )


@strawberry.type
class BookFeaturesEdge:
    cursor: str
    node: BookFeatures


@strawberry.type
class BookFeaturesConnection:
    edges: list[BookFeaturesEdge]
    page_info: PageInfo


def _request(item: PredictPriceInput) -> PredictionRequest:
    if item.book_id not in (None, strawberry.UNSET):
        return PredictionRequest(upc=expect_global_id(str(item.book_id), "Book"))
    if item.upc not in (None, strawberry.UNSET):
        return PredictionRequest(upc=str(item.upc))
    features = item.features
    if features in (None, strawberry.UNSET):
        raise BadUserInput("give `bookId`, `upc` or `features`")
    assert features is not None
    return PredictionRequest(
        inputs=FeatureInputs(
            category=features.category,
            rating=features.rating,
            availability=features.availability,
            title=features.title,
            description=features.description,
        )
    )


async def _predict(info: Info, items: list[PredictPriceInput]) -> list[Prediction | BookQLError]:
    viewer = await info.context.auth.require_user()
    requests: list[PredictionRequest | BookQLError] = []
    for item in items:
        try:
            requests.append(_request(item))
        except BookQLError as error:
            requests.append(error)
    valid = [r for r in requests if isinstance(r, PredictionRequest)]
    made = iter(
        await info.context.ml.predict(
            valid, user_id=viewer.user_id, request_id=info.context.request_id
        )
    )
    return [next(made) if isinstance(r, PredictionRequest) else r for r in requests]


async def load_prediction_node(info: Info, key: str) -> PricePrediction | None:
    """As ``predictions`` lists them: another user's prediction is null, like a missing one.

    The permission is part of the one statement, so both answers cost the same round trip.
    """
    viewer = await info.context.auth.require_user()
    if not key.isdigit():
        return None
    visible = [predictions.c.id == int(key)]
    if not viewer.is_admin:
        visible.append(predictions.c.user_id == viewer.user_id)
    async with info.context.engine.connect() as conn:
        row = (await conn.execute(select(predictions).where(*visible))).one_or_none()
    if row is None:
        return None
    return PricePrediction.of(await _with_actual(info, row))


async def _with_actual(info: Info, row: Any) -> Prediction:
    actual = None
    if row.book_id is not None:
        book = await info.context.catalog.book_by_id.load(row.book_id)
        actual = book.price_incl_tax_pence / 100 if book is not None else None
    return Prediction(
        id=row.id,
        price=row.price,
        lower=row.lower,
        upper=row.upper,
        model_version=row.model_version,
        book_id=row.book_id,
        created_at=row.created_at,
        actual_price=actual,
    )


async def load_model_node(info: Info, key: str) -> ModelVersion | None:
    await info.context.auth.require_user()
    try:
        check_version_name(key)
    except InvalidVersion:
        return None
    return next((m for m in await _models(info) if m.version == key), None)


async def _models(info: Info) -> list[ModelVersion]:
    """Every version: stored ones (each with its problem, if any), trainings not stored, and
    the version this process serves from memory if its files are gone from the store."""
    service = info.context.ml
    await service.active.get()  # the serving state, up to date
    serving = service.active.serving
    stored: list[StoredModel | UnreadableModel]
    stored, pending = await service.versions()
    served = service.active.served_model
    if served is not None and all(m.version != served.version for m in stored):
        stored.append(dataclasses.replace(served, problem=serving.problem))
        pending = [row for row in pending if row.version != served.version]
    active = await asyncio.to_thread(service.store.active_version)
    live = await service.live_metrics()
    ready = [
        ModelVersion.from_stored(
            m,
            active=m.version == active,
            live=live.get(m.version),
            serving=serving if m.version in (serving.served, serving.alias) else None,
        )
        for m in stored
    ]
    return sorted(
        [*ready, *(ModelVersion.from_training(row) for row in pending)],
        key=lambda m: m.version,
        reverse=True,
    )


@strawberry.type
class MlQuery:
    @strawberry.field(description="Every listed book's model inputs.", permission_classes=SIGNED_IN)
    async def ml_features(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
    ) -> BookFeaturesConnection:
        page = PageRequest.from_args(first, after, last, before)
        engine = info.context.engine
        source = books.join(categories).outerjoin(
            descriptions, descriptions.c.book_id == books.c.id
        )
        columns: list[ColumnElement[Any]] = [
            *BOOK_COLUMNS,
            categories.c.name.label("category"),
            descriptions.c.description,
        ]
        result = await load_page(
            engine,
            page,
            columns=columns,
            where=[books.c.removed_at.is_(None)],
            ordering=SITE_ORDER,
            source=source,
        )
        async with engine.connect() as conn:
            names = await load_categories(conn)
        inputs = (
            BookInputs(row.category, row.rating, row.availability, row.title, row.description)
            for row in result.rows
        )
        edges = [
            BookFeaturesEdge(
                cursor=cursor,
                node=BookFeatures.of(row, features),
            )
            for row, cursor, features in zip(
                result.rows, result.cursors, feature_rows(inputs, set(names)), strict=True
            )
        ]
        return BookFeaturesConnection(edges=edges, page_info=result.page_info)

    @strawberry.field(description="Every version, newest first.", permission_classes=SIGNED_IN)
    async def models(self, info: Info) -> list[ModelVersion]:
        return await _models(info)

    @strawberry.field(
        description="The version predictions use now (in this server process); when there is "
        "none, the version the ACTIVE alias names. `serving` says when the two differ.",
        permission_classes=SIGNED_IN,
    )
    async def active_model(self, info: Info) -> ModelVersion | None:
        models = await _models(info)
        served = info.context.ml.active.serving.served
        return next((m for m in models if m.version == served), None) or next(
            (m for m in models if m.active), None
        )

    @strawberry.field(
        description="Your predictions (an administrator's: everyone's), newest first.",
        permission_classes=SIGNED_IN,
    )
    async def predictions(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
        model_version: str | None = None,
    ) -> PredictionConnection:
        viewer = await info.context.auth.require_user()
        page = PageRequest.from_args(first, after, last, before)
        where: list[ColumnElement[bool]] = []
        if not viewer.is_admin:
            where.append(predictions.c.user_id == viewer.user_id)
        if model_version is not None:
            where.append(predictions.c.model_version == model_version)
        engine = info.context.engine
        result = await load_page(
            engine, page, columns=tuple(predictions.c), where=where, ordering=NEWEST_FIRST
        )
        total = await count_rows(engine, predictions, where)
        # gathered, so the book look-ups batch into one statement
        made = await asyncio.gather(*(_with_actual(info, row) for row in result.rows))
        edges = [
            PredictionEdge(cursor=cursor, node=PricePrediction.of(prediction))
            for prediction, cursor in zip(made, result.cursors, strict=True)
        ]
        return PredictionConnection(edges=edges, page_info=result.page_info, total_count=total)


@strawberry.type
class MlMutation:
    @strawberry.mutation(
        description="A price for a book (by id or UPC) or for features; logged.",
        permission_classes=SIGNED_IN,
    )
    async def predict_price(self, info: Info, input: PredictPriceInput) -> PricePrediction:
        [result] = await _predict(info, [input])
        if isinstance(result, BookQLError):
            raise result
        return PricePrediction.of(result)

    @strawberry.mutation(
        description="Up to 1000 predictions; one bad item does not fail the others.",
        permission_classes=SIGNED_IN,
    )
    async def predict_prices(self, info: Info, input: PredictPricesInput) -> PredictPricesPayload:
        results = await _predict(info, input.items)
        return PredictPricesPayload(
            results=[
                PredictPriceResult(
                    prediction=None, error=PredictionError(code=r.code.value, message=r.message)
                )
                if isinstance(r, BookQLError)
                else PredictPriceResult(prediction=PricePrediction.of(r), error=None)
                for r in results
            ]
        )

    @strawberry.mutation(
        description="Train on the current catalogue; returns at once, status TRAINING.",
        permission_classes=ADMIN,
    )
    async def train_model(self, info: Info, input: TrainModelInput) -> ModelVersion:
        viewer = await info.context.auth.require_admin()
        row = await info.context.ml.start_training(
            seed=input.seed, activate=input.activate, requested_by=viewer.user_id
        )
        return ModelVersion.from_training(row)

    @strawberry.mutation(
        description="Serve this version from now on (every worker within a second), once it "
        "passes its checks: a damaged version is CONFLICT and the alias stays as it was.",
        permission_classes=ADMIN,
    )
    async def activate_model(self, info: Info, input: ActivateModelInput) -> ModelVersion:
        await info.context.ml.activate(input.version)
        model = next((m for m in await _models(info) if m.version == input.version), None)
        if model is None:
            raise NotFound(f"no model version {input.version!r}", field="version")
        return model


@strawberry.type
class MlSubscription:
    @strawberry.subscription(
        description="Every listed book's features and price, in batches; `after` resumes.",
        permission_classes=SIGNED_IN,
    )
    @per_user_stream
    async def training_data(
        self, info: Info, batch_size: int | None = DEFAULT_BATCH_SIZE, after: str | None = None
    ) -> AsyncGenerator[TrainingDataBatch, None]:
        start = book_id_after(after)
        columns = [c.name for c in COLUMNS]
        dtypes = [c.type for c in COLUMNS]
        chunks = info.context.ml.training_data.stream(
            Shape.ARRAYS,
            after=start,
            batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
        )
        sent = False
        async for chunk in chunks:
            sent = True
            yield TrainingDataBatch(
                columns=columns,
                dtypes=dtypes,
                jsonl=chunk.data.decode(),
                row_count=chunk.rows,
                cursor=chunk.cursor,
            )
        if not sent:  # nothing (left) to send: one empty batch still says what the columns are
            yield TrainingDataBatch(
                columns=columns, dtypes=dtypes, jsonl="", row_count=0, cursor=cursor_after(start)
            )
