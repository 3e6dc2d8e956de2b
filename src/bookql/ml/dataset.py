"""The training data in bulk: every listed book's features and price, streamed in batches.

Features are stored (``book_features``) by the one feature function; triggers delete a
book's row when an input changes and record the book as pending, and
:func:`refresh_features` computes the pending books before a stream starts, so a stream
never serves a stale or absent row.

On PostgreSQL the database renders the rows and hands over a whole batch as one text value:
Python does no work per row, which keeps the export near the database's own speed. On
SQLite (a thousand books) they are read with a streaming cursor and rendered here.
Either way a batch is read only when the previous one has been sent: a slow client slows
the read, it never makes the server hold the table.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
import orjson
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.catalog.tables import books, categories, descriptions
from bookql.core.errors import BadUserInput, ServiceUnavailable
from bookql.db.cursors import decode_cursor, encode_cursor
from bookql.db.engine import async_write_transaction
from bookql.db.upsert import insert_for
from bookql.ml.features import FEATURES, LABEL, BookInputs, feature_rows
from bookql.ml.tables import book_features, book_features_pending

REFRESH_BATCH = 2_000
MAX_BATCH_SIZE = 50_000
CURSOR_PREFIX = "training-data:"


@dataclass(frozen=True)
class ExportColumn:
    name: str
    type: str  # "string", "category", "int64" or "float64": the pandas dtype to read it as


COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("upc", "string"),
    ExportColumn("category", "category"),
    *(
        ExportColumn(name, "float64" if name == "series_number" else "int64")
        for name in FEATURES[1:]
    ),
    ExportColumn(LABEL, "float64"),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)


class Shape(StrEnum):
    """How rows are written: JSON arrays (the subscription), JSON objects or CSV (files).

    ``CSV`` keeps every value as stored (the export is data for programs); ``SPREADSHEET_CSV``
    neutralises its text cells for spreadsheets, as OWASP's CSV injection guidance says.
    """

    ARRAYS = "arrays"
    OBJECTS = "objects"
    CSV = "csv"
    SPREADSHEET_CSV = "spreadsheet-csv"


@dataclass(frozen=True)
class Chunk:
    """Whole lines of rows, how many, and the cursor after the last of them."""

    data: bytes
    rows: int
    cursor: str


def cursor_after(book_id: int) -> str:
    return encode_cursor(f"{CURSOR_PREFIX}{book_id}")


def book_id_after(cursor: str | None) -> int:
    """The book id a ``cursor`` points after (0 for none); a clear error for a bad one."""
    if cursor is None or cursor == "":
        return 0
    payload = decode_cursor(cursor)
    if not payload.startswith(CURSOR_PREFIX):
        raise BadUserInput("`after` is not a training-data cursor", field="after")
    key = payload.removeprefix(CURSOR_PREFIX)
    if not key.isdigit():
        raise BadUserInput("`after` is not a training-data cursor", field="after")
    return int(key)


def csv_header() -> bytes:
    return (",".join(COLUMN_NAMES) + "\n").encode()


# -- keeping the stored features complete ---------------------------------------------------


async def refresh_features(engine: AsyncEngine) -> int:
    """Compute the features of every pending listed book; returns how many.

    With nothing pending (the usual case) this is one index probe, outside any write lock.
    """
    total = 0
    last = 0
    while True:
        async with engine.connect() as conn:
            if not await _pending_after(conn, last):
                return total
        async with async_write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                # No input may change between reading it and storing its features: a change
                # committed in between would find no row to delete, and it would stay stale.
                await conn.execute(text("LOCK TABLE books, book_descriptions IN SHARE MODE"))
            done, last = await _refresh_batch(conn, last)
        total += done


async def _pending_after(conn: AsyncConnection, after: int) -> bool:
    """Whether a listed book past ``after`` is waiting for its features."""
    waiting = (
        select(book_features_pending.c.book_id)
        .join(books, books.c.id == book_features_pending.c.book_id)
        .where(book_features_pending.c.book_id > after, books.c.removed_at.is_(None))
        .limit(1)
    )
    return (await conn.execute(waiting)).first() is not None


async def _refresh_batch(conn: AsyncConnection, after: int) -> tuple[int, int]:
    """Features for one batch of pending books past ``after``: how many, and the last id.

    A removed book stays pending (it is computed if it comes back); the id of a book that no
    longer exists is dropped.
    """
    pending = book_features_pending.c.book_id
    batch = (
        select(
            pending,
            books.c.removed_at,
            categories.c.name,
            books.c.rating,
            books.c.availability,
            books.c.title,
            descriptions.c.description,
        )
        .select_from(
            book_features_pending.outerjoin(books, books.c.id == pending)
            .outerjoin(categories)
            .outerjoin(descriptions, descriptions.c.book_id == books.c.id)
        )
        .where(pending > after)
        .order_by(pending)
        .limit(REFRESH_BATCH)
    )
    rows = (await conn.execute(batch)).all()
    if not rows:
        return 0, after
    listed = [row for row in rows if row.name is not None and row.removed_at is None]
    settled = [row.book_id for row in rows if row.name is None] + [r.book_id for r in listed]
    if listed:
        inputs = [
            BookInputs(r.name, r.rating, r.availability, r.title, r.description) for r in listed
        ]
        computed = feature_rows(inputs, {r.name for r in listed})
        values = [
            {"book_id": row.book_id, **dict(zip(FEATURES[1:], features[1:], strict=True))}
            for row, features in zip(listed, computed, strict=True)
        ]
        # executemany: one cached statement, not a 2,000-row VALUES compiled every batch
        await conn.execute(insert_for(conn, book_features).on_conflict_do_nothing(), values)
    await conn.execute(book_features_pending.delete().where(pending.in_(settled)))
    return len(listed), rows[-1].book_id


# -- streaming ----------------------------------------------------------------------------


class TrainingData:
    """Streams of the training data, at most ``limit`` at once in this process."""

    def __init__(self, engine: AsyncEngine, limit: int) -> None:
        self.engine = engine
        self._slots = asyncio.Semaphore(limit)
        self.limit = limit

    async def stream(
        self, shape: Shape, *, after: int, batch_size: int
    ) -> AsyncGenerator[Chunk, None]:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise BadUserInput(
                f"`batchSize` must be between 1 and {MAX_BATCH_SIZE}", field="batchSize"
            )
        if self._slots.locked():
            raise ServiceUnavailable(
                f"{self.limit} exports are already running here: try again shortly"
            )
        async with self._slots:
            await refresh_features(self.engine)
            if self.engine.dialect.name == "postgresql":
                chunks = _postgres_chunks(self.engine, shape, after, batch_size)
            else:
                chunks = _sqlite_chunks(self.engine, shape, after, batch_size)
            async for chunk in chunks:
                yield chunk

    async def count(self, *, after: int = 0) -> int:
        """How many rows a stream from ``after`` would give (for progress bars)."""
        statement = select(func.count()).where(books.c.removed_at.is_(None), books.c.id > after)
        async with self.engine.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())


def _source() -> Any:
    return book_features.join(books, books.c.id == book_features.c.book_id).join(
        categories, categories.c.id == books.c.category_id
    )


def _columns() -> list[ColumnElement[Any]]:
    return [
        book_features.c.book_id,
        books.c.upc,
        categories.c.name,
        *(book_features.c[name] for name in FEATURES[1:]),
        books.c.price_incl_tax_pence,
    ]


async def _sqlite_chunks(
    engine: AsyncEngine, shape: Shape, after: int, batch_size: int
) -> AsyncIterator[Chunk]:
    statement = (
        select(*_columns())
        .select_from(_source())
        .where(books.c.removed_at.is_(None), book_features.c.book_id > after)
        .order_by(book_features.c.book_id)
        .execution_options(yield_per=batch_size)
    )
    conn = await engine.connect()
    try:
        result = await conn.stream(statement)
        while True:
            with anyio.CancelScope(shield=True):  # see _release
                partition = await result.fetchmany(batch_size)
            if not partition:
                break
            values = [(*row[1:-1], row[-1] / 100) for row in partition]
            yield Chunk(render(values, shape), len(values), cursor_after(partition[-1][0]))
    finally:
        await _release(conn)


async def _release(conn: AsyncConnection) -> None:
    """Hand the connection back, rolled back, even when the stream is being cancelled.

    Starlette cancels a streaming response when its client goes away, and that cancellation
    repeats at every await. Landing inside a driver call, it makes SQLAlchemy give up on
    the connection half-closed, which on SQLite can leave a read snapshot open for good. So
    reads run shielded (a batch at a time: cancellation waits for at most one) and so does
    this release; the stream stops at its next ``yield``.
    """
    with anyio.CancelScope(shield=True):
        await conn.close()


def render(rows: Sequence[Sequence[Any]], shape: Shape) -> bytes:
    """Rows (values in ``COLUMNS`` order) as lines of the given shape."""
    if shape is Shape.ARRAYS:
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if shape is Shape.OBJECTS:
        return b"".join(
            orjson.dumps(dict(zip(COLUMN_NAMES, row, strict=True))) + b"\n" for row in rows
        )
    field = _spreadsheet_field if shape is Shape.SPREADSHEET_CSV else _csv_field
    return "".join(",".join(map(field, row)) + "\n" for row in rows).encode()


# Python's csv module, told that lines end in "\n", leaves a lone "\r" unquoted, and readers
# break the row there: fields are quoted as the SQL rendering quotes them (_CSV_QUOTED).
_CSV_SPECIAL = re.compile('[",\n\r]')


def _csv_field(value: Any) -> str:
    if isinstance(value, str) and _CSV_SPECIAL.search(value):
        return '"' + value.replace('"', '""') + '"'
    return "" if value is None else str(value)


# OWASP (CSV Injection): no text cell may begin with = + - @ tab or CR, which spreadsheets
# read as a formula: such a cell gets a leading ' (inside the quotes, as in OWASP's
# examples). Every text cell is quoted, so a separator or quote within it (a ";" where a
# locale splits on it) cannot open a new cell. Numbers are numbers, never text: a negative
# price or count stays as it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_field(value: Any) -> str:
    if not isinstance(value, str):
        return _csv_field(value)
    guard = "'" if value.startswith(FORMULA_STARTS) else ""
    return '"' + guard + value.replace('"', '""') + '"'


# On PostgreSQL the database renders every line (one ``concat`` a row, each category once a
# batch) and returns a whole batch as one text value with its row count and last book id:
# Python does no work per row. Each batch is a keyset query (``book_id > last``) inside one
# REPEATABLE READ transaction, so a stream reads one snapshot however slowly its client
# reads, and nothing runs on the server between two batches.
_NUMBERS = [*(f"f.{name}" for name in FEATURES[1:]), "(b.price_incl_tax_pence / 100.0)::float8"]
_CSV_QUOTED = (  # quoted only where CSV needs it, as _csv_field does
    "CASE WHEN {0} ~ E'[\",\\n\\r]' THEN '\"' || replace({0}, '\"', '\"\"') || '\"' ELSE {0} END"
)
_SPREADSHEET_QUOTED = (  # every text cell quoted, a formula's start guarded: _spreadsheet_field
    "concat('\"', CASE WHEN left({0}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' END, "
    "replace({0}, '\"', '\"\"'), '\"')"
)
_RENDER_TEXT = {Shape.ARRAYS: "to_json({0})::text", Shape.OBJECTS: "to_json({0})::text"}
_RENDER_TEXT[Shape.CSV] = _CSV_QUOTED
_RENDER_TEXT[Shape.SPREADSHEET_CSV] = _SPREADSHEET_QUOTED
_BATCH = """SELECT max(book_id), count(*), string_agg(line, E'\\n' ORDER BY book_id)
FROM (
    SELECT f.book_id, {line} AS line
    FROM book_features f
    JOIN books b ON b.id = f.book_id
    JOIN (SELECT id, {category} AS name FROM categories) c ON c.id = b.category_id
    WHERE b.removed_at IS NULL AND f.book_id > %(after)s AND b.id > %(after)s
    ORDER BY f.book_id
    LIMIT %(size)s
) batch"""


def _line(shape: Shape) -> str:
    """The SQL expression that renders one row: its values, in ``COLUMNS`` order, between
    the literals of the shape."""
    values = [_RENDER_TEXT[shape].format("b.upc"), "c.name", *_NUMBERS]
    commas = [","] * (len(values) - 1)
    if shape is Shape.OBJECTS:
        names = [f'"{name}":' for name in COLUMN_NAMES]
        labels, end = ["{" + names[0], *("," + name for name in names[1:])], "}"
    elif shape is Shape.ARRAYS:
        labels, end = ["[", *commas], "]"
    else:
        labels, end = ["", *commas], ""
    parts = [f"'{label}'" for label in labels]  # the labels hold no quote
    row = [part for label, value in zip(parts, values, strict=True) for part in (label, value)]
    return "concat(" + ", ".join(part for part in [*row, f"'{end}'"] if part != "''") + ")"


def batch_statement(shape: Shape) -> str:
    """The query that reads one batch; parameters ``after`` and ``size``."""
    return _BATCH.format(line=_line(shape), category=_RENDER_TEXT[shape].format("name"))


async def _postgres_chunks(
    engine: AsyncEngine, shape: Shape, after: int, batch_size: int
) -> AsyncIterator[Chunk]:
    conn = await engine.connect()
    try:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        statement = batch_statement(shape)
        async with driver.cursor() as cursor:
            while True:
                with anyio.CancelScope(shield=True):  # see _release
                    await cursor.execute(statement, {"after": after, "size": batch_size})
                    last, rows, lines = await cursor.fetchone()
                if not rows:
                    break
                after = last
                yield Chunk(lines.encode() + b"\n", rows, cursor_after(last))
    finally:
        await _release(conn)
