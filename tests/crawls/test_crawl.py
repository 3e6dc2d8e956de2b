"""Offline crawls of the whole mirror into both databases: complete, idempotent, repairable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bookql.catalog.tables import descriptions, price_points
from bookql.db.engine import create_sync_engine
from bookql.db.migrate import upgrade
from tests.conftest import PostgresDatabases, ScratchDatabase
from tests.support.crawling import CRAWLER, FAST, Stored, run_crawl, start_crawl
from tests.support.live import live_server
from tests.support.mirror import Mirror, MirrorSite, serve_mirror
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # real Scrapy crawls of the whole mirror

LIGHT = "a897fe39b1053632"  # A Light in the Attic, page 1
SHARP = "e00eb4fd7b871a48"  # Sharp Objects
VELVET = "90fa61229261140a"  # Tipping the Velvet


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    site = MirrorSite()
    with serve_mirror(site) as base_url:
        yield Mirror(site, base_url)


@pytest.fixture
def stored(empty_db: ScratchDatabase) -> Iterator[Stored]:
    reader = Stored(empty_db)
    yield reader
    reader.close()


def on_mirror(mirror: Mirror, site_url: str) -> str:
    return mirror.url(site_url.removeprefix("https://books.toscrape.com/"))


def pence(amount: float) -> int:
    return int(Decimal(str(amount)) * 100)


def test_a_full_crawl_stores_the_catalog_field_for_field(
    empty_db: ScratchDatabase, mirror: Mirror, stored: Stored
) -> None:
    run_crawl(empty_db, mirror.base_url)
    found = stored.books()
    truth = snapshot_books()
    assert len(found) == len(truth) == 1000
    for book in truth:
        row = found[book["upc"]]
        assert row.title == book["title"]
        assert row.product_type == book["product_type"]
        assert row.price_excl_tax_pence == pence(book["price_excl_tax"])
        assert row.price_incl_tax_pence == pence(book["price_incl_tax"])
        assert row.tax_pence == pence(book["tax"])
        assert row.currency == book["currency"]
        assert row.availability == book["availability_count"]
        assert row.rating == book["rating"]
        assert row.num_reviews == book["num_reviews"]
        assert row.description == book["description"]
        assert row.category == book["category"]
        assert row.image_url == on_mirror(mirror, book["image_url"])
        assert row.product_url == on_mirror(mirror, book["product_url"])
        assert row.removed_at is None
    assert stored.count(descriptions) == 998
    assert stored.count(price_points) == 1000
    [run] = stored.runs()
    assert (run.status, run.complete, run.active_slot) == ("SUCCEEDED", True, None)
    assert (run.pages, run.items, run.new_books, run.updated_books, run.unchanged_books) == (
        1050,
        1000,
        1000,
        0,
        0,
    )
    assert (run.dropped, run.errors, run.removed_books, run.message) == (0, 0, 0, None)
    assert mirror.site.hits("/robots.txt") == 1  # asked politely first


def test_recrawls_change_only_what_changed(
    empty_db: ScratchDatabase, mirror: Mirror, stored: Stored
) -> None:
    run_crawl(empty_db, mirror.base_url)
    first_seen = {upc: row.last_seen_at for upc, row in stored.books().items()}
    versions = {upc: row.version for upc, row in stored.books().items()}
    run_crawl(empty_db, mirror.base_url)
    again = stored.books()
    assert {upc: row.version for upc, row in again.items()} == versions  # nothing changed
    assert len(again) == 1000
    assert stored.count(price_points) == 1000
    assert all(again[upc].last_seen_at > seen for upc, seen in first_seen.items())
    assert all(again[upc].first_seen_at == row.first_seen_at for upc, row in again.items())
    second = stored.runs()[-1]
    assert (second.new_books, second.updated_books, second.unchanged_books) == (0, 0, 1000)

    mirror.site.set_price(LIGHT, "12.34")
    mirror.site.set_availability(SHARP, 3)
    mirror.site.remove_book(VELVET)
    run_crawl(empty_db, mirror.base_url)
    third = stored.runs()[-1]
    assert (third.status, third.complete) == ("SUCCEEDED", True)
    assert (third.new_books, third.updated_books, third.unchanged_books) == (0, 2, 997)
    assert third.removed_books == 1
    history = stored.price_points(LIGHT)
    assert [p.price_incl_tax_pence for p in history] == [5177, 1234]
    assert [p.availability for p in stored.price_points(SHARP)] == [20, 3]
    final = stored.books()
    assert final[VELVET].removed_at is not None
    assert stored.count(price_points) == 1002
    moved = {upc for upc, row in final.items() if row.version != versions[upc]}
    assert moved == {LIGHT, SHARP, VELVET}
    assert all(final[upc].version == versions[upc] + 1 for upc in moved)

    mirror.site.reset()  # the book comes back, as it was
    run_crawl(empty_db, mirror.base_url)
    back = stored.books()
    assert back[VELVET].removed_at is None
    assert back[LIGHT].price_incl_tax_pence == 5177
    assert stored.runs()[-1].updated_books == 3


def test_faults_leave_an_honest_incomplete_run_that_the_next_crawl_repairs(
    empty_db: ScratchDatabase, mirror: Mirror, stored: Stored
) -> None:
    by_upc = {book["upc"]: book for book in snapshot_books()}
    missing = "/" + by_upc[LIGHT]["product_url"].removeprefix("https://books.toscrape.com/")
    broken = "/" + by_upc[SHARP]["product_url"].removeprefix("https://books.toscrape.com/")
    truncated = "/" + by_upc[VELVET]["product_url"].removeprefix("https://books.toscrape.com/")
    priceless = "ce6396b0f23f6ecc"  # Set Me Free
    mirror.site.fail(missing, 404)
    mirror.site.fail(broken, 500)
    mirror.site.truncate(truncated)
    mirror.site.drop_price(priceless)
    run_crawl(empty_db, mirror.base_url)

    [run] = stored.runs()
    assert (run.status, run.complete) == ("PARTIAL", False)
    assert (run.items, run.new_books, run.dropped, run.errors) == (996, 996, 2, 2)
    assert run.removed_books == 0
    assert "2 pages could not be fetched" in run.message
    assert "missing_price" in run.message
    assert "removals not applied" in run.message
    assert mirror.site.hits(broken) == 3  # tried, retried twice, given up
    assert mirror.site.hits(missing) == 1  # a 404 is not retried
    found = stored.books()
    assert {LIGHT, SHARP, VELVET, priceless}.isdisjoint(found)
    # nothing half-written: every stored book has its price point and description
    assert stored.count(price_points) == 996
    assert stored.count(descriptions) == sum(1 for b in found.values() if b.description)

    mirror.site.reset()
    run_crawl(empty_db, mirror.base_url)
    repaired = stored.runs()[-1]
    assert (repaired.status, repaired.complete, repaired.new_books) == ("SUCCEEDED", True, 4)
    assert len(stored.books()) == 1000


def test_a_failed_listing_page_stops_removals(
    empty_db: ScratchDatabase, mirror: Mirror, stored: Stored
) -> None:
    run_crawl(empty_db, mirror.base_url)
    mirror.site.fail("/catalogue/page-50.html", 503)
    run_crawl(empty_db, mirror.base_url)
    run = stored.runs()[-1]
    assert (run.status, run.complete, run.removed_books) == ("PARTIAL", False, 0)
    assert run.unchanged_books == 980
    assert "the listing was not walked to its last page" in run.message
    assert all(book.removed_at is None for book in stored.books().values())


def test_one_crawl_at_a_time(empty_db: ScratchDatabase, mirror: Mirror, stored: Stored) -> None:
    import asyncio

    from bookql.crawls.runs import create_run
    from bookql.crawls.tables import CrawlStatus
    from bookql.db.engine import create_async_db_engine

    async def occupy() -> None:
        engine = create_async_db_engine(empty_db.settings())
        await create_run(engine, "http://elsewhere/", status=CrawlStatus.QUEUED)
        await engine.dispose()

    asyncio.run(occupy())
    result = run_crawl(empty_db, mirror.base_url)
    assert "another crawl is queued or running" in result.stderr
    assert len(stored.runs()) == 1
    assert stored.books() == {}


def test_the_database_going_away_mid_crawl(
    postgres: PostgresDatabases, mirror: Mirror, tmp_path: Path
) -> None:
    """PostgreSQL refuses connections mid-crawl: batches stay whole, the next crawl repairs."""
    database = ScratchDatabase("postgresql", postgres.create(), tmp_path)
    engine = create_sync_engine(database.settings())
    upgrade(engine)
    engine.dispose()
    name = make_url(database.url).database
    stored = Stored(database)
    crawler = start_crawl(
        database, mirror.base_url, BOOKQL_BATCH_SIZE="50", CONCURRENT_REQUESTS="2"
    )
    try:
        deadline = time.monotonic() + 60
        while not stored.runs() or stored.runs()[0].items < 100:
            assert crawler.poll() is None and time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        stored.engine.dispose()
        with postgres.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": name},
            )
        _, errors = crawler.communicate(timeout=120)
    finally:
        with postgres.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        if crawler.poll() is None:
            crawler.kill()
    assert errors.count("could not store") >= 3  # retried, then the spider gave up
    assert "could not record the end of crawl run" in errors
    books_after_failure = stored.books()
    assert len(books_after_failure) % 50 == 0  # whole batches only: nothing half-written
    assert 100 <= len(books_after_failure) < 1000
    assert stored.count(price_points) == len(books_after_failure)
    [broken] = stored.runs()
    assert broken.status == "RUNNING"  # the crawler could not even record its end...

    run_crawl(database, mirror.base_url)  # ...so the next crawl notices, then repairs
    first, second = stored.runs()
    assert first.status == "FAILED"
    assert "without finishing" in first.message
    assert (second.status, second.complete) == ("SUCCEEDED", True)
    assert second.new_books == 1000 - len(books_after_failure)
    assert len(stored.books()) == 1000
    stored.close()


def test_a_crawl_and_the_server_share_the_default_database(mirror: Mirror, tmp_path: Path) -> None:
    """No database URL anywhere: both find ``bookql.db`` in the data directory."""
    env = {**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}
    env.pop("BOOKQL_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "bookql", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    flags = [arg for name, value in FAST.items() for arg in ("-s", f"{name}={value}")]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "books",
            "-a",
            f"start_url={mirror.base_url}/",
            *flags,
        ],
        cwd=CRAWLER,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with live_server(env) as url:
        body = httpx.post(
            f"{url}/graphql",
            json={"query": '{ book(upc: "a897fe39b1053632") { productUrl } books { totalCount } }'},
        ).json()
    assert body["data"]["books"]["totalCount"] == 1000
    assert body["data"]["book"]["productUrl"].startswith(mirror.base_url)  # crawled, not seeded
