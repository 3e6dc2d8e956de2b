"""Catalogue statistics, computed in SQL from the exact (pence) values, over listed books."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.tables import books, categories

MAX_HISTOGRAM_BUCKETS = 1000


def _listed() -> ColumnElement[bool]:
    return books.c.removed_at.is_(None)


@dataclass(frozen=True, slots=True)
class Figures:
    """Aggregates of a set of books; ``None`` where an empty set has no value."""

    book_count: int
    total_stock: int
    average_price_pence: float | None
    min_price_pence: int | None
    max_price_pence: int | None
    average_rating: float | None


def _aggregates() -> list[ColumnElement[Any]]:
    price = books.c.price_incl_tax_pence
    return [
        func.count(books.c.id),
        func.coalesce(func.sum(books.c.availability), 0),
        func.avg(price),
        func.min(price),
        func.max(price),
        func.avg(books.c.rating),
    ]


def _figures(row: Any) -> Figures:
    count, stock, average, low, high, rating = row
    return Figures(
        book_count=int(count),
        total_stock=int(stock),
        average_price_pence=float(average) if average is not None else None,
        min_price_pence=int(low) if low is not None else None,
        max_price_pence=int(high) if high is not None else None,
        average_rating=float(rating) if rating is not None else None,
    )


# Built once: each figure is the same statement every time, only its parameters change.
_PRICE = books.c.price_incl_tax_pence
_BUCKET = (_PRICE // bindparam("width", type_=Integer)).label("bucket")
_JOINED = categories.outerjoin(books, (books.c.category_id == categories.c.id) & _listed())
_LISTED_COUNT = select(func.count()).where(_listed())
_FIGURES = select(*_aggregates()).where(_listed())
_CATEGORY_COUNT = select(func.count()).select_from(categories)
_MIDDLE_PRICES = (
    select(_PRICE)
    .where(_listed())
    .order_by(_PRICE)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
_RATINGS = select(books.c.rating, func.count()).where(_listed()).group_by(books.c.rating)
_HISTOGRAM = select(_BUCKET, func.count()).where(_listed()).group_by(_BUCKET).order_by(_BUCKET)
_BY_CATEGORY = (
    select(categories, *_aggregates())
    .select_from(_JOINED)
    .group_by(*categories.c)
    .order_by(categories.c.name)
)


async def catalog_figures(conn: AsyncConnection) -> Figures:
    row = (await conn.execute(_FIGURES)).one()
    return _figures(row)


async def category_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(_CATEGORY_COUNT)).scalar_one())


async def figures_by_category(conn: AsyncConnection) -> list[tuple[Any, Figures]]:
    """Every category (by name) with the figures of its listed books, empty ones included."""
    width = len(categories.c)
    result = []
    for row in await conn.execute(_BY_CATEGORY):
        values = tuple(row)
        result.append((row, _figures(values[width:])))
    return result


async def median_price_pence(conn: AsyncConnection) -> float | None:
    """The median without a MEDIAN function: the middle one or two prices, averaged."""
    count = (await conn.execute(_LISTED_COUNT)).scalar_one()
    if count == 0:
        return None
    middle = {"limit": 2 - count % 2, "offset": (count - 1) // 2}
    values = [int(v) for v in (await conn.execute(_MIDDLE_PRICES, middle)).scalars()]
    return sum(values) / len(values)


async def rating_counts(conn: AsyncConnection) -> dict[int, int]:
    found = {int(rating): int(count) for rating, count in await conn.execute(_RATINGS)}
    return {rating: found.get(rating, 0) for rating in range(1, 6)}


async def price_histogram(conn: AsyncConnection, width_pence: int) -> list[tuple[int, int]]:
    """``(bucket, count)`` for every bucket from the cheapest book's to the dearest's.

    Bucket ``n`` holds prices in ``[n * width, (n + 1) * width)``.
    """
    found = {int(b): int(c) for b, c in await conn.execute(_HISTOGRAM, {"width": width_pence})}
    if not found:
        return []
    return [(b, found.get(b, 0)) for b in range(min(found), max(found) + 1)]
