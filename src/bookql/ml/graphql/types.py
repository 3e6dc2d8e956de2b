"""GraphQL types of the price model."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import strawberry

from bookql.catalog.graphql.types import Book
from bookql.graphql.relay import Node, PageInfo, to_global_id
from bookql.ml.graphql.context import Info
from bookql.ml.integrity import Scores as StoredScores
from bookql.ml.predictions import Prediction
from bookql.ml.serving import Serving
from bookql.ml.store import HeldOutPoint as StoredPoint
from bookql.ml.store import StoredModel, UnreadableModel, read_held_out
from bookql.ml.tables import ModelStatus as ModelStatusValue

ModelStatus = strawberry.enum(ModelStatusValue, name="ModelStatus")


@strawberry.type(description="Errors of one predictor on the held-out books, in GBP.")
class Scores:
    mae: float
    rmse: float
    r2: float

    @classmethod
    def of(cls, values: StoredScores) -> Scores:
        return cls(mae=values.mae, rmse=values.rmse, r2=values.r2)


@strawberry.type(description="How a version did when trained, against two baselines.")
class ModelMetrics:
    model: Scores
    baseline_mean: Scores = strawberry.field(description="Predicting the training mean.")
    baseline_category_mean: Scores = strawberry.field(
        description="Predicting the mean of the book's category in training."
    )
    cross_validation_mae: float
    interval_level: float
    interval_half_width: float
    interval_coverage: float = strawberry.field(description="Measured on held-out books.")
    training_rows: int
    data_hash: str


@strawberry.type(description="MAE over this version's logged predictions of known books.")
class LiveMetrics:
    predictions: int
    mae: float | None


@strawberry.type(
    description="How this server process serves the price model. The served version and the "
    "one the ACTIVE alias names differ when the alias or its version turned bad: the process "
    "keeps serving the last good model it loaded."
)
class ModelServing:
    served_version: str | None = strawberry.field(
        description="The version this process's predictions use; null: none (they fail)."
    )
    alias_version: str | None = strawberry.field(
        description="The version the ACTIVE alias names; null: none, or the alias is unreadable."
    )
    problem: str | None = strawberry.field(
        description="Why the alias's version is not served; null when all is well."
    )

    @classmethod
    def of(cls, serving: Serving) -> ModelServing:
        return cls(
            served_version=serving.served, alias_version=serving.alias, problem=serving.problem
        )


@strawberry.type(
    description="One held-out book (never trained on): its price and the version's prediction."
)
class HeldOutPoint:
    upc: str
    title: str
    actual: float = strawberry.field(description="The book's price when trained, GBP.")
    predicted: float = strawberry.field(description="The version's prediction, GBP.")

    @classmethod
    def of(cls, point: StoredPoint) -> HeldOutPoint:
        return cls(upc=point.upc, title=point.title, actual=point.actual, predicted=point.predicted)


@strawberry.type(
    description="A price model version: READY in the store, or still TRAINING, or FAILED."
)
class ModelVersion(Node):
    version: str
    status: ModelStatus  # type: ignore[valid-type]
    active: bool = strawberry.field(description="The ACTIVE alias names this version.")
    created_at: datetime
    metrics: ModelMetrics | None
    message: str | None
    problem: str | None = strawberry.field(
        description="Why this stored version cannot be served (damaged or missing files, "
        "metadata that does not read, a model that fails its checks); null when it can."
    )
    serving: ModelServing | None = strawberry.field(
        description="How this server process serves models, on the version it serves and on "
        "the one the alias names; null on every other version."
    )
    live: strawberry.Private[LiveMetrics | None]
    stored: strawberry.Private[StoredModel | None] = None

    @strawberry.field(description="Null until the version has predicted a known book.")
    def live_metrics(self) -> LiveMetrics | None:
        return self.live

    @strawberry.field(
        description="The held-out books (the test split its metrics were measured on) with "
        "their actual and predicted prices, in split order. Null for versions trained before "
        "these were kept, for trainings not stored, and when the stored file fails its "
        "checksum (`problem` says so)."
    )
    async def held_out_predictions(self) -> list[HeldOutPoint] | None:
        if self.stored is None:
            return None
        points = await asyncio.to_thread(read_held_out, self.stored)
        return [HeldOutPoint.of(point) for point in points] if points is not None else None

    @classmethod
    def from_stored(
        cls,
        model: StoredModel | UnreadableModel,
        *,
        active: bool,
        live: tuple[int, float | None] | None,
        serving: Serving | None,
    ) -> ModelVersion:
        """A stored version; one whose metadata does not read has no metrics."""
        metrics = None
        if isinstance(model, StoredModel):
            info = model.info
            m = info.metrics
            metrics = ModelMetrics(
                model=Scores.of(m.model),
                baseline_mean=Scores.of(m.baseline_mean),
                baseline_category_mean=Scores.of(m.baseline_category_mean),
                cross_validation_mae=m.cross_validation.mae,
                interval_level=m.interval.level,
                interval_half_width=m.interval.half_width,
                interval_coverage=m.interval.test_coverage,
                training_rows=info.training_rows,
                data_hash=info.data_hash,
            )
        return cls(
            id=strawberry.ID(to_global_id("ModelVersion", model.version)),
            version=model.version,
            status=ModelStatusValue.READY,
            active=active,
            created_at=model.created_at,
            metrics=metrics,
            message=None,
            problem=model.problem,
            serving=ModelServing.of(serving) if serving is not None else None,
            live=LiveMetrics(predictions=live[0], mae=live[1]) if live else None,
            stored=model if isinstance(model, StoredModel) else None,
        )

    @classmethod
    def from_training(cls, row: Any) -> ModelVersion:
        return cls(
            id=strawberry.ID(to_global_id("ModelVersion", row.version)),
            version=row.version,
            status=ModelStatusValue(row.status),
            active=False,
            created_at=row.created_at,
            metrics=None,
            message=row.message,
            problem=None,
            serving=None,
            live=None,
        )


@strawberry.type(description="One logged prediction.")
class PricePrediction(Node):
    price: float = strawberry.field(description="GBP.")
    lower: float
    upper: float
    model_version: str
    created_at: datetime
    actual_price: float | None = strawberry.field(
        description="The book's price now, when the prediction was of a known book."
    )
    book_pk: strawberry.Private[int | None]

    @strawberry.field
    async def book(self, info: Info) -> Book | None:
        if self.book_pk is None:
            return None
        row = await info.context.catalog.book_by_id.load(self.book_pk)
        return Book.from_row(row) if row is not None else None

    @classmethod
    def of(cls, prediction: Prediction) -> PricePrediction:
        return cls(
            id=strawberry.ID(to_global_id("PricePrediction", prediction.id)),
            price=prediction.price,
            lower=prediction.lower,
            upper=prediction.upper,
            model_version=prediction.model_version,
            created_at=prediction.created_at,
            actual_price=prediction.actual_price,
            book_pk=prediction.book_id,
        )


@strawberry.type
class PredictionError:
    code: str
    message: str


@strawberry.type(description="A prediction, or why this item got none.")
class PredictPriceResult:
    prediction: PricePrediction | None
    error: PredictionError | None


@strawberry.type
class PredictPricesPayload:
    results: list[PredictPriceResult]


@strawberry.type
class PredictionEdge:
    cursor: str
    node: PricePrediction


@strawberry.type
class PredictionConnection:
    edges: list[PredictionEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input(description="The inputs of the features, for a book the catalogue lacks.")
class BookFeaturesInput:
    category: str = strawberry.field(description="A category's name or slug.")
    rating: int
    availability: int
    title: str
    description: str | None = None


@strawberry.input(one_of=True, description="Exactly one of a book's id, its UPC, or features.")
class PredictPriceInput:
    book_id: strawberry.ID | None = strawberry.UNSET
    upc: str | None = strawberry.UNSET
    features: BookFeaturesInput | None = strawberry.UNSET


@strawberry.input
class PredictPricesInput:
    items: list[PredictPriceInput]


@strawberry.input
class TrainModelInput:
    seed: int = 42
    activate: bool = False


@strawberry.input
class ActivateModelInput:
    version: str


@strawberry.type(description="A batch of training-data rows, in stream order.")
class TrainingDataBatch:
    columns: list[str]
    dtypes: list[str] = strawberry.field(
        description="The pandas dtype of each column: string, category, int64 or float64."
    )
    jsonl: str = strawberry.field(
        description="`rowCount` rows as JSON Lines: one JSON array per row, in `columns` order."
    )
    row_count: int
    cursor: str = strawberry.field(description="Pass as `after` to resume after this batch.")
