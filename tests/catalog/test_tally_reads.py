"""Statistics and tallied counts read no book: every statement they send names only tallies
(and ``categories``), on both databases. Their values are checked by tests/catalog/test_stats.py,
tests/catalog/test_listing.py and the properties in test_tallies.py."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event

from bookql.catalog import queries, stats
from bookql.catalog.listing import BookListing
from bookql.db.engine import create_async_db_engine
from tests.conftest import ScratchDatabase

READS_BOOKS = re.compile(r"\b(FROM|JOIN)\s+books\b", re.IGNORECASE)


async def test_stats_and_tallied_counts_read_no_book(seeded_db: ScratchDatabase) -> None:
    engine = create_async_db_engine(seeded_db.settings())
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.connect() as conn:
            figures = await stats.catalog_figures(conn)
            assert figures.book_count == 1000
            assert await stats.median_price_pence(conn) is not None
            assert sum((await stats.rating_counts(conn)).values()) == 1000
            assert sum(c for _, c in await stats.price_histogram(conn, 250)) == 1000
            by_category = await stats.figures_by_category(conn)
            assert sum(f.book_count for _, f in by_category) == 1000
            ids = [row.id for row, _ in by_category]
            assert sum((await queries.book_counts_by_category(conn, ids)).values()) == 1000
            for listing in (
                BookListing(),
                BookListing(category_id=ids[0], rating_min=3),
                BookListing(price_min_pence=2000, price_max_pence=3000),
                BookListing(price_min_pence=2000, rating_min=2, rating_max=4),
                BookListing(category_id=ids[1], price_max_pence=3000, rating_max=4),
            ):
                plan = listing.plan(conn.dialect.name)
                assert plan.tally is not None
                assert (await plan.count_at_most(conn, 10))[0] <= await plan.count(conn)
    finally:
        await engine.dispose()
    assert sent
    assert not [statement for statement in sent if READS_BOOKS.search(statement)]


def test_title_stock_and_search_still_count_rows() -> None:
    for listing in (
        BookListing(title_contains="the"),
        BookListing(in_stock=True),
        BookListing(search="love"),
    ):
        assert listing.tally_filter() is None
