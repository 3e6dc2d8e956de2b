"""``bookql import``: bulk-load books from JSON Lines, set-wise, through a staging table.

Lines are checked in Python (``import_lines``), loaded into a temporary staging table (``COPY``
on PostgreSQL, batched inserts on SQLite), then applied with a handful of set-wise statements
that store exactly what the crawler's ``upsert_books`` stores for the same records: the same
book columns, descriptions and price points, so the database's own triggers derive the same
search documents, feature invalidations, pending features and row versions.

PostgreSQL imports in one transaction: a failure leaves nothing. SQLite commits every
``batch_size`` lines in its own short write transaction, so the crawler and the API's writes
interleave; an interrupted import is resumed by running it again (what is stored already
counts as unchanged) or from the line after the last committed batch (``from_line``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    text,
)

from bookql.catalog.import_lines import BadLine, record_from_line
from bookql.catalog.records import BookRecord
from bookql.catalog.slugs import slugify
from bookql.catalog.store import COMPARED_COLUMNS, PRICED_COLUMNS
from bookql.catalog.tables import IMPORT
from bookql.db.engine import write_transaction
from bookql.db.types import UTCDateTime, utcnow

Existing = Literal["update", "skip"]
OnError = Literal["skip", "fail"]
SQLITE_BATCH = 2000

_RECORD_COLUMNS = tuple(column.name for column in fields(BookRecord))
_FEATURE_INPUTS = ("title", "rating", "availability")  # with the description (migration 0006)

_staging_metadata = MetaData()
staging = Table(
    "import_staging",
    _staging_metadata,
    Column("line", Integer, primary_key=True, autoincrement=False),
    Column("upc", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("product_type", String(100), nullable=False),
    Column("price_excl_tax_pence", Integer, nullable=False),
    Column("price_incl_tax_pence", Integer, nullable=False),
    Column("tax_pence", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("availability", Integer, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("num_reviews", Integer, nullable=False),
    Column("description", Text),
    Column("category", String(200), nullable=False),
    Column("image_url", Text, nullable=False),
    Column("product_url", Text, nullable=False),
    Column("category_id", Integer),
    Column("book_id", Integer),
    Column("kind", String(8)),  # new | changed | same | kept (a known book left alone)
    Column("priced", Integer, nullable=False, server_default=text("0")),
    Column("description_changed", Integer, nullable=False, server_default=text("0")),
    # What the skipped PostgreSQL triggers would have reacted to (see ``_derive_postgres``).
    Column("content_changed", Integer, nullable=False, server_default=text("0")),
    Column("inputs_changed", Integer, nullable=False, server_default=text("0")),
    Index("ix_import_staging_upc", "upc"),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


@dataclass
class ImportSummary:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0  # known books left as they are (``existing="skip"``)
    superseded: int = 0  # lines whose UPC a later line of the same batch repeats
    rejected: list[LineError] = field(default_factory=list)
    committed_through: int = 0  # the last line whose batch is committed

    def add(self, counts: dict[str, int]) -> None:
        self.inserted += counts.get("new", 0)
        self.updated += counts.get("changed", 0)
        self.unchanged += counts.get("same", 0)
        self.kept += counts.get("kept", 0)


class ImportFailed(Exception):
    """The import stopped; ``summary`` says what was committed before (SQLite) or nothing."""

    def __init__(self, message: str, summary: ImportSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class ImportOptions:
    existing: Existing = "update"
    on_error: OnError = "fail"
    batch_size: int = SQLITE_BATCH  # lines per transaction on SQLite
    from_line: int = 1  # the first line to read (resume after a committed batch)


Progress = Callable[[int], None]  # bytes read so far


def read_lines(
    stream: io.BufferedIOBase | Any, from_line: int = 1, progress: Progress | None = None
) -> Iterator[tuple[int, BookRecord | BadLine]]:
    """``(line number, record or why not)`` for every non-blank line from ``from_line`` on."""
    consumed = 0
    for number, raw in enumerate(stream, start=1):
        consumed += len(raw)
        if progress is not None and number % 256 == 0:
            progress(consumed)
        if number < from_line or not raw.strip():
            continue
        try:
            yield number, record_from_line(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield number, BadLine("not UTF-8 text")
        except BadLine as bad:
            yield number, bad
    if progress is not None:
        progress(consumed)


def import_catalog(
    engine: Engine,
    lines: Iterable[tuple[int, BookRecord | BadLine]],
    options: ImportOptions | None = None,
) -> ImportSummary:
    """Import checked lines (from :func:`read_lines`); raises ``ImportFailed`` when it stops."""
    options = options or ImportOptions()
    if engine.dialect.name == "postgresql":
        return _import_postgres(engine, lines, options)
    return _import_sqlite(engine, lines, options)


def _good_lines(
    lines: Iterable[tuple[int, BookRecord | BadLine]],
    options: ImportOptions,
    summary: ImportSummary,
) -> Iterator[tuple[int, BookRecord]]:
    for number, item in lines:
        if isinstance(item, BookRecord):
            yield number, item
            continue
        summary.rejected.append(LineError(number, str(item)))
        if options.on_error == "fail":
            raise _Stop(number, str(item))


class _Stop(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")


def _row(number: int, record: BookRecord) -> tuple[Any, ...]:
    return (number, *(getattr(record, name) for name in _RECORD_COLUMNS))


def _import_postgres(
    engine: Engine, lines: Iterable[tuple[int, BookRecord | BadLine]], options: ImportOptions
) -> ImportSummary:
    summary = ImportSummary()
    last = 0
    try:
        with write_transaction(engine) as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))  # a large import takes long
            # The row triggers stand aside for this transaction (migration 0012): the derived
            # data is written set-wise by _derive_postgres.
            conn.execute(text("SET LOCAL bookql.bulk_import = 'on'"))
            staging.create(conn)
            columns = ", ".join(("line", *_RECORD_COLUMNS))
            raw = conn.connection.driver_connection
            with (
                raw.cursor() as cursor,  # type: ignore[union-attr]
                cursor.copy(f"COPY import_staging ({columns}) FROM STDIN") as copy,
            ):
                for number, record in _good_lines(lines, options, summary):
                    copy.write_row(_row(number, record))
                    last = number
            conn.execute(text("ANALYZE import_staging"))
            _apply(conn, options, summary)
    except _Stop as stop:
        raise ImportFailed(f"{stop}; nothing was imported", summary) from None
    except BadCategories as bad:
        summary.rejected.extend(bad.errors)
        raise ImportFailed(f"{bad}; nothing was imported", summary) from None
    summary.committed_through = last
    return summary


def _import_sqlite(
    engine: Engine, lines: Iterable[tuple[int, BookRecord | BadLine]], options: ImportOptions
) -> ImportSummary:
    summary = ImportSummary()
    batch: list[tuple[int, BookRecord]] = []

    def commit() -> None:
        rows = [dict(zip(("line", *_RECORD_COLUMNS), _row(n, r), strict=True)) for n, r in batch]
        with write_transaction(engine) as conn:
            staging.create(conn)  # a failure rolls its creation back with the rest
            conn.execute(staging.insert(), rows)
            _apply(conn, options, summary)
            staging.drop(conn)
        summary.committed_through = batch[-1][0]
        batch.clear()

    try:
        for number, record in _good_lines(lines, options, summary):
            batch.append((number, record))
            if len(batch) >= options.batch_size:
                commit()
        if batch:
            commit()
    except _Stop as stop:
        raise ImportFailed(f"{stop}; {_committed(summary)}", summary) from None
    except BadCategories as bad:
        summary.rejected.extend(bad.errors)
        raise ImportFailed(f"{bad}; {_committed(summary)}", summary) from None
    return summary


def _committed(summary: ImportSummary) -> str:
    if not summary.committed_through:
        return "nothing was imported"
    return (
        f"lines up to {summary.committed_through} are stored"
        f" (resume with --from-line {summary.committed_through + 1})"
    )


class BadCategories(Exception):
    """Category names whose slug another category has already ("Self-Help" vs "Self Help")."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"line {errors[0].line}: {errors[0].reason}")
        self.errors = errors


