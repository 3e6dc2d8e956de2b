"""``bookql import``: the line rules, equality with the crawler's path, failure and resume, and
which books a crawl may retire, on both databases."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, text

from bookql.catalog import importing
from bookql.catalog.import_lines import BadLine, record_from_line
from bookql.catalog.importing import ImportFailed, ImportOptions, import_catalog, read_lines
from bookql.catalog.records import BookRecord
from bookql.catalog.snapshot import load_snapshot, read_snapshot_rows
from bookql.catalog.store import mark_unseen_removed, upsert_books
from bookql.db.engine import (
    async_write_transaction,
    create_async_db_engine,
    create_sync_engine,
    write_transaction,
)
from bookql.db.migrate import upgrade
from bookql.db.types import UTCDateTime, utcnow
from bookql.ml.dataset import refresh_features
from tests.conftest import ScratchDatabase

SNAPSHOT_ROWS = list(read_snapshot_rows())
A_ROW = SNAPSHOT_ROWS[0]


# --- the line rules -------------------------------------------------------------------------


def line(**changes: Any) -> str:
    row = {**A_ROW, **changes}
    return json.dumps({name: value for name, value in row.items() if value is not ...})


def test_a_snapshot_line_reads_as_the_seed_reads_it() -> None:
    assert [record_from_line(json.dumps(row)) for row in SNAPSHOT_ROWS] == load_snapshot()


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"price": 10.0}, "`price` and `price_incl_tax` disagree"),
        ({"price_excl_tax": 40.0}, "is not `price_excl_tax` plus `tax`"),
        ({"price_incl_tax": ..., "price": ...}, "`price_incl_tax` (or `price`) is required"),
        ({"price_incl_tax": 1.234, "price": ...}, "fractions of a penny"),
        ({"price_incl_tax": -1, "price": ...}, "between 0 and"),
        ({"availability": "In stock (3 available)"}, "disagree"),
        ({"availability": "Backordered"}, "neither 'In stock (N available)'"),
        ({"in_stock": False}, "`in_stock` is false but the stock count is 22"),
        ({"availability_count": ..., "availability": ...}, "`availability_count` (or"),
        ({"availability_count": "22"}, "must be a whole number"),
        ({"rating": 6}, "between 1 and 5"),
        ({"rating": True}, "whole number"),
        ({"upc": "has spaces"}, "`upc` is 1 to 64"),
        ({"title": "  "}, "`title` must not be empty"),
        ({"category": ...}, "`category` is required"),
        ({"category": "???"}, "no letters or digits"),
        ({"currency": "pounds"}, "three-letter code"),
    ],
)
def test_lines_that_contradict_themselves_are_refused(
    changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(BadLine) as refused:
        record_from_line(line(**changes))
    assert complaint in str(refused.value)


def test_what_is_derived_when_left_out() -> None:
    minimal = {"upc": "u1", "title": "T", "category": "Poetry", "price": "12.50", "rating": 4}
    record = record_from_line(json.dumps({**minimal, "availability": "Out of stock"}))
    assert (record.price_incl_tax_pence, record.price_excl_tax_pence, record.tax_pence) == (
        1250,
        1250,
        0,
    )
    assert (record.availability, record.currency, record.product_type) == (0, "GBP", "Books")
    assert (record.num_reviews, record.description, record.image_url) == (0, None, "")
    taxed = record_from_line(
        json.dumps({**minimal, "price_excl_tax": 10, "availability_count": 3, "in_stock": True})
    )
    assert (taxed.price_excl_tax_pence, taxed.tax_pence, taxed.availability) == (1000, 250, 3)
    assert record_from_line(line(description="   ")).description is None
    with pytest.raises(BadLine, match="not a JSON object"):
        record_from_line("[1]")
    with pytest.raises(BadLine, match="not JSON"):
        record_from_line("{nope")


# --- databases ------------------------------------------------------------------------------


def other_database(database: ScratchDatabase, request: pytest.FixtureRequest) -> ScratchDatabase:
    """A second migrated database on the same back end."""
    if database.backend == "postgresql":
        url = request.getfixturevalue("postgres").create()
    else:
        url = f"sqlite:///{database.data_dir / 'other.db'}"
    other = dataclasses.replace(database, url=url)
    engine = create_sync_engine(other.settings())
    upgrade(engine)
    engine.dispose()
    return other


@pytest.fixture
def engine(empty_db: ScratchDatabase) -> Iterator[Engine]:
    engine = create_sync_engine(empty_db.settings())
    yield engine
    engine.dispose()


def jsonl(records: list[BookRecord]) -> bytes:
    """Lines in the snapshot's format for these records."""
    out = []
    for record in records:
        row = {
            name: getattr(record, name)
            for name in ("upc", "title", "product_type", "currency", "rating", "num_reviews")
        }
        row |= {
            "price_excl_tax": record.price_excl_tax_pence / 100,
            "price_incl_tax": record.price_incl_tax_pence / 100,
            "tax": record.tax_pence / 100,
            "price": record.price_incl_tax_pence / 100,
            "availability": f"In stock ({record.availability} available)"
            if record.availability
            else "Out of stock",
            "availability_count": record.availability,
            "in_stock": record.availability > 0,
            "description": record.description,
            "category": record.category,
            "image_url": record.image_url,
            "product_url": record.product_url,
        }
        out.append(json.dumps(row))
    return ("\n".join(out) + "\n").encode()


