"""The one feature function: training, ``mlFeatures``, the export and prediction all call it.

Input is a frame of books as stored (category name, rating, availability, title,
description); output is the model's inputs, in a fixed order with fixed types. Keeping it
one function is what keeps training and serving from drifting apart.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.catalog.tables import books, categories, descriptions

LABEL = "price"
FEATURES: tuple[str, ...] = (
    "category",
    "rating",
    "availability",
    "title_length",
    "title_words",
    "has_subtitle",
    "in_series",
    "series_number",
    "has_description",
    "description_length",
    "description_words",
)
NUMERIC = FEATURES[1:]
# "Starving Hearts (Triangular Trade Trilogy, #1)" -> in a series, number 1; also "(Saga
# (Collected Editions) #6)" and omnibus ranges "(Lumberjanes #1-4)" -> number 1
_SERIES = re.compile(r"#(\d+(?:\.\d+)?)(?:\s*-\s*\d+(?:\.\d+)?)?\)\s*$")
_WORDS = re.compile(r"\w+")


def _words(text: str) -> int:
    return len(_WORDS.findall(text))


class BookInputs(NamedTuple):
    """What the features are computed from: a book as stored (or as a caller describes it)."""

    category: str | None
    rating: int
    availability: int
    title: str | None
    description: str | None


def feature_rows(
    books: Iterable[BookInputs | tuple[Any, ...]], categories: Collection[str]
) -> list[tuple[Any, ...]]:
    """The features of each book as a plain tuple in ``FEATURES`` order: the one computation.

    ``categories`` fixes the category encoding: the trained model's list at prediction time,
    so a category it never saw becomes missing (None) rather than a new code. Plain Python,
    row by row: as fast for one book (a prediction) as pandas is for a thousand, and ready
    for JSON (the prediction log, the export) without a detour through a frame.
    """
    return [_row_features(BookInputs._make(book), categories) for book in books]


def _row_features(book: BookInputs, categories: Collection[str]) -> tuple[Any, ...]:
    title = book.title if isinstance(book.title, str) else ""
    text = book.description if isinstance(book.description, str) else ""
    series = _SERIES.search(title)
    number = float(series.group(1)) if series else 0.0
    if not math.isfinite(number):  # "#99…9)" past a float's range: no number, so no series
        series, number = None, 0.0
    return (
        book.category if book.category in categories else None,
        int(book.rating),
        int(book.availability),
        len(title),
        _words(title),
        int(":" in title),
        int(series is not None),
        number,
        int(bool(text)),
        len(text),
        _words(text),
    )


def features_frame(
    rows: Sequence[tuple[Any, ...]], categories: Sequence[str], index: Any = None
) -> pd.DataFrame:
    """Feature rows as the model's input frame: a fixed category encoding, fixed dtypes."""
    dtype, codes = _encoding(tuple(categories))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FEATURES)
    category_codes = np.fromiter(
        (codes.get(name, -1) for name in columns[0]), dtype="int32", count=len(rows)
    )
    data: dict[str, Any] = {"category": pd.Categorical.from_codes(category_codes, dtype=dtype)}
    for name, values in zip(NUMERIC, columns[1:], strict=True):
        data[name] = np.asarray(values, dtype="float64" if name == "series_number" else "int64")
    return pd.DataFrame(data, index=index, copy=False)


@functools.lru_cache(maxsize=16)
def _encoding(categories: tuple[str, ...]) -> tuple[pd.CategoricalDtype, dict[str, int]]:
    """The category dtype and name -> code map, made once per list (a model's, a database's)."""
    return pd.CategoricalDtype(list(categories)), {name: i for i, name in enumerate(categories)}


def book_features(frame: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Features of each book row (columns: category, rating, availability, title, description)."""
    books = zip(
        frame["category"],
        frame["rating"],
        frame["availability"],
        frame["title"],
        frame["description"],
        strict=True,
    )
    return features_frame(feature_rows(books, set(categories)), categories, index=frame.index)


def feature_types(features: pd.DataFrame) -> list[dict[str, str]]:
    """The signature of the model's inputs: name and type of every column, in order."""
    names = {"category": "category", "float64": "double", "int64": "long"}
    return [
        {"name": name, "type": names.get(str(features[name].dtype), str(features[name].dtype))}
        for name in features.columns
    ]


async def load_books_frame(conn: AsyncConnection) -> pd.DataFrame:
    """Every listed book with what the features need and its price (the label), site order."""
    statement = (
        select(
            books.c.upc,
            books.c.title,
            categories.c.name.label("category"),
            books.c.rating,
            books.c.availability,
            descriptions.c.description,
            books.c.price_incl_tax_pence,
        )
        .select_from(
            books.join(categories).outerjoin(descriptions, descriptions.c.book_id == books.c.id)
        )
        .where(books.c.removed_at.is_(None))
        .order_by(books.c.id)
    )
    rows: list[Any] = list(await conn.execute(statement))
    frame = pd.DataFrame(
        [tuple(row) for row in rows],
        columns=["upc", "title", "category", "rating", "availability", "description", "pence"],
    )
    frame[LABEL] = frame.pop("pence").astype("int64") / 100
    return frame


async def load_categories(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(select(categories.c.name).order_by(categories.c.name))
    return [name for (name,) in result]


async def load_training_set(engine: AsyncEngine) -> tuple[pd.DataFrame, list[str]]:
    """What a training reads: every listed book, and every category name."""
    async with engine.connect() as conn:
        return await load_books_frame(conn), await load_categories(conn)