# The statements below are put together from this module's own column names (never from
# input: values are bound parameters or come from the staging table), hence the noqa: S608.


def _distinct(dialect: str) -> str:
    return "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"


def _apply(conn: Connection, options: ImportOptions, summary: ImportSummary) -> None:
    """Store the staged lines set-wise, as ``upsert_books`` would store the same records."""
    now = utcnow()
    summary.superseded += _drop_superseded(conn)
    _resolve_categories(conn, options, summary)
    _classify(conn, options)
    bulk = conn.dialect.name == "postgresql"
    _write_books(conn, now, bulk=bulk)
    if bulk:
        _derive_postgres(conn)
    counts = conn.execute(text("SELECT kind, count(*) FROM import_staging GROUP BY kind"))
    summary.add({kind: int(count) for kind, count in counts})


def _drop_superseded(conn: Connection) -> int:
    """The last line of a UPC wins, as the last sighting does in ``upsert_books``."""
    result = conn.execute(
        text(
            "DELETE FROM import_staging WHERE EXISTS (SELECT 1 FROM import_staging later"
            " WHERE later.upc = import_staging.upc AND later.line > import_staging.line)"
        )
    )
    return int(result.rowcount or 0)


def _resolve_categories(conn: Connection, options: ImportOptions, summary: ImportSummary) -> None:
    missing = conn.scalars(
        text(
            "SELECT DISTINCT category FROM import_staging s WHERE NOT EXISTS"
            " (SELECT 1 FROM categories c WHERE c.name = s.category) ORDER BY category"
        )
    ).all()
    if missing:
        conn.execute(
            text(
                "INSERT INTO categories (name, slug) VALUES (:name, :slug) ON CONFLICT DO NOTHING"
            ),
            [{"name": name, "slug": slugify(name)} for name in missing],
        )
    conn.execute(
        text(
            "UPDATE import_staging SET category_id ="
            " (SELECT c.id FROM categories c WHERE c.name = import_staging.category)"
        )
    )
    clashes = conn.execute(
        text("SELECT line, category FROM import_staging WHERE category_id IS NULL ORDER BY line")
    ).all()
    if not clashes:
        return
    errors = [
        LineError(line, f"category {name!r} has the slug of another category")
        for line, name in clashes
    ]
    if options.on_error == "fail":
        raise BadCategories(errors)
    summary.rejected.extend(errors)
    conn.execute(text("DELETE FROM import_staging WHERE category_id IS NULL"))


