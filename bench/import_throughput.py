"""Books per second of ``bookql import``, beside the crawler's path and a plain ``COPY``.

    python -m bench.import_throughput [--books 1000 50000] [--postgres URL]

For each size, into a fresh migrated database per back end: the import of synthetic books
into an empty catalogue, the same file again (every book unchanged), the crawler's
``upsert_books`` of the same records in its batches of 500 into another empty catalogue, and
on PostgreSQL a plain ``COPY`` of the same rows into an unindexed table without triggers (the
floor). Self-contained: it needs no server and nothing else under bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bookql.catalog.importing import import_catalog, read_lines
from bookql.catalog.records import BookRecord
from bookql.catalog.store import upsert_books
from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction, create_async_db_engine, create_sync_engine
from bookql.db.migrate import upgrade

WORDS = [f"w{index}" for index in range(5000)]  # Zipf-like draws below: a few words are common
CATEGORIES = [f"Category {index}" for index in range(50)]


def synthetic(count: int, seed: int = 7) -> list[BookRecord]:
    chance = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]

    def words(n: int) -> str:
        return " ".join(chance.choices(WORDS, weights, k=n))

    records = []
    for index in range(count):
        price = chance.randint(500, 6000)
        records.append(
            BookRecord(
                upc=f"syn{index:09d}",
                title=words(chance.randint(1, 8)).capitalize(),
                product_type="Books",
                price_excl_tax_pence=price,
                price_incl_tax_pence=price,
                tax_pence=0,
                currency="GBP",
                availability=chance.randint(0, 22),
                rating=chance.randint(1, 5),
                num_reviews=0,
                description=words(chance.randint(20, 120)) if chance.random() > 0.01 else None,
                category=chance.choice(CATEGORIES),
                image_url=f"https://example.invalid/{index}.jpg",
                product_url=f"https://example.invalid/{index}/",
            )
        )
    return records


def as_jsonl(records: list[BookRecord]) -> bytes:
    lines = []
    for r in records:
        lines.append(
            json.dumps(
                {
                    "upc": r.upc,
                    "title": r.title,
                    "price_incl_tax": r.price_incl_tax_pence / 100,
                    "availability_count": r.availability,
                    "rating": r.rating,
                    "description": r.description,
                    "category": r.category,
                    "image_url": r.image_url,
                    "product_url": r.product_url,
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def scratch(backend: str, postgres: str | None, directory: Path) -> Iterator[Settings]:
    if backend == "sqlite":
        url = f"sqlite:///{directory / f'{uuid.uuid4().hex}.db'}"
        yield Settings.model_validate({"database_url": url, "data_dir": directory})
        return
    assert postgres is not None
    base = make_url(postgres).set(drivername="postgresql+psycopg")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"bookql_bench_import_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        yield Settings.model_validate({"database_url": url, "data_dir": directory})
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(backend: str, count: int, postgres: str | None, directory: Path) -> dict[str, float]:
    records = synthetic(count)
    data = as_jsonl(records)
    rates: dict[str, float] = {}
    with scratch(backend, postgres, directory) as settings:
        engine = create_sync_engine(settings)
        upgrade(engine)

        def load() -> None:
            import_catalog(engine, read_lines(io.BytesIO(data)))

        rates["import (new)"] = count / timed(load)
        rates["import (unchanged)"] = count / timed(load)
        if backend == "postgresql":
            rates["plain COPY"] = count / timed(lambda: plain_copy(engine, records))
        engine.dispose()
    with scratch(backend, postgres, directory) as settings:
        engine = create_sync_engine(settings)
        upgrade(engine)
        engine.dispose()
        rates["upsert_books (new)"] = count / timed(lambda: asyncio.run(crawl(settings, records)))
    return rates


def plain_copy(engine: object, records: list[BookRecord]) -> None:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TEMP TABLE plain (upc text, title text, price integer,"
                " availability integer, rating integer, description text, category text,"
                " image_url text, product_url text) ON COMMIT DROP"
            )
        )
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy("COPY plain FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    (
                        r.upc,
                        r.title,
                        r.price_incl_tax_pence,
                        r.availability,
                        r.rating,
                        r.description,
                        r.category,
                        r.image_url,
                        r.product_url,
                    )
                )


async def crawl(settings: Settings, records: list[BookRecord]) -> None:
    engine = create_async_db_engine(settings)
    known: dict[str, int] = {}
    for start in range(0, len(records), 500):
        async with async_write_transaction(engine) as conn:
            await upsert_books(conn, records[start : start + 500], known)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, nargs="+", default=[1000, 50_000])
    parser.add_argument("--postgres", help="a PostgreSQL URL to create scratch databases beside")
    arguments = parser.parse_args()
    backends = ["sqlite", *(["postgresql"] if arguments.postgres else [])]
    with tempfile.TemporaryDirectory(prefix="bookql-import-bench-") as directory:
        print(f"{'backend':<11} {'books':>7}  {'path':<20} {'books/s':>9}")
        for backend in backends:
            for count in arguments.books:
                for path, rate in run(backend, count, arguments.postgres, Path(directory)).items():
                    print(f"{backend:<11} {count:>7}  {path:<20} {rate:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
