"""Pages of books are index walks: the statements both executors send, as each database plans them.

For every single-key order (and site order), both directions, with and without a category,
forwards and backwards, the page statement is explained and must read an index that gives
its order, with no sort. On PostgreSQL sorts are priced out of reach (``enable_sort`` and
``enable_incremental_sort`` off), so a plan can avoid one only if such an index exists; on
SQLite a sort shows as a temporary B-tree. The first pages of many categories are one index
walk per category (``LATERAL``, or a correlated walk per key on SQLite), never a window over
every book, and equal
to the pages read one category at a time.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Select, select, text

from bookql.catalog import queries
from bookql.catalog.listing import BookListing, BookOrderField, OrderDirection
from bookql.catalog.tables import books, categories
from bookql.db import keyset
from bookql.db.engine import create_async_db_engine, create_sync_engine
from bookql.db.keyset import fetch_page, fetch_pages_by_group, page_statement
from tests.conftest import ScratchDatabase

ORDERS: list[tuple[tuple[BookOrderField, OrderDirection], ...]] = [
    (),
    *(
        ((field, direction),)
        for field in BookOrderField
        if field is not BookOrderField.RELEVANCE
        for direction in OrderDirection
    ),
]


def order_id(order: tuple[tuple[BookOrderField, OrderDirection], ...]) -> str:
    return ",".join(f"{f.value}:{d.value}" for f, d in order) or "site"


@pytest.fixture
def conn(seeded_db: ScratchDatabase) -> Iterator[Connection]:
    engine = create_sync_engine(seeded_db.settings())
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET enable_sort = off"))
            connection.execute(text("SET enable_incremental_sort = off"))
        yield connection
    engine.dispose()


def plan_of(conn: Connection, statement: Select[Any]) -> tuple[list[str], list[str]]:
    """(node kinds, index names) of the plan, or of SQLite's query plan lines."""
    compiled = statement.compile(dialect=conn.dialect)
    if conn.dialect.name == "postgresql":
        sql = "EXPLAIN (FORMAT JSON) " + str(compiled)
        (document,) = conn.exec_driver_sql(sql, compiled.params).one()
        plan = document if isinstance(document, list) else json.loads(document)
        kinds, indexes = [], []
        pending = [plan[0]["Plan"]]
        while pending:
            node = pending.pop()
            kinds.append(node["Node Type"])
            if "Index Name" in node:
                indexes.append(node["Index Name"])
            pending.extend(node.get("Plans", []))
        return kinds, indexes
    parameters = tuple(compiled.params[name] for name in compiled.positiontup or ())
    lines = [
        row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), parameters)
    ]
    return lines, lines


def walks_an_index(conn: Connection, statement: Select[Any]) -> None:
    kinds, indexes = plan_of(conn, statement)
    if conn.dialect.name == "postgresql":
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
        assert "WindowAgg" not in kinds, kinds
        assert indexes, kinds
        assert all(name.startswith(("ix_books_", "pk_books")) for name in indexes), indexes
    else:
        assert not any("TEMP B-TREE" in line for line in kinds), kinds
        assert any("USING INDEX" in line or "PRIMARY KEY" in line for line in kinds), kinds


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@pytest.mark.parametrize("by_category", [False, True], ids=["all", "category"])
@pytest.mark.parametrize("forward", [True, False], ids=["first", "last"])
def test_a_page_walks_an_index(
    conn: Connection,
    order: tuple[tuple[BookOrderField, OrderDirection], ...],
    by_category: bool,
    forward: bool,
) -> None:
    category = conn.execute(select(categories.c.id).where(categories.c.slug == "mystery"))
    category_id = category.scalar_one() if by_category else None
    plan = BookListing(category_id=category_id, order=order).plan(conn.dialect.name)
    for after in (None, _first_row_values(conn, plan)):
        statement = page_statement(
            columns=queries.BOOK_COLUMNS,
            where=plan.where,
            ordering=plan.ordering,
            size=20,
            forward=forward,
            after_values=after,
            source=plan.source,
        )
        walks_an_index(conn, statement)


