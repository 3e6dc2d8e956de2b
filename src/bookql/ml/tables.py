"""Tables of the price model: training runs (for versions still training or failed) and the
log of every prediction, which makes each one traceable to the exact version that made it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bookql.db.base import table_of
from bookql.db.types import UTCDateTime


class ModelStatus(StrEnum):
    TRAINING = "TRAINING"
    READY = "READY"
    FAILED = "FAILED"


class ModelTrainingTable(SQLModel, table=True):
    """A training started from the API; the version's files appear in the store when READY."""

    __tablename__ = "model_trainings"

    version: str = Field(sa_column=Column(String(64), primary_key=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    requested_by: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id", ondelete="SET NULL"))
    )
    seed: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    host: str | None = Field(default=None, sa_column=Column(String(255)))
    pid: int | None = Field(default=None, sa_column=Column(Integer))
    message: str | None = Field(default=None, sa_column=Column(Text))


class PredictionTable(SQLModel, table=True):
    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_user_id", "user_id", "id"),
        Index("ix_predictions_version_book", "model_version", "book_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    request_id: str | None = Field(default=None, sa_column=Column(String(128)))
    user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id", ondelete="SET NULL"))
    )
    model_version: str = Field(sa_column=Column(String(64), nullable=False))
    book_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("books.id", ondelete="SET NULL"))
    )
    features: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    price: float = Field(sa_column=Column(Float, nullable=False))
    lower: float = Field(sa_column=Column(Float, nullable=False))
    upper: float = Field(sa_column=Column(Float, nullable=False))
    latency_ms: float = Field(sa_column=Column(Float, nullable=False))


class BookFeaturesTable(SQLModel, table=True):
    """A book's features as the feature function computed them (the category is read through
    the book); triggers delete the row when an input changes, the export recomputes it."""

    __tablename__ = "book_features"

    book_id: int = Field(
        sa_column=Column(Integer, ForeignKey("books.id", ondelete="CASCADE"), primary_key=True)
    )
    rating: int = Field(sa_column=Column(Integer, nullable=False))
    availability: int = Field(sa_column=Column(Integer, nullable=False))
    title_length: int = Field(sa_column=Column(Integer, nullable=False))
    title_words: int = Field(sa_column=Column(Integer, nullable=False))
    has_subtitle: int = Field(sa_column=Column(Integer, nullable=False))
    in_series: int = Field(sa_column=Column(Integer, nullable=False))
    series_number: float = Field(sa_column=Column(Float, nullable=False))
    has_description: int = Field(sa_column=Column(Integer, nullable=False))
    description_length: int = Field(sa_column=Column(Integer, nullable=False))
    description_words: int = Field(sa_column=Column(Integer, nullable=False))


class BookFeaturesPendingTable(SQLModel, table=True):
    """A book whose features must be computed before the next export reads them; written by
    the same triggers that delete stale features, and on every new book."""

    __tablename__ = "book_features_pending"

    book_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


model_trainings = table_of(ModelTrainingTable)
book_features = table_of(BookFeaturesTable)
book_features_pending = table_of(BookFeaturesPendingTable)
predictions = table_of(PredictionTable)
