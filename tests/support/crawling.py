"""Running real crawls against the offline mirror, and reading what they stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Row, create_engine, select

from bookql.catalog.tables import books, categories, descriptions, price_points
from bookql.crawls.tables import crawl_runs
from bookql.db.urls import parse_database_url, sync_url
from tests.conftest import ScratchDatabase

CRAWLER = Path(__file__).parents[2] / "crawler"
FAST = {
    "AUTOTHROTTLE_ENABLED": "0",
    "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    "LOG_LEVEL": "WARNING",
}


def crawl_env(database: ScratchDatabase) -> dict[str, str]:
    return {
        **os.environ,
        "BOOKQL_DATABASE_URL": database.url,
        "BOOKQL_DATA_DIR": str(database.data_dir),
    }


def crawl_command(base_url: str, **settings: str) -> list[str]:
    """``scrapy crawl books`` as an operator runs it, against the mirror, without delays."""
    flags = [f for name, value in {**FAST, **settings}.items() for f in ("-s", f"{name}={value}")]
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "books",
        "-a",
        f"start_url={base_url}/",
        *flags,
    ]


def run_crawl(
    database: ScratchDatabase, base_url: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        crawl_command(base_url, **settings),
        cwd=CRAWLER,
        env=crawl_env(database),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_crawl(database: ScratchDatabase, base_url: str, **settings: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        crawl_command(base_url, **settings),
        cwd=CRAWLER,
        env=crawl_env(database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


class Stored:
    """What a database holds, read with a plain synchronous engine."""

    def __init__(self, database: ScratchDatabase) -> None:
        self.engine = create_engine(sync_url(parse_database_url(database.url)))

    def close(self) -> None:
        self.engine.dispose()

    def books(self) -> dict[str, Row[Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(books, categories.c.name.label("category"), descriptions.c.description)
                .join(categories)
                .outerjoin(descriptions, descriptions.c.book_id == books.c.id)
            )
            return {row.upc: row for row in rows}

    def price_points(self, upc: str) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(price_points)
                    .join(books, books.c.id == price_points.c.book_id)
                    .where(books.c.upc == upc)
                    .order_by(price_points.c.observed_at, price_points.c.id)
                )
            )

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(table)).all())

    def runs(self) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(crawl_runs).order_by(crawl_runs.c.id)))