def _classify(conn: Connection, options: ImportOptions) -> None:
    """Each staged line: a ``new`` book, a ``changed`` or the ``same`` one, or ``kept`` as is."""
    distinct = _distinct(conn.dialect.name)
    if conn.dialect.name == "postgresql":
        # Lock the books to update in one order for every writer, as upsert_books does.
        conn.execute(
            text(
                "SELECT count(*) FROM (SELECT b.id FROM books b JOIN import_staging s"
                " ON s.upc = b.upc ORDER BY b.id FOR UPDATE OF b) locked"
            )
        )
    book_changed = " OR ".join(f"b.{name} <> s.{name}" for name in COMPARED_COLUMNS)
    priced = " OR ".join(f"b.{name} <> s.{name}" for name in PRICED_COLUMNS)
    description_changed = f"d.description {distinct} s.description"
    inputs = " OR ".join(f"b.{name} <> s.{name}" for name in _FEATURE_INPUTS)
    kind = (
        "'kept'"
        if options.existing == "skip"
        else f"CASE WHEN {book_changed} OR b.removed_at IS NOT NULL OR {description_changed}"
        " THEN 'changed' ELSE 'same' END"
    )
    conn.execute(
        text(
            f"UPDATE import_staging SET book_id = known.id, kind = known.kind,"  # noqa: S608
            f" priced = known.priced, description_changed = known.description_changed,"
            f" content_changed = known.content_changed, inputs_changed = known.inputs_changed"
            f" FROM (SELECT s.line, b.id, {kind} AS kind,"
            f" CASE WHEN {priced} THEN 1 ELSE 0 END AS priced,"
            f" CASE WHEN {description_changed} THEN 1 ELSE 0 END AS description_changed,"
            f" CASE WHEN {book_changed} OR b.removed_at IS NOT NULL THEN 1 ELSE 0 END"
            f" AS content_changed,"
            f" CASE WHEN {inputs} OR {description_changed} THEN 1 ELSE 0 END AS inputs_changed"
            f" FROM import_staging s JOIN books b ON b.upc = s.upc"
            f" LEFT JOIN book_descriptions d ON d.book_id = b.id) known"
            f" WHERE import_staging.line = known.line"
        )
    )
    conn.execute(text("UPDATE import_staging SET kind = 'new' WHERE book_id IS NULL"))


