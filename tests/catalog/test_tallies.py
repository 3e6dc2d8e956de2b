"""The tallies, by properties: after any writes to ``books``, they equal a recount.

Hypothesis draws sequences of the writes the catalogue sees (single and multi-row inserts,
crawl-style upserts by UPC, updates of price, rating, category, stock and title, removals,
restores, deletes, and statements touching many rows at once) and runs each in its own
transaction; after each sequence every tally must equal a ``GROUP BY`` over the listed books,
on both databases. A real crawl of the offline mirror, a re-crawl finding changes, and the
migration's backfill are checked the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from bookql.catalog.listing import BookListing
from bookql.catalog.tables import books, categories
from bookql.catalog.tallies import TallyFilter
from bookql.db.engine import create_sync_engine
from bookql.db.migrate import upgrade
from tests.catalog.tallies_recount import TALLIES, assert_tallies_match, stored
from tests.catalog.test_properties_filters import property_settings
from tests.conftest import ScratchDatabase
from tests.support.crawling import run_crawl
from tests.support.mirror import MirrorSite, serve_mirror

NOW = datetime(2026, 12, 4, tzinfo=UTC)
CATEGORIES = ("Poetry", "Travel", "Mystery")
UPCS = [f"upc-{n:02d}" for n in range(12)]  # few, so upserts and collisions are common

Write = tuple[Any, ...]


def _ordered(pair: list[int | None]) -> tuple[int | None, int | None]:
    """Two optional bounds, low first when both are given."""
    low, high = pair
    if low is not None and high is not None and low > high:
        low, high = high, low
    return low, high


@pytest.fixture
def engine(empty_db: ScratchDatabase) -> Iterator[Engine]:
    engine = create_sync_engine(empty_db.settings())
    with engine.begin() as conn:
        conn.execute(insert(categories), [{"name": n, "slug": n.lower()} for n in CATEGORIES])
    yield engine
    engine.dispose()


prices = st.one_of(st.sampled_from([0, 999, 1000, 5177]), st.integers(0, 2**31 - 1))
book_values = st.fixed_dictionaries(
    {
        "category": st.integers(0, len(CATEGORIES) - 1),
        "rating": st.integers(1, 5),
        "price": prices,
        "availability": st.integers(0, 30),
        "removed": st.booleans(),
    }
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "category": st.integers(0, len(CATEGORIES) - 1),
        "rating": st.integers(1, 5),
        "price": prices,
        "availability": st.integers(0, 30),
        "removed": st.booleans(),
        "title": st.text(max_size=5),
    },
)
upc = st.sampled_from(UPCS)
_bound = st.one_of(st.none(), st.sampled_from([0, 999, 1000, 5177]), st.integers(0, 2**31 - 1))
tally_filters = st.builds(
    lambda category, prices, ratings: TallyFilter(category, *prices, *ratings),
    st.one_of(st.none(), st.integers(0, len(CATEGORIES) - 1)),
    st.lists(_bound, min_size=2, max_size=2).map(_ordered),
    st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=2, max_size=2).map(_ordered),
)
writes: st.SearchStrategy[Write] = st.one_of(
    st.tuples(st.just("insert"), st.dictionaries(upc, book_values, min_size=1, max_size=5)),
    st.tuples(st.just("upsert"), st.dictionaries(upc, book_values, min_size=1, max_size=5)),
    st.tuples(st.just("update"), upc, changes),
    st.tuples(st.just("update_many"), st.integers(1, 5), changes),
    st.tuples(st.just("delete"), upc),
    st.tuples(st.just("delete_many"), st.integers(0, len(CATEGORIES) - 1)),
)


def _columns(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Book columns from drawn values; the category by its place in ``CATEGORIES``."""
    columns: dict[str, Any] = {}
    if "category" in values:
        name = CATEGORIES[values["category"]]
        columns["category_id"] = conn.execute(
            select(categories.c.id).where(categories.c.name == name)
        ).scalar_one()
    if "price" in values:
        columns["price_incl_tax_pence"] = values["price"]
    for name in ("rating", "availability", "title"):
        if name in values:
            columns[name] = values[name]
    if "removed" in values:
        columns["removed_at"] = NOW if values["removed"] else None
    return columns


def _new_book(conn: Connection, upc_value: str, values: dict[str, Any]) -> dict[str, Any]:
    price = values["price"]
    return {
        "upc": upc_value,
        "title": upc_value,
        "product_type": "Books",
        "price_excl_tax_pence": price,
        "tax_pence": 0,
        "currency": "GBP",
        "num_reviews": 0,
        "image_url": "",
        "product_url": "",
        "first_seen_at": NOW,
        "last_seen_at": NOW,
        **_columns(conn, values),
    }


