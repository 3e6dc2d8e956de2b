"""Keyset ("seek") pagination: stable under inserts, and as fast on page 50 as on page 1.

An ordering is a list of columns ending in a unique tie-break; a cursor holds the values of
those columns for one row, and the next page is every row strictly past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    FromClause,
    Row,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.util import ClauseAdapter
from sqlalchemy.types import TypeDecorator


@dataclass(frozen=True, slots=True)
class SortColumn:
    column: ColumnElement[Any]
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Ordering:
    """A named total order: ``name`` goes into cursors so a cursor cannot cross orderings."""

    name: str
    columns: tuple[SortColumn, ...]

    def order_by(self, *, forward: bool) -> list[ColumnElement[Any]]:
        return [
            col.column.desc() if col.descending == forward else col.column.asc()
            for col in self.columns
        ]

    def past(self, values: Sequence[Any], *, forward: bool) -> ColumnElement[bool]:
        """Rows strictly after ``values`` in this order (strictly before when backwards)."""
        clauses: list[ColumnElement[bool]] = []
        for index, col in enumerate(self.columns):
            equal = [self.columns[i].column == values[i] for i in range(index)]
            ascending = col.descending != forward
            step = col.column > values[index] if ascending else col.column < values[index]
            clauses.append(and_(*equal, step))
        return or_(*clauses)

    def cursor_payload(self, row_values: Sequence[Any]) -> str:
        encoded = [v.isoformat() if isinstance(v, datetime) else v for v in row_values]
        return orjson.dumps([self.name, *encoded]).decode()

    def parse_cursor_payload(self, payload: str) -> list[Any] | None:
        """The row values in a cursor of this ordering, or None if it is not one."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, list) or len(data) != len(self.columns) + 1:
            return None
        if data[0] != self.name:
            return None
        values: list[Any] = []
        for col, raw in zip(self.columns, data[1:], strict=True):
            value = _decode(col.column, raw)
            if value is _INVALID:
                return None
            values.append(value)
        return values


_INVALID = object()


def _decode(column: ColumnElement[Any], raw: Any) -> Any:
    """A cursor's value for ``column``, or ``_INVALID``: cursors come back from clients.

    Only what a row of the column could hold passes, so a forged cursor is refused rather
    than failing in the database (sort columns are never null, PostgreSQL's integers are
    32-bit unless declared big, its text holds no NUL, and timestamps are time-zoned and
    still times once in UTC).
    """
    if raw is None or isinstance(raw, bool):
        return _INVALID
    column_type = column.type
    if isinstance(column_type, TypeDecorator):  # UTCDateTime says `object`; its impl knows
        column_type = column_type.impl_instance
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return raw if isinstance(raw, int | float | str) else _INVALID
    if python_type is datetime:
        if not isinstance(raw, str):
            return _INVALID
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            return _INVALID
        if value.tzinfo is None:
            return _INVALID
        try:
            value.astimezone(UTC)  # bound in UTC: year 1 east of Greenwich leaves the range
        except OverflowError:
            return _INVALID
        return value
    if python_type is int:
        bits = 63 if isinstance(column_type, BigInteger) else 31
        return raw if isinstance(raw, int) and -(2**bits) <= raw < 2**bits else _INVALID
    if python_type is float:
        return float(raw) if isinstance(raw, int | float) else _INVALID
    if python_type is str:
        return raw if isinstance(raw, str) and "\x00" not in raw else _INVALID
    return raw


RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    cursor_payloads: list[str]
    has_more: bool


def trim_page(rows: Sequence[RowT], size: int, *, forward: bool) -> tuple[list[RowT], bool]:
    """A page's rows from a read of ``size + 1``, in the ordering's direction, and whether
    more follow (the extra row says so)."""
    page = list(rows[:size])
    if not forward:
        page.reverse()
    return page, len(rows) > size


