"""Reading the catalogue: pages of books, and the batched look-ups behind the DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.tables import books, categories, descriptions, price_points
from bookql.catalog.tallies import TallyFilter
from bookql.db.keyset import Ordering, SortColumn

BOOK_COLUMNS = tuple(books.columns)
"""A book row holds every column of ``books``: what ``Book.from_row`` reads, whatever is added."""

SITE_ORDER = Ordering("site", (SortColumn(books.c.id),))


async def books_by_upcs(conn: AsyncConnection, upcs: Sequence[str]) -> dict[str, Row[Any]]:
    result = await conn.execute(select(*BOOK_COLUMNS).where(books.c.upc.in_(upcs)))
    return {row.upc: row for row in result}


async def books_by_ids(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Row[Any]]:
    result = await conn.execute(select(*BOOK_COLUMNS).where(books.c.id.in_(ids)))
    return {row.id: row for row in result}


async def categories_by_ids(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Row[Any]]:
    result = await conn.execute(select(categories).where(categories.c.id.in_(ids)))
    return {row.id: row for row in result}


async def categories_by_slug_or_name(
    conn: AsyncConnection, keys: Sequence[str]
) -> dict[str, Row[Any]]:
    """Categories named by slug or by name (any case): what users type in filters."""
    lowered = [key.lower() for key in keys]
    statement = select(categories).where(
        categories.c.slug.in_(keys) | func.lower(categories.c.name).in_(lowered)
    )
    rows = list(await conn.execute(statement))
    found: dict[str, Row[Any]] = {}
    for key in keys:
        for row in rows:
            if row.slug == key or row.name.lower() == key.lower():
                found[key] = row
                break
    return found


async def categories_by_slugs(conn: AsyncConnection, slugs: Sequence[str]) -> dict[str, Row[Any]]:
    result = await conn.execute(select(categories).where(categories.c.slug.in_(slugs)))
    return {row.slug: row for row in result}


async def all_categories(conn: AsyncConnection) -> list[Row[Any]]:
    result = await conn.execute(select(categories).order_by(categories.c.name))
    return list(result)


async def book_counts_by_category(
    conn: AsyncConnection, category_ids: Sequence[int]
) -> dict[int, int]:
    """Listed books per category, from the tallies (at most five rows a category)."""
    return await TallyFilter().counts_by_category(conn, category_ids)


async def descriptions_by_book_ids(
    conn: AsyncConnection, book_ids: Sequence[int]
) -> dict[int, str]:
    statement = select(descriptions.c.book_id, descriptions.c.description).where(
        descriptions.c.book_id.in_(book_ids)
    )
    return {row[0]: row[1] for row in await conn.execute(statement)}


async def price_history_by_book_ids(
    conn: AsyncConnection, book_ids: Sequence[int], limit: int
) -> dict[int, list[Row[Any]]]:
    """Each book's newest ``limit`` price points, newest first, in one statement."""
    rank = (
        func.row_number()
        .over(
            partition_by=price_points.c.book_id,
            order_by=(price_points.c.observed_at.desc(), price_points.c.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(price_points, rank).where(price_points.c.book_id.in_(book_ids)).subquery("ranked")
    )
    statement = (
        select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.book_id, ranked.c.rank)
    )
    history: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in await conn.execute(statement):
        history[row.book_id].append(row)
    return history