def _write_books(conn: Connection, now: datetime, *, bulk: bool) -> None:
    """The books, descriptions and price points; with ``bulk`` (the triggers standing aside),
    the row versions too: 1 for a new book, 2 with its description; one more for a changed
    book's content and one more for its changed description, as migration 0009 counts."""
    stamp = bindparam("now", type_=UTCDateTime())
    source = bindparam("source", IMPORT, type_=String())
    book_columns = ", ".join(COMPARED_COLUMNS)
    new_version, next_version = (
        (
            ", CASE WHEN description IS NULL THEN 1 ELSE 2 END",
            ", version = books.version + s.content_changed + s.description_changed",
        )
        if bulk
        else ("", "")
    )
    conn.execute(
        text(
            f"INSERT INTO books (upc, {book_columns}, first_seen_at, last_seen_at, source"  # noqa: S608
            f"{', version' if bulk else ''})"
            f" SELECT upc, {book_columns}, :now, :now, :source{new_version} FROM import_staging"
            " WHERE kind = 'new' ORDER BY line"
        ).bindparams(stamp, source),
        {"now": now},
    )
    conn.execute(
        text(
            "UPDATE import_staging SET book_id ="
            " (SELECT b.id FROM books b WHERE b.upc = import_staging.upc) WHERE kind = 'new'"
        )
    )
    assignments = ", ".join(f"{name} = s.{name}" for name in COMPARED_COLUMNS)
    conn.execute(
        text(
            f"UPDATE books SET {assignments}, last_seen_at = :now, removed_at = NULL,"  # noqa: S608
            f" source = :source{next_version} FROM import_staging s"
            " WHERE books.id = s.book_id AND s.kind = 'changed'"
        ).bindparams(stamp, source),
        {"now": now},
    )
    conn.execute(  # a book listed unchanged is the import's now too: no crawl retires it
        text(
            "UPDATE books SET source = :source FROM import_staging s"
            " WHERE books.id = s.book_id AND s.kind = 'same' AND books.source <> :source"
        ).bindparams(source)
    )
    conn.execute(
        text(
            "INSERT INTO book_descriptions (book_id, description)"
            " SELECT book_id, description FROM import_staging WHERE description IS NOT NULL"
            " AND (kind = 'new' OR (kind = 'changed' AND description_changed = 1))"
            " ON CONFLICT (book_id) DO UPDATE SET description = excluded.description"
        )
    )
    conn.execute(
        text(
            "DELETE FROM book_descriptions WHERE book_id IN (SELECT book_id FROM import_staging"
            " WHERE kind = 'changed' AND description IS NULL AND description_changed = 1)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO price_points (book_id, observed_at, price_excl_tax_pence,"
            " price_incl_tax_pence, tax_pence, availability)"
            " SELECT book_id, :now, price_excl_tax_pence, price_incl_tax_pence, tax_pence,"
            " availability FROM import_staging"
            " WHERE kind = 'new' OR (kind = 'changed' AND priced = 1) ORDER BY line"
        ).bindparams(stamp),
        {"now": now},
    )


def _derive_postgres(conn: Connection) -> None:
    """What the triggers of 0003, 0006 and 0007 do row by row, for every staged book at once.

    The search document is ``bookql_index_book``'s (0003), computed once per book instead of
    once for its row and again for its description.
    """
    conn.execute(
        text(
            "INSERT INTO book_search (book_id, document)"
            " SELECT b.id, setweight(to_tsvector('english', b.title), 'A')"
            " || setweight(to_tsvector('english', coalesce(d.description, '')), 'B')"
            " FROM import_staging s JOIN books b ON b.id = s.book_id"
            " LEFT JOIN book_descriptions d ON d.book_id = b.id"
            " WHERE s.kind IN ('new', 'changed')"
            " ON CONFLICT (book_id) DO UPDATE SET document = excluded.document"
        )
    )
    conn.execute(
        text(
            "DELETE FROM book_features WHERE book_id IN (SELECT book_id FROM import_staging"
            " WHERE kind = 'changed' AND inputs_changed = 1)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO book_features_pending (book_id) SELECT book_id FROM import_staging"
            " WHERE kind = 'new' OR (kind = 'changed' AND inputs_changed = 1)"
            " ON CONFLICT DO NOTHING"
        )
    )
