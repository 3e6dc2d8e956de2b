"""Books per second of ``bookql import``, beside the crawler's path and a plain ``COPY``.

    python -m bench.import_throughput [--books 1000 50000] [--postgres URL]

For each size, into a fresh migrated database per back end: the import of synthetic books
into an empty catalogue, the same file again (every book unchanged), the crawler's
``upsert_books`` of the same records in its batches of 500 into another empty catalogue, and
on PostgreSQL a plain ``COPY`` of the same rows into an unindexed table without triggers (the
floor). Needs no server; scratch databases and timing come from ``bench.harness``. The
records are made here: the import and the crawler's path read ``BookRecord`` objects, which
``bench.synthetic`` (rows inserted by SQL, PostgreSQL only) does not make.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.harness import scratch_database, set_up, table, timed
from bookql.catalog.importing import import_catalog, read_lines
from bookql.catalog.records import BookRecord
from bookql.catalog.store import upsert_books
from bookql.core.config import Settings
from bookql.db.engine import async_write_transaction, create_async_db_engine, create_sync_engine

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
def scratch(postgres: str | None, directory: Path) -> Iterator[Settings]:
    """A migrated scratch database (the harness's), as the settings ``bookql`` reads."""
    with scratch_database(postgres, directory, "bookql_bench_import") as url:
        set_up({"BOOKQL_DATABASE_URL": url, "BOOKQL_DATA_DIR": str(directory)}, seed=False)
        yield Settings.model_validate({"database_url": url, "data_dir": directory})


def run(count: int, postgres: str | None, directory: Path) -> dict[str, float]:
    """Books per second of each path into SQLite, or with ``postgres`` into PostgreSQL."""
    records = synthetic(count)
    data = as_jsonl(records)
    rates: dict[str, float] = {}
    with scratch(postgres, directory) as settings:
        engine = create_sync_engine(settings)

        def load() -> None:
            import_catalog(engine, read_lines(io.BytesIO(data)))

        new, unchanged = timed(load, 2)  # the second run finds every book unchanged
        rates["import (new)"] = count / new
        rates["import (unchanged)"] = count / unchanged
        if postgres is not None:
            rates["plain COPY"] = count / timed(lambda: plain_copy(engine, records), 1)[0]
        engine.dispose()
    with scratch(postgres, directory) as settings:
        (seconds,) = timed(lambda: asyncio.run(crawl(settings, records)), 1)
        rates["upsert_books (new)"] = count / seconds
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
    backends: dict[str, str | None] = {"sqlite": None}
    if arguments.postgres:
        postgres = make_url(arguments.postgres).set(drivername="postgresql+psycopg")
        backends["postgresql"] = postgres.render_as_string(hide_password=False)
    rows = [["backend", "books", "path", "books/s"]]
    with tempfile.TemporaryDirectory(prefix="bookql-import-bench-") as directory:
        for backend, base_url in backends.items():
            for count in arguments.books:
                for path, rate in run(count, base_url, Path(directory)).items():
                    rows.append([backend, str(count), path, f"{rate:.0f}"])
    print(table(rows))


if __name__ == "__main__":
    main()