def run_import(engine: Engine, data: bytes, **options: Any) -> importing.ImportSummary:
    return import_catalog(
        engine,
        read_lines(io.BytesIO(data), options.get("from_line", 1)),
        ImportOptions(**options),
    )


def crawl(database: ScratchDatabase, records: list[BookRecord]) -> None:
    async def run() -> None:
        engine = create_async_db_engine(database.settings())
        async with async_write_transaction(engine) as conn:
            await upsert_books(conn, records)
        await engine.dispose()

    asyncio.run(run())


def compute_features(database: ScratchDatabase) -> None:
    async def run() -> None:
        engine = create_async_db_engine(database.settings())
        await refresh_features(engine)
        await engine.dispose()

    asyncio.run(run())


CATALOGUE_QUERIES = {
    "books": """SELECT b.upc, b.title, b.product_type, b.price_excl_tax_pence,
        b.price_incl_tax_pence, b.tax_pence, b.currency, b.availability, b.rating,
        b.num_reviews, b.image_url, b.product_url, c.name, b.removed_at IS NULL, b.version
        FROM books b JOIN categories c ON c.id = b.category_id ORDER BY b.upc""",
    "categories": "SELECT name, slug, version FROM categories ORDER BY name",
    "descriptions": """SELECT b.upc, d.description FROM book_descriptions d
        JOIN books b ON b.id = d.book_id ORDER BY b.upc""",
    "price_points": """SELECT b.upc, p.price_excl_tax_pence, p.price_incl_tax_pence,
        p.tax_pence, p.availability FROM price_points p JOIN books b ON b.id = p.book_id
        ORDER BY 1, 2, 3, 4, 5""",
    "features": """SELECT b.upc, f.rating, f.availability, f.title_length, f.title_words,
        f.has_subtitle, f.in_series, f.series_number, f.has_description,
        f.description_length, f.description_words
        FROM book_features f JOIN books b ON b.id = f.book_id ORDER BY b.upc""",
    "features_pending": """SELECT b.upc FROM book_features_pending p
        JOIN books b ON b.id = p.book_id ORDER BY b.upc""",
}
SEARCH_QUERIES = {
    "sqlite": """SELECT b.upc, f.title, f.description FROM books_fts f
        JOIN books b ON b.id = f.rowid ORDER BY b.upc""",
    "postgresql": """SELECT b.upc, s.document::text FROM book_search s
        JOIN books b ON b.id = s.book_id ORDER BY b.upc""",
}


