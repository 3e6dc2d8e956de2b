"""The tallies as they should be: recounted from the listed books with ``GROUP BY``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, func, select

from bookql.catalog.tables import books
from bookql.catalog.tally_tables import (
    tally_category_rating,
    tally_category_rating_price,
    tally_price,
    tally_rating_price,
)

_PRICE = books.c.price_incl_tax_pence
_KEYS: dict[str, list[Any]] = {
    "tally_category_rating": [books.c.category_id, books.c.rating],
    "tally_price": [_PRICE],
    "tally_rating_price": [books.c.rating, _PRICE],
    "tally_category_rating_price": [books.c.category_id, books.c.rating, _PRICE],
}
TALLIES: list[Table] = [
    tally_category_rating,
    tally_price,
    tally_rating_price,
    tally_category_rating_price,
]


def recount(conn: Connection, table: Table) -> set[tuple[int, ...]]:
    keys = _KEYS[table.name]
    sums: list[Any] = [func.count()]
    if table is tally_category_rating:
        sums += [func.sum(books.c.availability), func.sum(_PRICE)]
    statement = (
        select(*keys, *sums).where(books.c.removed_at.is_(None)).group_by(*keys).order_by(*keys)
    )
    return {tuple(int(v) for v in row) for row in conn.execute(statement)}


def stored(conn: Connection, table: Table) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in row) for row in conn.execute(select(table))}


def assert_tallies_match(conn: Connection) -> None:
    """Every tally equals its recount, row for row: no zero rows, none missing."""
    for table in TALLIES:
        assert stored(conn, table) == recount(conn, table), table.name
