"""The one feature function: training, ``mlFeatures``, the export and prediction all call it.

Input is a frame of books as stored (category name, rating, availability, title,
description); output is the model's inputs, in a fixed order with fixed types. Keeping it
one function is what keeps training and serving from drifting apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.models import books, categories, descriptions

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


def _row_features(title: str, description: str, rating: int, availability: int) -> tuple[Any, ...]:
    series = _SERIES.search(title)
    return (
        int(rating),
        int(availability),
        len(title),
        _words(title),
        int(":" in title),
        int(series is not None),
        float(series.group(1)) if series else 0.0,
        int(bool(description)),
        len(description),
        _words(description),
    )


def book_features(frame: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Features of each book row (columns: category, rating, availability, title, description).

    ``categories`` fixes the category encoding: the trained model's list at prediction time,
    so a category it never saw becomes missing rather than a new code. Computed row by row
    in plain Python: as fast for one book (a prediction) as pandas is for a thousand.
    """
    known = set(categories)
    titles = ["" if not isinstance(t, str) else t for t in frame["title"]]
    texts = ["" if not isinstance(d, str) else d for d in frame["description"]]
    rows = [
        _row_features(title, text, rating, availability)
        for title, text, rating, availability in zip(
            titles, texts, frame["rating"], frame["availability"], strict=True
        )
    ]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(NUMERIC)
    data: dict[str, Any] = {
        "category": pd.Categorical(
            [c if c in known else None for c in frame["category"]], categories=list(categories)
        )
    }
    for name, values in zip(NUMERIC, columns, strict=True):
        data[name] = np.asarray(values, dtype="float64" if name == "series_number" else "int64")
    return pd.DataFrame(data, index=frame.index)


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