def catalogue_tables(database: ScratchDatabase) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalogue table, keyed by UPC rather than ids, without timestamps."""
    engine = create_sync_engine(database.settings())
    queries = {**CATALOGUE_QUERIES, "search": SEARCH_QUERIES[database.backend]}
    with engine.connect() as conn:
        tables = {
            name: [tuple(row) for row in conn.execute(text(sql))] for name, sql in queries.items()
        }
    engine.dispose()
    return tables


def sources(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT upc, source FROM books")).all())


def changed_catalogue() -> tuple[list[BookRecord], list[BookRecord]]:
    """A first crawl, then a file that changes it in every way a book can change."""
    snapshot = load_snapshot()
    first = snapshot[:300]
    later = [
        dataclasses.replace(
            first[0],
            price_incl_tax_pence=first[0].price_incl_tax_pence + 100,
            tax_pence=first[0].tax_pence + 100,
        ),
        dataclasses.replace(first[1], title=first[1].title + " (Revised)"),
        dataclasses.replace(first[2], description="A new blurb about the book."),
        dataclasses.replace(first[3], description=None),
        dataclasses.replace(first[4], availability=0),
        dataclasses.replace(first[5], category="Imported Oddities", rating=1),
        dataclasses.replace(first[6], num_reviews=7),
        first[7],  # removed by the test before the import: listing it restores it
        *first[8:100],  # unchanged
        dataclasses.replace(snapshot[300], title="superseded by the next line"),
        *snapshot[300:400],  # new books
    ]
    return first, later


@pytest.mark.slow
def test_an_import_stores_exactly_what_the_crawler_stores(
    empty_db: ScratchDatabase, request: pytest.FixtureRequest
) -> None:
    crawled = other_database(empty_db, request)
    first, later = changed_catalogue()
    for database in (empty_db, crawled):
        crawl(database, first)
        compute_features(database)
        engine = create_sync_engine(database.settings())
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE books SET removed_at = last_seen_at WHERE upc = :upc"),
                {"upc": first[7].upc},
            )
        engine.dispose()
    engine = create_sync_engine(empty_db.settings())
    summary = run_import(engine, jsonl(later))
    assert (summary.inserted, summary.updated, summary.unchanged) == (100, 8, 92)
    assert (summary.superseded, summary.rejected) == (1, [])
    crawl(crawled, later)
    imported_tables, crawled_tables = catalogue_tables(empty_db), catalogue_tables(crawled)
    for name, rows in crawled_tables.items():
        assert imported_tables[name] == rows, name
    assert len(imported_tables["price_points"]) == 300 + 100 + 2  # a price, a stock change
    owners = sources(engine)
    listed = {record.upc for record in later}
    assert {owners[upc] for upc in listed} == {"import"}
    assert {owner for upc, owner in owners.items() if upc not in listed} == {"crawl"}
    engine.dispose()


def test_a_rerun_changes_nothing_and_skip_leaves_known_books(engine: Engine) -> None:
    snapshot = load_snapshot()[:50]
    run_import(engine, jsonl(snapshot))
    again = run_import(engine, jsonl(snapshot))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 50)
    renamed = [dataclasses.replace(record, title="Renamed") for record in snapshot[:10]]
    kept = run_import(engine, jsonl(renamed), existing="skip")
    assert (kept.inserted, kept.updated, kept.kept) == (0, 0, 10)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM books WHERE title = 'Renamed'")) == 0
        assert conn.scalar(text("SELECT max(version) FROM books")) == 2


def bad_file(good: list[BookRecord], bad_at: int, *, fixed: bool = False) -> bytes:
    """The books' lines with a bad one (or, ``fixed``, a good one) at line ``bad_at``."""
    lines = jsonl(good).decode().splitlines()
    lines.insert(bad_at - 1, line(upc="bad-line") if fixed else line(upc="bad-line", price=1.0))
    return ("\n".join(lines) + "\n").encode()


def test_bad_lines_are_reported_and_skipped(engine: Engine) -> None:
    data = bad_file(load_snapshot()[:20], bad_at=5) + b"\n{not json\n"
    summary = run_import(engine, data, on_error="skip")
    assert summary.inserted == 20
    assert [(error.line, error.reason[:9]) for error in summary.rejected] == [
        (5, "`price` a"),
        (23, "not JSON:"),
    ]


