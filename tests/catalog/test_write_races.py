"""Concurrent administrators' writes on both databases: no lost update, history in step.

Each trial starts two (or more) ``updateBook`` calls at once through the app, one setting
``priceExclTax`` and the other ``tax``: both must land, the shown price must be their sum,
and the newest price point must be the book as it ended up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Table, select

from bookql.catalog.admin import BookChanges, CatalogAdmin
from bookql.catalog.store import upsert_books
from bookql.catalog.tables import books, price_points
from bookql.db.engine import async_write_transaction, create_async_db_engine
from tests.catalog.test_catalog_admin import CREATE_CATEGORY, UPDATE_BOOK, UPDATE_CATEGORY, create
from tests.conftest import ScratchDatabase, error_codes
from tests.db.test_row_versions import catalog_record
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

TRIALS = 12
PRICED = "priceExclTax priceInclTax tax availability"
READ_BOOK = f"""query($upc: String!) {{ book(upc: $upc) {{ {PRICED}
    priceHistory(first: 1) {{ {PRICED} }} }} }}"""
READ_VERSIONS = """query($upc: String!) { book(upc: $upc) { title version }
    category(slug: "poetry") { name version } }"""


def priced(table: Table) -> list[Any]:
    """The price and stock columns that ``books`` and ``price_points`` share."""
    names = ("price_excl_tax_pence", "price_incl_tax_pence", "tax_pence", "availability")
    return [table.c[name] for name in names]


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db, seeded=False) as client:
        await client.admin(CREATE_CATEGORY, {"input": {"name": "Poetry"}})
        yield client


async def _update(client: AdminClient, book_id: str, **changes: Any) -> dict[str, Any]:
    body = await client.execute(
        UPDATE_BOOK, {"input": {"id": book_id, **changes}}, token=client.admin_token
    )
    assert "errors" not in body, body["errors"]
    return body


@pytest.mark.slow
async def test_concurrent_price_and_tax_updates_lose_nothing(client: AdminClient) -> None:
    broken = []
    for trial in range(TRIALS):
        upc = f"race-{trial}"
        book = await create(client, upc=upc, priceExclTax=10.0, tax=0.0)
        excl, tax = 20.0 + trial, 1.0 + trial / 100
        await asyncio.gather(
            _update(client, book["id"], priceExclTax=excl),
            _update(client, book["id"], tax=tax),
            _update(client, book["id"], availability=trial + 5),
        )
        found = (await client.data(READ_BOOK, {"upc": upc}))["book"]
        newest = found.pop("priceHistory")[0]
        expected = {
            "priceExclTax": excl,
            "priceInclTax": round(excl + tax, 2),
            "tax": tax,
            "availability": trial + 5,
        }
        if found != expected or newest != found:
            broken.append((trial, found, newest))
    assert broken == [], f"{len(broken)} of {TRIALS} trials broken: {broken[:2]}"


async def test_concurrent_edits_from_one_version_let_exactly_one_through(
    client: AdminClient,
) -> None:
    """Editors who read the same version: one edit lands, the others are CONFLICT."""
    book = await create(client, upc="edited")
    poetry = (await client.data('{ category(slug: "poetry") { id } }'))["category"]["id"]
    for trial in range(3):
        before = await client.data(READ_VERSIONS, {"upc": "edited"})
        book_edits = [
            {"id": book["id"], "version": before["book"]["version"], "title": f"T{trial}.{n}"}
            for n in range(4)
        ]
        category_edits = [
            {"id": poetry, "version": before["category"]["version"], "name": f"P{trial}.{n}"}
            for n in range(4)
        ]
        bodies = await asyncio.gather(
            *[
                client.execute(UPDATE_BOOK, {"input": edit}, token=client.admin_token)
                for edit in book_edits
            ],
            *[
                client.execute(UPDATE_CATEGORY, {"input": edit}, token=client.admin_token)
                for edit in category_edits
            ],
        )
        assert sorted(error_codes(body) for body in bodies) == [[]] * 2 + [["CONFLICT"]] * 6
        titles = [b["data"]["updateBook"]["book"]["title"] for b in bodies[:4] if b["data"]]
        names = [b["data"]["updateCategory"]["category"]["name"] for b in bodies[4:] if b["data"]]
        after = await client.data(READ_VERSIONS, {"upc": "edited"})
        assert after == {
            "book": {"title": titles[0], "version": before["book"]["version"] + 1},
            "category": {"name": names[0], "version": before["category"]["version"] + 1},
        }


async def test_a_crawl_batch_and_an_admin_edit_keep_the_history_in_step(
    empty_db: ScratchDatabase,
) -> None:
    """The crawler stores the site's price while an administrator changes it: whichever
    writes last, the newest price point is the book's price (the crawl's batch reads the
    stored rows it compares with locked)."""
    engine = create_async_db_engine(empty_db.settings())
    admin = CatalogAdmin(engine)
    book = snapshot_books()[0]
    record = catalog_record(book)

    async def crawl() -> None:
        async with async_write_transaction(engine) as conn:
            await upsert_books(conn, [record])  # the site still shows the old price

    async def edit(pence: int) -> None:
        await admin.update_book(book["upc"], BookChanges(price_excl_tax_pence=pence))

    broken = []
    try:
        await crawl()
        for trial in range(TRIALS):
            await asyncio.gather(crawl(), edit(record.price_excl_tax_pence + 100 + trial))
            async with engine.connect() as conn:
                stored = (await conn.execute(select(*priced(books)))).one()
                newest = (
                    await conn.execute(
                        select(*priced(price_points))
                        .order_by(price_points.c.observed_at.desc(), price_points.c.id.desc())
                        .limit(1)
                    )
                ).one()
            if tuple(stored) != tuple(newest):
                broken.append((trial, tuple(stored), tuple(newest)))
    finally:
        await engine.dispose()
    assert broken == [], f"{len(broken)} of {TRIALS} trials broken: {broken[:2]}"
