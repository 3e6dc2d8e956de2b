"""The one feature function: training, ``mlFeatures``, the export and prediction all call it.

Input is a frame of books as stored (category name, rating, availability, title,
description); output is the model's inputs, in a fixed order with fixed types. Keeping it
one function is what keeps training and serving from drifting apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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


def book_features(frame: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Features of each book row (columns: category, rating, availability, title, description).

    ``categories`` fixes the category encoding: the trained model's list at prediction time,
    so a category it never saw becomes missing rather than a new code.
    """
    titles = frame["title"].fillna("").astype(str)
    texts = frame["description"].astype("object").where(frame["description"].notna(), "")
    texts = texts.astype(str)
    series = titles.str.extract(_SERIES)[0]
    result = pd.DataFrame(index=frame.index)
    known = frame["category"].where(frame["category"].isin(list(categories)))
    result["category"] = pd.Categorical(known, categories=list(categories))
    result["rating"] = frame["rating"].astype("int64")
    result["availability"] = frame["availability"].astype("int64")
    result["title_length"] = titles.str.len().astype("int64")
    result["title_words"] = titles.map(_words).astype("int64")
    result["has_subtitle"] = titles.str.contains(":", regex=False).astype("int64")
    result["in_series"] = series.notna().astype("int64")
    result["series_number"] = pd.to_numeric(series, errors="coerce").fillna(0.0).astype("float64")
    result["has_description"] = (texts.str.len() > 0).astype("int64")
    result["description_length"] = texts.str.len().astype("int64")
    result["description_words"] = texts.map(_words).astype("int64")
    return result[list(FEATURES)]


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