def count_books(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM books")) or 0)


def test_a_failed_import_on_postgresql_leaves_nothing(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits in batches (see the resume tests)")
    with pytest.raises(ImportFailed, match=r"line 900: .*nothing was imported"):
        run_import(engine, bad_file(load_snapshot(), bad_at=900))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM books")) == 0
        assert conn.scalar(text("SELECT count(*) FROM categories")) == 0


def test_a_failed_sqlite_import_resumes_where_it_stopped(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL imports in one transaction")
    books = load_snapshot()[:500]
    with pytest.raises(ImportFailed, match=r"line 250: .*--from-line 201") as failed:
        run_import(engine, bad_file(books, bad_at=250), batch_size=100)
    assert failed.value.summary.committed_through == 200
    assert count_books(engine) == 200
    fixed = bad_file(books, bad_at=250, fixed=True)
    resumed = run_import(engine, fixed, batch_size=100, from_line=201)
    assert (resumed.inserted, resumed.unchanged, resumed.rejected) == (301, 0, [])
    assert count_books(engine) == 501


@pytest.mark.slow
def test_an_interrupted_sqlite_import_rerun_ends_as_a_clean_one(
    empty_db: ScratchDatabase, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if empty_db.backend != "sqlite":
        pytest.skip("PostgreSQL imports in one transaction")
    data = jsonl(load_snapshot())
    apply = importing._apply
    calls = 0

    def dies_in_the_third_batch(*args: Any) -> None:
        nonlocal calls
        calls += 1
        apply(*args)
        if calls == 3:
            raise KeyboardInterrupt  # as if killed mid-batch: that batch rolls back

    monkeypatch.setattr(importing, "_apply", dies_in_the_third_batch)
    engine = create_sync_engine(empty_db.settings())
    with pytest.raises(KeyboardInterrupt):
        run_import(engine, data, batch_size=150)
    assert count_books(engine) == 300
    monkeypatch.setattr(importing, "_apply", apply)
    rerun = run_import(engine, data, batch_size=150)
    assert (rerun.inserted, rerun.unchanged) == (700, 300)
    engine.dispose()
    clean = other_database(empty_db, request)
    clean_engine = create_sync_engine(clean.settings())
    run_import(clean_engine, data)
    clean_engine.dispose()
    assert catalogue_tables(empty_db) == catalogue_tables(clean)


# --- who owns a book ------------------------------------------------------------------------


def test_a_complete_crawl_retires_only_the_crawlers_books(empty_db: ScratchDatabase) -> None:
    snapshot = load_snapshot()
    crawl(empty_db, snapshot[:100])  # the crawler's (the seed stores the same way)
    engine = create_sync_engine(empty_db.settings())
    run_import(engine, jsonl(snapshot[100:200]))
    crawl(empty_db, snapshot[150:160])  # the crawler sees ten imported books: now its own

    async def retire() -> int:
        async_engine = create_async_db_engine(empty_db.settings())
        async with async_write_transaction(async_engine) as conn:
            later = utcnow() + timedelta(seconds=1)
            removed = await mark_unseen_removed(conn, later, later)
        await async_engine.dispose()
        return removed

    assert asyncio.run(retire()) == 110
    with engine.connect() as conn:
        retired = set(conn.scalars(text("SELECT upc FROM books WHERE removed_at IS NOT NULL")))
    engine.dispose()
    assert retired == {record.upc for record in snapshot[:100] + snapshot[150:160]}


def test_seeded_books_are_the_crawlers(seeded_db: ScratchDatabase) -> None:
    engine = create_sync_engine(seeded_db.settings())
    assert set(sources(engine).values()) == {"crawl"}
    engine.dispose()


# --- the command ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_reads_stdin_and_reports(tmp_path: Path) -> None:
    env = {"BOOKQL_DATA_DIR": str(tmp_path)}

    def bookql(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "bookql", *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, **env},
            timeout=120,
            check=False,
        )

    assert bookql("db", "upgrade").returncode == 0
    data = bad_file(load_snapshot()[:30], bad_at=3)
    failed = bookql("import", "-", stdin=data)
    assert failed.returncode == 1
    assert b"line 3: `price` and `price_incl_tax` disagree" in failed.stderr
    done = bookql("import", "-", "--on-error", "skip", stdin=data)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.decode().strip() == "inserted 30, updated 0, unchanged 0, 1 bad lines skipped"
    )
    assert done.stderr.decode().strip() == "line 3: `price` and `price_incl_tax` disagree"


def test_books_stored_before_sources_are_the_crawlers(blank_db: ScratchDatabase) -> None:
    """Migration 0011: crawled, seeded or admin-created books keep being retired by crawls."""
    engine = create_sync_engine(blank_db.settings())
    upgrade(engine, "0010")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO categories (id, name, slug) VALUES (1, 'Poetry', 'poetry')"))
        conn.execute(
            text(
                "INSERT INTO books (upc, title, product_type, price_excl_tax_pence,"
                " price_incl_tax_pence, tax_pence, currency, availability, rating, num_reviews,"
                " image_url, product_url, category_id, first_seen_at, last_seen_at)"
                " VALUES ('old', 'Old', 'Books', 100, 100, 0, 'GBP', 1, 3, 0, '', '', 1,"
                " :now, :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"now": now},
        )
    upgrade(engine)
    assert sources(engine) == {"old": "crawl"}
    engine.dispose()


def test_sqlite_lets_other_writers_in_between_batches(empty_db: ScratchDatabase) -> None:
    """The write lock is held per batch only: a writer with a short wait gets in meanwhile."""
    if empty_db.backend != "sqlite":
        pytest.skip("PostgreSQL imports in one transaction, locking only the books it lists")
    engine = create_sync_engine(empty_db.settings())
    other = create_sync_engine(empty_db.settings(db_pool_timeout=0.2))
    written = []

    def lines_with_a_writer_in_between() -> Iterator[tuple[int, BookRecord | BadLine]]:
        for number, item in read_lines(io.BytesIO(jsonl(load_snapshot()[:300]))):
            if number == 150:  # the first batch is committed, the second is being read
                with write_transaction(other) as conn:
                    conn.execute(text("INSERT INTO categories (name, slug) VALUES ('X', 'x')"))
                written.append(number)
            yield number, item

    summary = import_catalog(
        engine, lines_with_a_writer_in_between(), ImportOptions(batch_size=100)
    )
    assert (summary.inserted, written) == (300, [150])
    engine.dispose()
    other.dispose()


def test_the_triggers_work_again_after_an_import(engine: Engine) -> None:
    """PostgreSQL's bulk setting is the import transaction's only, not its pooled connection's."""
    record = load_snapshot()[0]
    run_import(engine, jsonl([record]))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM book_features_pending"))  # as if the export ran
        conn.execute(
            text("UPDATE books SET title = 'Zanzibar Quokka' WHERE upc = :upc"), {"upc": record.upc}
        )
        version = conn.scalar(
            text("SELECT version FROM books WHERE upc = :upc"), {"upc": record.upc}
        )
        pending = conn.scalar(text("SELECT count(*) FROM book_features_pending"))
    assert (version, pending) == (3, 1)
    search = {
        "sqlite": "SELECT count(*) FROM books_fts WHERE books_fts MATCH 'quokka'",
        "postgresql": "SELECT count(*) FROM book_search"
        " WHERE document @@ to_tsquery('english', 'quokka')",
    }[engine.dialect.name]
    with engine.connect() as conn:
        assert conn.scalar(text(search)) == 1


@pytest.mark.slow
def test_a_killed_sqlite_import_keeps_whole_batches_and_reruns_to_the_end(
    empty_db: ScratchDatabase, tmp_path: Path
) -> None:
    if empty_db.backend != "sqlite":
        pytest.skip("PostgreSQL imports in one transaction")
    books = [
        dataclasses.replace(record, upc=f"{record.upc}-{copy}")
        for copy in range(4)
        for record in load_snapshot()
    ]
    path = tmp_path / "books.jsonl"
    path.write_bytes(jsonl(books))
    env = {**os.environ, "BOOKQL_DATABASE_URL": empty_db.url, "BOOKQL_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "bookql", "import", str(path), "--batch-size", "100"]
    engine = create_sync_engine(empty_db.settings())
    running = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while count_books(engine) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    running.send_signal(signal.SIGKILL)
    running.communicate()
    stored = count_books(engine)
    assert 0 < stored < len(books)
    assert stored % 100 == 0  # whole batches only
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip().startswith(
        f"inserted {len(books) - stored}, updated 0, unchanged {stored}"
    )
    assert count_books(engine) == len(books)
    engine.dispose()
