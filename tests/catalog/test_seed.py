"""Seeding: the bundled snapshot's missing books, never overwriting, safe to repeat at once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from bookql.catalog.seed import seed_catalog
from bookql.catalog.tables import books, categories, descriptions, price_points
from bookql.db.engine import create_async_db_engine
from tests.conftest import ScratchDatabase
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # seeds the whole catalogue, repeatedly


async def _counts(database: ScratchDatabase) -> dict[str, int]:
    engine = create_async_db_engine(database.settings())
    async with engine.connect() as conn:
        counts = {
            table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in (books, categories, descriptions, price_points)
        }
        counts["stock"] = (await conn.execute(select(func.sum(books.c.availability)))).scalar_one()
    await engine.dispose()
    return counts


async def test_seed_loads_the_whole_catalog_once(empty_db: ScratchDatabase) -> None:
    engine = create_async_db_engine(empty_db.settings())
    first = await seed_catalog(engine)
    second = await seed_catalog(engine)
    await engine.dispose()
    assert (first.inserted, first.total_in_snapshot) == (1000, 1000)
    assert second.inserted == 0
    assert await _counts(empty_db) == {
        "books": 1000,
        "categories": 50,
        "book_descriptions": 998,
        "price_points": 1000,
        "stock": 8585,
    }


async def test_seed_stores_exact_prices_and_categories(empty_db: ScratchDatabase) -> None:
    engine = create_async_db_engine(empty_db.settings())
    await seed_catalog(engine)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(books.c.upc, books.c.price_incl_tax_pence, categories.c.name).join(
                    categories
                )
            )
        ).all()
    await engine.dispose()
    stored = {upc: (pence, category) for upc, pence, category in rows}
    for book in snapshot_books():
        assert stored[book["upc"]] == (round(book["price"] * 100), book["category"])
    assert Counter(category for _, category in stored.values())["Default"] == 152


async def test_seed_never_overwrites_crawled_data(empty_db: ScratchDatabase) -> None:
    engine = create_async_db_engine(empty_db.settings())
    await seed_catalog(engine)
    async with engine.begin() as conn:
        await conn.execute(
            update(books).where(books.c.upc == "a897fe39b1053632").values(price_incl_tax_pence=1)
        )
        await conn.execute(books.delete().where(books.c.upc == "90fa61229261140a"))
    result = await seed_catalog(engine)
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                select(books.c.price_incl_tax_pence).where(books.c.upc == "a897fe39b1053632")
            )
        ).scalar_one()
    await engine.dispose()
    assert result.inserted == 1  # only the missing book comes back
    assert kept == 1
    assert (await _counts(empty_db))["books"] == 1000


async def test_concurrent_seeds_and_reads_leave_one_catalog(empty_db: ScratchDatabase) -> None:
    engines = [create_async_db_engine(empty_db.settings()) for _ in range(3)]

    async def read_while_seeding() -> int:
        seen = 0
        for _ in range(20):
            async with engines[2].connect() as conn:
                seen = max(
                    seen, (await conn.execute(select(func.count()).select_from(books))).scalar_one()
                )
            await asyncio.sleep(0)
        return seen

    results = await asyncio.gather(
        seed_catalog(engines[0]), seed_catalog(engines[1]), read_while_seeding()
    )
    for engine in engines:
        await engine.dispose()
    assert results[0].inserted + results[1].inserted == 1000
    assert results[2] in (0, 1000)  # a reader sees all of a seed or none of it
    counts = await _counts(empty_db)
    assert (counts["books"], counts["categories"], counts["price_points"]) == (1000, 50, 1000)
