"""Catalogue statistics, computed in SQL from the exact (pence) values, over listed books."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.models import books, categories

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


async def catalogue_figures(conn: AsyncConnection) -> Figures:
    row = (await conn.execute(select(*_aggregates()).where(_listed()))).one()
    return _figures(row)


async def category_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(categories))).scalar_one())


async def figures_by_category(conn: AsyncConnection) -> list[tuple[Any, Figures]]:
    """Every category (by name) with the figures of its listed books, empty ones included."""
    joined = categories.outerjoin(books, (books.c.category_id == categories.c.id) & _listed())
    statement = (
        select(categories, *_aggregates())
        .select_from(joined)
        .group_by(*categories.c)
        .order_by(categories.c.name)
    )
    width = len(categories.c)
    result = []
    for row in await conn.execute(statement):
        values = tuple(row)
        result.append((row, _figures(values[width:])))
    return result


async def median_price_pence(conn: AsyncConnection) -> float | None:
    """The median without a MEDIAN function: the middle one or two prices, averaged."""
    price = books.c.price_incl_tax_pence
    count = (await conn.execute(select(func.count()).where(_listed()))).scalar_one()
    if count == 0:
        return None
    middle: Select[Any] = (
        select(price).where(_listed()).order_by(price).limit(2 - count % 2).offset((count - 1) // 2)
    )
    values = [int(v) for v in (await conn.execute(middle)).scalars()]
    return sum(values) / len(values)


async def rating_counts(conn: AsyncConnection) -> dict[int, int]:
    statement = select(books.c.rating, func.count()).where(_listed()).group_by(books.c.rating)
    found = {int(rating): int(count) for rating, count in await conn.execute(statement)}
    return {rating: found.get(rating, 0) for rating in range(1, 6)}


async def price_histogram(conn: AsyncConnection, width_pence: int) -> list[tuple[int, int]]:
    """``(bucket, count)`` for every bucket from the cheapest book's to the dearest's.

    Bucket ``n`` holds prices in ``[n * width, (n + 1) * width)``.
    """
    bucket = (books.c.price_incl_tax_pence // width_pence).label("bucket")
    statement = select(bucket, func.count()).where(_listed()).group_by(bucket).order_by(bucket)
    found = {int(b): int(c) for b, c in await conn.execute(statement)}
    if not found:
        return []
    return [(b, found.get(b, 0)) for b in range(min(found), max(found) + 1)]
