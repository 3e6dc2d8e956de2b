"""What the catalogue tallies cost to keep and what they save, side by side, on both databases.

Writes, with and without the tallies' upkeep (two databases migrated and seeded alike with
the bundled 1000 books, the tallies' triggers dropped from the second), interleaved round by
round: a crawl batch (``upsert_books``, 200 records, as the crawler's pipeline writes
them) of new books, of the same books with new prices and stock, and unchanged; and an admin
price update (``CatalogAdmin.update_book``). Reads, on a larger synthetic catalogue
(``--large`` books added by one ``INSERT … SELECT`` over a generated series): every figure of
``stats`` and a filtered ``totalCount`` (category, price range, rating range), computed the
old way (aggregates over ``books``) and from the tallies. Prints p50 in ms and the ratios.

    python -m bench.tallies_write [--rounds 9] [--large 100000]
        [--postgres postgresql+psycopg://root@127.0.0.1:5432/test] [--only sqlite|postgresql]

Scratch databases, set-up and the report's table come from ``bench.harness`` (a temporary
SQLite file; a PostgreSQL database created beside the one named and dropped at the end). The
large catalogue is loaded here rather than by ``bench.synthetic``: it must work on SQLite too,
go into the seeded catalogue's categories and keep the tallies' triggers on while it loads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.harness import (
    code_version,
    median,
    scratch_database,
    set_up,
    table,
    times,
    write_results,
)
from bookql.catalog import stats
from bookql.catalog.admin import BookChanges, CatalogAdmin
from bookql.catalog.records import BookRecord
from bookql.catalog.snapshot import load_snapshot
from bookql.catalog.store import upsert_books
from bookql.catalog.tables import books, categories
from bookql.catalog.tallies import TallyFilter
from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction, create_async_db_engine

BATCH = 200
ADMIN_UPDATES = 20
TRIGGERS = ("books_tallies_insert", "books_tallies_update", "books_tallies_delete")
SQLITE_TRIGGERS = (
    "books_tallies_insert",
    "books_tallies_delete",
    "books_tallies_move",
    "books_tallies_stock",
)

Timed = Callable[[], Awaitable[None]]


# -- the tallies' upkeep, off ------------------------------------------------------------------


async def drop_upkeep(engine: AsyncEngine) -> None:
    """The database as it would be without the tallies' triggers (their tables stay, stale)."""
    async with async_write_transaction(engine) as conn:
        postgres = conn.dialect.name == "postgresql"
        for name in TRIGGERS if postgres else SQLITE_TRIGGERS:
            await conn.execute(text(f"DROP TRIGGER {name}" + (" ON books" if postgres else "")))


# -- writes -------------------------------------------------------------------------------------


class Writes:
    """Fresh books for every run, so each run does the same work."""

    def __init__(self, engine: AsyncEngine, snapshot: list[BookRecord]) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self.admin = CatalogAdmin(engine)
        self.known: dict[str, int] = {}

    def batch(self) -> list[BookRecord]:
        tag = uuid.uuid4().hex[:10]
        return [replace(r, upc=f"{tag}{i:04d}") for i, r in enumerate(self.snapshot[:BATCH])]

    async def upsert(self, records: list[BookRecord]) -> float:
        start = time.perf_counter()
        async with async_write_transaction(self.engine) as conn:
            await upsert_books(conn, records, self.known)
        return time.perf_counter() - start

    async def round(self) -> dict[str, float]:
        records = self.batch()
        new = await self.upsert(records)
        changed = [
            replace(
                r,
                price_excl_tax_pence=r.price_excl_tax_pence + 7,
                price_incl_tax_pence=r.price_incl_tax_pence + 7,
                availability=r.availability + 1,
            )
            for r in records
        ]
        moved = await self.upsert(changed)
        unchanged = await self.upsert(changed)
        admin = []
        for i, record in enumerate(records[:ADMIN_UPDATES]):
            start = time.perf_counter()
            await self.admin.update_book(
                record.upc, BookChanges(price_excl_tax_pence=record.price_excl_tax_pence + i)
            )
            admin.append(time.perf_counter() - start)
        return {
            "crawl batch: 200 new books": new,
            "crawl batch: 200 new prices and stock": moved,
            "crawl batch: 200 unchanged": unchanged,
            "admin update of a price": median(admin),
        }