def apply(conn: Connection, write: Write) -> None:
    kind = write[0]
    if kind in ("insert", "upsert"):
        rows = [_new_book(conn, u, values) for u, values in sorted(write[1].items())]
        if kind == "insert":
            taken = set(conn.execute(select(books.c.upc)).scalars())
            rows = [row for row in rows if row["upc"] not in taken]
            if rows:
                conn.execute(insert(books), rows)  # executemany: one statement per row
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(books).values(rows)  # one statement, as a crawl batch
        refreshed = ("price_incl_tax_pence", "rating", "category_id", "availability", "removed_at")
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["upc"],
                set_={name: statement.excluded[name] for name in refreshed},
            )
        )
    elif kind == "update" and write[2]:
        conn.execute(update(books).where(books.c.upc == write[1]).values(_columns(conn, write[2])))
    elif kind == "update_many" and write[2]:
        conn.execute(
            update(books).where(books.c.rating <= write[1]).values(_columns(conn, write[2]))
        )
    elif kind == "delete":
        conn.execute(delete(books).where(books.c.upc == write[1]))
    elif kind == "delete_many":
        category = _columns(conn, {"category": write[1]})["category_id"]
        conn.execute(delete(books).where(books.c.category_id == category))


def check_counts(conn: Connection, bounds: list[TallyFilter]) -> None:
    """Counts from the tallies equal counts of the rows, and read no book."""
    ids = list(conn.execute(select(categories.c.id)).scalars())
    for tally in bounds:
        filtered = BookListing(
            category_id=None if tally.category_id is None else ids[tally.category_id],
            price_min_pence=tally.price_min_pence,
            price_max_pence=tally.price_max_pence,
            rating_min=tally.rating_min,
            rating_max=tally.rating_max,
        )
        counted = filtered.tally_filter()
        assert counted is not None
        statement = counted.count_statement()
        assert books not in statement.get_final_froms()
        rows = select(func.count()).select_from(books).where(*filtered.where())
        assert conn.execute(statement).scalar_one() == conn.execute(rows).scalar_one()
        per_category = replace(filtered, category_id=None)
        grouped = (
            select(books.c.category_id, func.count())
            .where(*per_category.where())
            .group_by(books.c.category_id)
        )
        expected = {int(c): int(n) for c, n in conn.execute(grouped)}
        tallied = per_category.tally_filter()
        assert tallied is not None
        found = conn.execute(tallied.by_category_statement(ids))
        assert {int(c): int(n) for c, n in found if n} == expected


def check_writes(
    engine: Engine, sequence: list[Write], bounds: list[TallyFilter] | None = None
) -> None:
    """From an empty catalogue, ``sequence`` (each write its own transaction), then a recount
    of the tallies and of the counts of ``bounds``."""
    with engine.begin() as conn:
        conn.execute(delete(books))
        assert all(not stored(conn, table) for table in TALLIES)
    for write in sequence:
        with engine.begin() as conn:
            apply(conn, write)
    with engine.connect() as conn:
        assert_tallies_match(conn)
        check_counts(conn, bounds or [])


@pytest.mark.slow
def test_the_tallies_equal_a_recount_after_any_writes(engine: Engine) -> None:
    @property_settings(60)
    @given(st.lists(writes, max_size=12), st.lists(tally_filters, max_size=4))
    def writes_keep_the_tallies(sequence: list[Write], bounds: list[TallyFilter]) -> None:
        check_writes(engine, sequence, bounds)

    writes_keep_the_tallies()


def test_several_writes_in_one_transaction(engine: Engine) -> None:
    """Triggers see one another's effects inside a transaction, and a rollback undoes them."""
    book = {"category": 0, "rating": 3, "price": 1234, "availability": 2, "removed": False}
    with engine.begin() as conn:
        apply(conn, ("insert", {"a": book, "b": book}))
        apply(conn, ("update", "a", {"price": 99, "availability": 5}))
        apply(conn, ("update", "b", {"removed": True}))
        assert_tallies_match(conn)
    with engine.connect() as conn, conn.begin() as transaction:
        apply(conn, ("delete_many", 0))
        transaction.rollback()
    with engine.connect() as conn:
        assert_tallies_match(conn)
        assert stored(conn, TALLIES[1]) == {(99, 1)}


@pytest.mark.slow
def test_the_migration_counts_the_books_already_there(blank_db: ScratchDatabase) -> None:
    engine = create_sync_engine(blank_db.settings())
    upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(insert(categories), [{"name": n, "slug": n.lower()} for n in CATEGORIES])
        book = {"category": 1, "rating": 4, "price": 500, "availability": 3, "removed": False}
        apply(
            conn,
            ("insert", {"a": book, "b": {**book, "rating": 2}, "c": {**book, "removed": True}}),
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert_tallies_match(conn)
        assert stored(conn, TALLIES[1]) == {(500, 2)}
    engine.dispose()


@pytest.mark.slow
def test_crawls_keep_the_tallies(empty_db: ScratchDatabase) -> None:
    site = MirrorSite()
    engine = create_sync_engine(empty_db.settings())
    with serve_mirror(site) as base_url:
        run_crawl(empty_db, base_url)
        with engine.connect() as conn:
            assert_tallies_match(conn)
            assert conn.execute(text("SELECT sum(books) FROM tally_price")).scalar_one() == 1000
        site.set_price("a897fe39b1053632", "12.34")
        site.set_availability("e00eb4fd7b871a48", 3)
        site.remove_book("90fa61229261140a")
        run_crawl(empty_db, base_url)
        with engine.connect() as conn:
            assert_tallies_match(conn)
            assert conn.execute(text("SELECT sum(books) FROM tally_price")).scalar_one() == 999
    engine.dispose()