def _first_row_values(conn: Connection, plan: Any) -> list[Any]:
    """The sort values of the listing's first row: a cursor to page after."""
    statement = page_statement(
        columns=[books.c.id],
        where=plan.where,
        ordering=plan.ordering,
        size=1,
        forward=True,
        after_values=None,
        source=plan.source,
    )
    return list(conn.execute(statement).first()[1:])  # type: ignore[index]


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
def test_categories_first_pages_walk_an_index_each(
    conn: Connection, order: tuple[tuple[BookOrderField, OrderDirection], ...]
) -> None:
    groups = list(conn.execute(select(categories.c.id).order_by(categories.c.id)).scalars())
    plan = BookListing(order=order).plan(conn.dialect.name)
    for forward in (True, False):
        statement = keyset.pages_by_group_statement(
            conn.dialect.name,
            columns=queries.BOOK_COLUMNS,
            where=plan.where,
            group=books.c.category_id,
            groups=groups[:40],
            ordering=plan.ordering,
            size=5,
            forward=forward,
            source=plan.source,
        )
        kinds, indexes = plan_of(conn, statement)
        if conn.dialect.name == "postgresql":
            assert "WindowAgg" not in kinds and "Incremental Sort" not in kinds, kinds
            # the one sort is of the pages read (40 x 6 rows at most), above the walks
            assert kinds.count("Sort") <= 1 and kinds[0] in ("Sort", "Result"), kinds
            assert "Nested Loop" in kinds and "Limit" in kinds, kinds
            assert indexes and all(name.startswith("ix_books_") for name in indexes), indexes
        else:
            # each key runs its correlated walk (an index, no sort inside); the one sort is
            # of the pages read
            compiled = statement.compile(dialect=conn.dialect)
            parameters = tuple(compiled.params[name] for name in compiled.positiontup or ())
            sql = "EXPLAIN QUERY PLAN " + str(compiled)
            nodes = {row[0]: (row[1], row[3]) for row in conn.exec_driver_sql(sql, parameters)}
            (walk,) = [i for i, (_, d) in nodes.items() if d.startswith("CORRELATED LIST")]
            inside = [d for parent, d in nodes.values() if parent == walk]
            assert inside and all(d.startswith("SEARCH walked USING INDEX") for d in inside), nodes
            assert sum("TEMP B-TREE" in d for _, d in nodes.values()) == 1, nodes


@pytest.mark.parametrize(
    "order",
    [
        (),
        ((BookOrderField.PRICE, OrderDirection.DESC),),
        ((BookOrderField.TITLE, OrderDirection.ASC),),
    ],
    ids=order_id,
)
async def test_categories_first_pages_equal_pages_one_at_a_time(
    seeded_db: ScratchDatabase,
    order: tuple[tuple[BookOrderField, OrderDirection], ...],
) -> None:
    engine = create_async_db_engine(seeded_db.settings())
    async with engine.connect() as conn:
        ids = [row[0] for row in await conn.execute(select(categories.c.id))]
        groups = [*ids[:12], max(ids) + 1000]  # and a category with no books
        listing = BookListing(rating_min=2, order=order)
        plan = listing.plan(conn.dialect.name)
        for forward, size in itertools.product((True, False), (1, 4)):
            together = await fetch_pages_by_group(
                conn,
                columns=queries.BOOK_COLUMNS,
                where=plan.where,
                group=books.c.category_id,
                groups=groups,
                ordering=plan.ordering,
                size=size,
                forward=forward,
                source=plan.source,
            )
            for group in groups:
                alone = await fetch_page(
                    conn,
                    columns=queries.BOOK_COLUMNS,
                    where=[*plan.where, books.c.category_id == group],
                    ordering=plan.ordering,
                    size=size,
                    forward=forward,
                    after_values=None,
                    source=plan.source,
                )
                page = together[group]
                assert [tuple(row)[: len(queries.BOOK_COLUMNS)] for row in page.rows] == [
                    tuple(row)[: len(queries.BOOK_COLUMNS)] for row in alone.rows
                ]
                assert page.cursor_payloads == alone.cursor_payloads
                assert page.has_more == alone.has_more
        assert together[groups[-1]].rows == []
        assert any(len(together[group].rows) == size for group in groups[:12])
    await engine.dispose()


def test_a_search_by_relevance_ranks_a_bounded_walk(conn: Connection) -> None:
    """The candidates are read in site order and cut at the bound before anything is
    ranked or sorted: on SQLite FTS5 yields its matches in rowid order (no sort before the
    cut); on PostgreSQL the plan ranks below a ``Limit`` (which walk reaches the bound is
    the planner's choice, by the word's frequency)."""
    plan = BookListing(search="mystery").plan(conn.dialect.name)
    statement = page_statement(
        columns=queries.BOOK_COLUMNS,
        where=plan.where,
        ordering=plan.ordering,
        size=20,
        forward=True,
        after_values=None,
        source=plan.source,
    )
    compiled = statement.compile(dialect=conn.dialect)
    if conn.dialect.name == "postgresql":
        sql = "EXPLAIN (FORMAT JSON, VERBOSE) " + str(compiled)
        (document,) = conn.exec_driver_sql(sql, compiled.params).one()
        top = (document if isinstance(document, list) else json.loads(document))[0]["Plan"]
        pending, limits = [top], []
        while pending:
            node = pending.pop()
            if node["Node Type"] == "Limit" and node is not top:
                limits.append(node)
            pending.extend(node.get("Plans", []))
        ranked = [n for n in limits if any("ts_rank_cd" in o for o in n.get("Output", []))]
        assert ranked, top
        return
    parameters = tuple(compiled.params[name] for name in compiled.positiontup or ())
    sql = "EXPLAIN QUERY PLAN " + str(compiled)
    nodes = {row[0]: (row[1], row[3]) for row in conn.exec_driver_sql(sql, parameters)}
    (ranked,) = [i for i, (_, d) in nodes.items() if d.startswith("MATERIALIZE ranked")]
    inside = [d for parent, d in nodes.values() if parent == ranked]
    assert any(d.startswith("SCAN books_fts VIRTUAL TABLE") for d in inside), nodes
    assert not any("TEMP B-TREE" in d for d in inside), nodes