def page_statement(
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    size: int,
    forward: bool,
    after_values: Sequence[Any] | None,
    source: FromClause | None = None,
) -> Select[Any]:
    """The statement of one page: ``columns``, then the ordering's values, one row extra."""
    sort_values = [col.column for col in ordering.columns]
    statement = select(*columns, *sort_values).where(*where)
    if source is not None:
        statement = statement.select_from(source)
    if after_values is not None:
        statement = statement.where(ordering.past(after_values, forward=forward))
    return statement.order_by(*ordering.order_by(forward=forward)).limit(size + 1)


async def fetch_page(
    conn: AsyncConnection,
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    size: int,
    forward: bool,
    after_values: Sequence[Any] | None,
    source: FromClause | None = None,
) -> Page:
    """One page in ``ordering``, reading one row past it to learn whether more follow.

    Rows come back in the ordering's direction even when paging backwards.
    """
    statement = page_statement(
        columns=columns,
        where=where,
        ordering=ordering,
        size=size,
        forward=forward,
        after_values=after_values,
        source=source,
    )
    rows, has_more = trim_page(list(await conn.execute(statement)), size, forward=forward)
    width = len(columns)
    payloads = [ordering.cursor_payload(tuple(row)[width:]) for row in rows]
    return Page(rows=rows, cursor_payloads=payloads, has_more=has_more)


def _group_page(
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    group: ColumnElement[Any],
    key: ColumnElement[Any],
    ordering: Ordering,
    size: int,
    forward: bool,
    source: FromClause | None,
) -> Select[Any]:
    """The first page of the group ``key``: the columns, the group, then the sort values."""
    sort_values = [col.column.label(f"sort_{i}") for i, col in enumerate(ordering.columns)]
    statement = select(*columns, group.label("page_group"), *sort_values).where(
        *where, group == key
    )
    if source is not None:
        statement = statement.select_from(source)
    return statement.order_by(*ordering.order_by(forward=forward)).limit(size + 1)


def _postgres_keys(group: ColumnElement[Any], groups: Sequence[Any]) -> Any:
    """The groups' keys as a relation ``page_keys(key)``: one array parameter, whatever
    their number, so the statement's text does not change with it."""
    return (
        func.unnest(literal(list(groups), ARRAY(group.type)))
        .table_valued("key")
        .render_derived(name="page_keys")
    )


def _sqlite_walks(
    *,
    where: Sequence[ColumnElement[bool]],
    group: ColumnElement[Any],
    groups: Sequence[Any],
    tie_break: ColumnElement[Any],
    order_by: Sequence[ColumnElement[Any]],
    limit: int,
    source: FromClause | None,
) -> tuple[Any, ColumnElement[bool]]:
    """SQLite has no ``LATERAL``: the groups' keys (``json_each`` of one parameter) and the
    condition that joins each key to its rows, ``tie_break IN (a walk of the group's rows,
    limited)``, a subquery correlated to the key alone (SQLite runs it once per key).

    The walk reads its own alias of the rows' table, so the outer statement's columns and
    joins stay those of ``source``."""
    keys = func.json_each(literal(orjson.dumps(list(groups)).decode())).table_valued("value")
    table = group.table
    adapter = ClauseAdapter(table.alias("walked"))
    walk = (
        select(adapter.traverse(tie_break))
        .select_from(adapter.traverse(source if source is not None else table))
        .where(*(adapter.traverse(clause) for clause in where))
        .where(adapter.traverse(group) == keys.c.value)
        .order_by(*(adapter.traverse(clause) for clause in order_by))
        .limit(limit)
        .correlate(keys)
    )
    return keys, tie_break.in_(walk)