async def measure_writes(
    engines: dict[bool, AsyncEngine], rounds: int
) -> dict[str, dict[bool, list[float]]]:
    """Rounds on the database with the tallies and on the one without, alternately."""
    snapshot = load_snapshot()
    writes = {on: Writes(engine, snapshot) for on, engine in engines.items()}
    for each in writes.values():
        await each.round()  # warm up: caches, prepared statements, the categories known
    found: dict[str, dict[bool, list[float]]] = {}
    for index in range(rounds):
        for on in (True, False) if index % 2 == 0 else (False, True):
            for name, seconds in (await writes[on].round()).items():
                found.setdefault(name, {True: [], False: []})[on].append(seconds)
    return found


# -- reads --------------------------------------------------------------------------------------

_PRICE = books.c.price_incl_tax_pence
_LISTED = books.c.removed_at.is_(None)


def _aggregates() -> list[Any]:
    return [
        func.count(books.c.id),
        func.coalesce(func.sum(books.c.availability), 0),
        func.avg(_PRICE),
        func.min(_PRICE),
        func.max(_PRICE),
        func.avg(books.c.rating),
    ]


async def scan_stats(conn: AsyncConnection) -> None:
    """``stats`` as it was before the tallies: aggregates over the books themselves."""
    await conn.execute(select(*_aggregates()).where(_LISTED))
    count = (await conn.execute(select(func.count()).where(_LISTED))).scalar_one()
    await conn.execute(
        select(_PRICE).where(_LISTED).order_by(_PRICE).limit(2).offset((count - 1) // 2)
    )
    await conn.execute(select(books.c.rating, func.count()).where(_LISTED).group_by(books.c.rating))
    bucket = _PRICE // bindparam("width", 1000, type_=Integer)
    await conn.execute(
        select(bucket, func.count()).where(_LISTED).group_by(bucket).order_by(bucket)
    )
    joined = categories.outerjoin(books, (books.c.category_id == categories.c.id) & _LISTED)
    await conn.execute(
        select(categories, *_aggregates())
        .select_from(joined)
        .group_by(*categories.c)
        .order_by(categories.c.name)
    )


async def tally_stats(conn: AsyncConnection) -> None:
    await stats.catalog_figures(conn)
    await stats.median_price_pence(conn)
    await stats.rating_counts(conn)
    await stats.price_histogram(conn, 1000)
    await stats.figures_by_category(conn)


FILTER = {"price_min_pence": 2000, "price_max_pence": 3000, "rating_min": 4}


async def scan_count(conn: AsyncConnection, category_id: int | None) -> None:
    where = [_LISTED, _PRICE >= 2000, _PRICE <= 3000, books.c.rating >= 4]
    if category_id is not None:
        where.append(books.c.category_id == category_id)
    await conn.execute(select(func.count()).select_from(books).where(*where))


async def tally_count(conn: AsyncConnection, category_id: int | None) -> None:
    await TallyFilter(category_id=category_id, **FILTER).count(conn)


async def load_large(engine: AsyncEngine, count: int) -> float:
    """``count`` synthetic books over the categories there are, in one statement."""
    postgres = engine.dialect.name == "postgresql"
    series = (
        "WITH s AS (SELECT g FROM generate_series(1, :n) AS g)"
        if postgres
        else "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n)"
    )
    now = "now()" if postgres else "'2026-12-04 00:00:00.000000'"
    statement = text(
        f"{series}, c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM categories)"  # noqa: S608
        " INSERT INTO books (upc, title, product_type, price_excl_tax_pence,"
        " price_incl_tax_pence, tax_pence, currency, availability, rating, num_reviews,"
        " image_url, product_url, category_id, first_seen_at, last_seen_at)"
        " SELECT 'syn-' || g, 'Synthetic book ' || g, 'Books', 1000 + (g * 7919) % 5003,"
        " 1000 + (g * 7919) % 5003, 0, 'GBP', g % 23, 1 + (g * 37) % 97 % 5, 0, '', '', c.id,"
        f" {now}, {now} FROM s JOIN c ON c.n = g % (SELECT count(*) FROM categories)"
    )
    start = time.perf_counter()
    async with async_write_transaction(engine) as conn:
        if postgres:  # setup, not a request: past the server's statement timeout
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(statement, {"n": count})
        if postgres:
            await conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


async def measure_reads(engine: AsyncEngine, rounds: int) -> dict[str, dict[bool, list[float]]]:
    async with engine.connect() as conn:
        category = (await conn.execute(select(func.min(categories.c.id)))).scalar_one()
    cases: dict[str, tuple[Callable[[AsyncConnection], Awaitable[None]], ...]] = {
        "stats (every figure)": (scan_stats, tally_stats),
        "totalCount: price 20-30, rating >= 4": (
            lambda c: scan_count(c, None),
            lambda c: tally_count(c, None),
        ),
        "totalCount: category, price 20-30, rating >= 4": (
            lambda c: scan_count(c, category),
            lambda c: tally_count(c, category),
        ),
    }
    found: dict[str, dict[bool, list[float]]] = {}
    async with engine.connect() as conn:
        for _ in range(rounds + 1):
            for name, (scan, tally) in cases.items():
                for on, read in ((False, scan), (True, tally)):
                    start = time.perf_counter()
                    await read(conn)
                    found.setdefault(name, {True: [], False: []})[on].append(
                        time.perf_counter() - start
                    )
    for seconds in found.values():  # the first round warms the caches
        for side in seconds.values():
            del side[0]
    return found


# -- databases and the report -------------------------------------------------------------------


def report(
    title: str, found: dict[str, dict[bool, list[float]]], labels: tuple[str, str]
) -> dict[str, dict[str, float]]:
    """p50 in ms without (off) and with (on) the tallies, and the ratio on / off; returned
    for ``bench/results/tallies_write.json``."""
    rows = [["", *labels, "ratio"]]
    figures = {}
    for name, seconds in found.items():
        on, off = (median(seconds[side]) * 1000 for side in (True, False))
        rows.append([name, f"{off:.2f}", f"{on:.2f}", times(on, off)])
        figures[name] = {"off_p50_ms": off, "on_p50_ms": on}
    print(f"\n{title}\n{table(rows)}")
    return figures


def _database(url: str, data_dir: Path) -> AsyncEngine:
    """The scratch database migrated and seeded with the bundled catalogue (the harness's
    ``set_up``), and an engine on it."""
    data_dir.mkdir(exist_ok=True)
    set_up({"BOOKQL_DATABASE_URL": url, "BOOKQL_DATA_DIR": str(data_dir)})
    return create_async_db_engine(
        Settings.model_validate({"database_url": url, "data_dir": data_dir})
    )


async def run(
    urls: dict[bool, str], data_dir: Path, rounds: int, large: int, name: str
) -> dict[str, Any]:
    """Writes on two databases (with and without the tallies), reads on the first."""
    engines = {on: _database(url, data_dir / str(on)) for on, url in urls.items()}
    try:
        await drop_upkeep(engines[False])
        writes = await measure_writes(engines, rounds)
        write_figures = report(f"{name}: writes, p50 ms", writes, ("without", "with tallies"))
        seconds = await load_large(engines[True], large)
        print(f"\n{name}: {large} synthetic books loaded in {seconds:.1f} s (tallies kept)")
        reads = await measure_reads(engines[True], rounds)
        read_figures = report(
            f"{name}: reads over {large + 1000} books, p50 ms", reads, ("scan", "tallies")
        )
    finally:
        for engine in engines.values():
            await engine.dispose()
    return {"backend": name, "large": large, "writes": write_figures, "reads": read_figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BOOKQL_BENCH_DATABASE_URL")
        or os.environ.get("BOOKQL_TEST_DATABASE_URL"),
        help="a PostgreSQL database beside which a scratch one is created",
    )
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    backends: dict[str, str | None] = {}
    if args.only != "postgresql":
        backends["sqlite"] = None
    if args.only != "sqlite" and args.postgres:
        postgres = make_url(args.postgres).set(drivername="postgresql+psycopg")
        backends["postgresql"] = postgres.render_as_string(hide_password=False)
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, base_url in backends.items():
            with (
                scratch_database(base_url, Path(tmp), "bookql_bench_tallies") as with_tallies,
                scratch_database(base_url, Path(tmp), "bookql_bench_tallies") as without,
            ):
                urls = {True: with_tallies, False: without}
                found.append(asyncio.run(run(urls, Path(tmp), args.rounds, args.large, name)))
    write_results(
        "tallies_write", {"code": code_version(), "rounds": args.rounds, "backends": found}
    )


if __name__ == "__main__":
    main()
