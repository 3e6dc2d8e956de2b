"""Catalogue statistics over listed books, read from the tallies the triggers keep.

Every figure is exact and equal to what aggregates over ``books`` would give (averages are
divided as ``avg`` divides: in ``numeric`` on PostgreSQL, in floating point on SQLite), but
none reads a book: see ``bookql.catalog.tally_tables`` and docs/statistics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Numeric,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.tables import categories
from bookql.catalog.tally_tables import (
    tally_category_rating,
    tally_category_rating_price,
    tally_price,
)

MAX_HISTOGRAM_BUCKETS = 1000


@dataclass(frozen=True, slots=True)
class Figures:
    """Aggregates of a set of books; ``None`` where an empty set has no value."""

    book_count: int
    total_stock: int
    average_price_pence: float | None
    min_price_pence: int | None
    max_price_pence: int | None
    average_rating: float | None


def _ratio(dialect: str, total: ColumnElement[Any], count: ColumnElement[Any]) -> Any:
    """``total / count`` exactly as ``avg`` would have divided; null over no books."""
    if dialect == "postgresql":
        return cast(total, Numeric) / func.nullif(cast(count, Numeric), 0)
    return cast(total, Float) / func.nullif(count, 0)


_T = tally_category_rating.c
_BOOKS = func.coalesce(func.sum(_T.books), 0)
_STOCK = func.coalesce(func.sum(_T.stock), 0)
_PRICE_SUM = func.sum(_T.price_sum)
_RATING_SUM = func.sum(_T.books * _T.rating)


def _sums(dialect: str) -> list[Any]:
    return [
        _BOOKS,
        _STOCK,
        _ratio(dialect, _PRICE_SUM, func.sum(_T.books)),
        _ratio(dialect, _RATING_SUM, func.sum(_T.books)),
    ]


def _figures(row: Any) -> Figures:
    count, stock, average, rating, low, high = row
    return Figures(
        book_count=int(count),
        total_stock=int(stock),
        average_price_pence=float(average) if average is not None else None,
        min_price_pence=int(low) if low is not None else None,
        max_price_pence=int(high) if high is not None else None,
        average_rating=float(rating) if rating is not None else None,
    )


# Each an index probe of the first or last row (one aggregate each, as SQLite optimises).
_MIN_PRICE = select(func.min(tally_price.c.price_pence)).scalar_subquery()
_MAX_PRICE = select(func.max(tally_price.c.price_pence)).scalar_subquery()
_CATEGORY_COUNT = select(func.count()).select_from(categories)
_RATINGS = select(_T.rating, func.sum(_T.books)).group_by(_T.rating)
_P = tally_price.c
_BUCKET = (_P.price_pence // bindparam("width", type_=Integer)).label("bucket")
_HISTOGRAM = select(_BUCKET, func.sum(_P.books)).group_by(_BUCKET).order_by(_BUCKET)
_UPTO = func.sum(_P.books).over(order_by=_P.price_pence)
_CUMULATIVE = select(_P.price_pence, _P.books, _UPTO.label("upto")).subquery()
_MIDDLE_PRICES = (
    select(_CUMULATIVE.c.price_pence, _CUMULATIVE.c.books, _CUMULATIVE.c.upto)
    .where(
        _CUMULATIVE.c.upto > bindparam("low", type_=Integer),
        _CUMULATIVE.c.upto - _CUMULATIVE.c.books <= bindparam("high", type_=Integer),
    )
    .order_by(_CUMULATIVE.c.price_pence)
)


def _category_prices() -> Any:
    """Each (category, rating) tally with its cheapest and dearest price: two probes each."""
    c = tally_category_rating_price.c
    same = (c.category_id == _T.category_id) & (c.rating == _T.rating)
    return select(
        _T.category_id,
        _T.rating,
        _T.books,
        _T.stock,
        _T.price_sum,
        select(func.min(c.price_pence)).where(same).scalar_subquery().label("low"),
        select(func.max(c.price_pence)).where(same).scalar_subquery().label("high"),
    ).subquery()


async def catalog_figures(conn: AsyncConnection) -> Figures:
    statement = select(*_sums(conn.dialect.name), _MIN_PRICE, _MAX_PRICE)
    return _figures((await conn.execute(statement)).one())


async def category_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(_CATEGORY_COUNT)).scalar_one())


async def figures_by_category(conn: AsyncConnection) -> list[tuple[Any, Figures]]:
    """Every category (by name) with the figures of its listed books, empty ones included."""
    tallies = _category_prices()
    t = tallies.c
    dialect = conn.dialect.name
    per_category = (
        select(
            t.category_id,
            func.sum(t.books).label("books"),
            func.sum(t.stock).label("stock"),
            _ratio(dialect, func.sum(t.price_sum), func.sum(t.books)).label("average"),
            _ratio(dialect, func.sum(t.books * t.rating), func.sum(t.books)).label("rating"),
            func.min(t.low).label("low"),
            func.max(t.high).label("high"),
        )
        .group_by(t.category_id)
        .subquery()
    )
    f = per_category.c
    statement = (
        select(
            categories,
            func.coalesce(f.books, 0),
            func.coalesce(f.stock, 0),
            f.average,
            f.rating,
            f.low,
            f.high,
        )
        .select_from(categories.outerjoin(per_category, f.category_id == categories.c.id))
        .order_by(categories.c.name)
    )
    width = len(categories.c)
    result = []
    for row in await conn.execute(statement):
        values = tuple(row)
        result.append((row, _figures(values[width:])))
    return result


async def median_price_pence(conn: AsyncConnection) -> float | None:
    """The middle one or two prices, averaged: found by cumulative counts per price."""
    count = int((await conn.execute(select(_BOOKS))).scalar_one())
    if count == 0:
        return None
    low, high = (count - 1) // 2, count // 2  # 0-based places of the middle prices
    values = []
    for price, books, upto in await conn.execute(_MIDDLE_PRICES, {"low": low, "high": high}):
        first = int(upto) - int(books)
        values += [int(price)] * (min(int(upto) - 1, high) - max(first, low) + 1)
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