def pages_by_group_statement(
    dialect: str,
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    group: ColumnElement[Any],
    groups: Sequence[Any],
    ordering: Ordering,
    size: int,
    forward: bool,
    source: FromClause | None = None,
) -> Select[Any]:
    """The statement of ``fetch_pages_by_group``: each group's page is its own walk of an
    index (``group, sort columns…``) that stops after ``size + 1`` rows, never a window over
    every row of the groups; one statement whatever the number of groups. Its rows: the
    columns, the group, the sort values; by group, then in the page's order.

    PostgreSQL: the groups' keys joined ``LATERAL`` to the page of each. SQLite: each key
    joined to the rows its correlated walk finds (``_sqlite_walks``).
    """
    if dialect == "postgresql":
        keys = _postgres_keys(group, groups)
        page = _group_page(
            columns=columns,
            where=where,
            group=group,
            key=keys.c.key,
            ordering=ordering,
            size=size,
            forward=forward,
            source=source,
        ).lateral("pages")
        paged = select(*page.c).select_from(keys.join(page, true())).subquery("paged")
        by: list[ColumnElement[Any]] = [paged.c.page_group]
        for i, col in enumerate(ordering.columns):
            value = paged.c[f"sort_{i}"]
            by.append(value.desc() if col.descending == forward else value.asc())
        return select(*paged.c).order_by(*by)
    order_by = ordering.order_by(forward=forward)
    keys, walked = _sqlite_walks(
        where=where,
        group=group,
        groups=groups,
        tie_break=ordering.columns[-1].column,
        order_by=order_by,
        limit=size + 1,
        source=source,
    )
    sort_values = [col.column.label(f"sort_{i}") for i, col in enumerate(ordering.columns)]
    rows = source if source is not None else group.table
    return (
        select(*columns, keys.c.value.label("page_group"), *sort_values)
        .select_from(keys.join(rows, walked))
        .order_by(keys.c.value, *order_by)
    )


async def count_by_group_at_most(
    conn: AsyncConnection,
    *,
    where: Sequence[ColumnElement[bool]],
    group: ColumnElement[Any],
    groups: Sequence[Any],
    tie_break: ColumnElement[Any],
    limit: int,
    source: FromClause | None = None,
) -> dict[Any, int]:
    """How many rows each group holds, counting at most ``limit + 1`` of each (``tie_break``
    is unique): one bounded read per group, all in one statement, as the groups' pages are
    read. Groups with none are missing."""
    if conn.dialect.name == "postgresql":
        keys = _postgres_keys(group, groups)
        bounded = select(group.label("page_group")).where(*where, group == keys.c.key)
        if source is not None:
            bounded = bounded.select_from(source)
        counted = bounded.limit(limit + 1).lateral("counted")
        statement = (
            select(keys.c.key, func.count())
            .select_from(keys.join(counted, true()))
            .group_by(keys.c.key)
        )
    else:
        sqlite_keys, walked = _sqlite_walks(
            where=where,
            group=group,
            groups=groups,
            tie_break=tie_break,
            order_by=(),
            limit=limit + 1,
            source=source,
        )
        statement = (
            select(sqlite_keys.c.value, func.count())
            .select_from(sqlite_keys.join(tie_break.table, walked))
            .group_by(sqlite_keys.c.value)
        )
    return {key: int(count) for key, count in await conn.execute(statement)}


async def fetch_pages_by_group(
    conn: AsyncConnection,
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    group: ColumnElement[Any],
    groups: Sequence[Any],
    ordering: Ordering,
    size: int,
    forward: bool,
    source: FromClause | None = None,
) -> dict[Any, Page]:
    """The first page of each group (a category's books, say), each read by index."""
    statement = pages_by_group_statement(
        conn.dialect.name,
        columns=columns,
        where=where,
        group=group,
        groups=groups,
        ordering=ordering,
        size=size,
        forward=forward,
        source=source,
    )
    found: dict[Any, list[Row[Any]]] = {key: [] for key in groups}
    for row in await conn.execute(statement):
        found[row.page_group].append(row)
    width, sorts = len(columns), len(ordering.columns)
    pages: dict[Any, Page] = {}
    for key, read in found.items():
        rows, has_more = trim_page(read, size, forward=forward)
        payloads = [
            ordering.cursor_payload(tuple(row)[width + 1 : width + 1 + sorts]) for row in rows
        ]
        pages[key] = Page(rows=rows, cursor_payloads=payloads, has_more=has_more)
    return pages
