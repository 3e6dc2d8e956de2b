"""Row versions of books and categories on both databases: moved by the database on every
change of content whoever writes it, left alone by writes that change nothing, and sent back
by clients so that a stale edit is CONFLICT and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.catalog.records import BookRecord
from bookql.catalog.seed import seed_catalog
from bookql.catalog.store import upsert_books
from bookql.catalog.tables import books, categories, descriptions
from bookql.db.engine import async_write_transaction, create_async_db_engine
from bookql.db.types import UTCDateTime
from tests.catalog.test_catalog_admin import (
    CREATE_CATEGORY,
    DELETE_BOOK,
    UPDATE_BOOK,
    UPDATE_CATEGORY,
    create,
)
from tests.conftest import ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

# A re-crawl's sighting is no edit, nor is a change of owner (crawl or import).
NOT_CONTENT = {"id", "last_seen_at", "version", "source"}
VERSIONED_BOOK = "id version title price priceHistory { price } description removedAt"
UPDATE = f"""mutation($input: UpdateBookInput!) {{
    updateBook(input: $input) {{ book {{ {VERSIONED_BOOK} }} }} }}"""
DELETE = f"""mutation($input: DeleteBookInput!) {{
    deleteBook(input: $input) {{ book {{ {VERSIONED_BOOK} }} }} }}"""
READ = f"query($upc: String!) {{ book(upc: $upc) {{ {VERSIONED_BOOK} }} }}"
CATEGORY = """mutation($input: UpdateCategoryInput!) {
    updateCategory(input: $input) { category { id name slug version } } }"""
READ_CATEGORY = "query($slug: String!) { category(slug: $slug) { id name slug version } }"


@pytest.fixture
async def engine(empty_db: ScratchDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_async_db_engine(empty_db.settings())
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db, seeded=False) as client:
        for name in ("Poetry", "Travel"):
            await client.admin(CREATE_CATEGORY, {"input": {"name": name}})
        yield client


async def _version(conn: AsyncConnection, table: Any, row_id: int) -> int:
    found = await conn.execute(select(table.c.version).where(table.c.id == row_id))
    return int(found.scalar_one())


def _other_value(column: Any, row: Any, other_category: int) -> Any:
    """A different valid value for ``column`` (by name where the type does not say enough)."""
    value = getattr(row, column.name)
    if column.name == "rating":
        return 1 + value % 5
    special = {"currency": "EUR", "category_id": other_category}
    if column.name in special:
        return special[column.name]
    if isinstance(column.type, Integer):
        return value + 1
    if isinstance(column.type, UTCDateTime):
        return (value or row.last_seen_at) - timedelta(days=1)
    if isinstance(column.type, String | Text):
        return f"{value}-x"
    raise AssertionError(f"no test value for books.{column.name}: add one here")


async def test_every_content_column_moves_the_version(engine: AsyncEngine) -> None:
    """Any UPDATE, by any path, moves it: the triggers cover every column of the table."""
    record = catalog_record(snapshot_books()[0], description=None)
    async with async_write_transaction(engine) as conn:
        await upsert_books(conn, [record])
        other = categories.insert().values(name="Other", slug="other").returning(categories.c.id)
        other_id = (await conn.execute(other)).scalar_one()
    async with engine.connect() as conn:
        row = (await conn.execute(select(books))).one()
    version = row.version
    for column in books.c:
        if column.name in NOT_CONTENT:
            continue
        async with async_write_transaction(engine) as conn:
            value = _other_value(column, row, other_id)
            await conn.execute(update(books).where(books.c.id == row.id).values({column: value}))
            assert await _version(conn, books, row.id) == version + 1, column.name
            row = (await conn.execute(select(books))).one()
            version = row.version
    async with async_write_transaction(engine) as conn:  # the same values: nothing changes
        same = {column.name: getattr(row, column.name) for column in books.c if column.name != "id"}
        await conn.execute(update(books).where(books.c.id == row.id).values(**same))
        seen = row.last_seen_at + timedelta(hours=1)
        await conn.execute(update(books).where(books.c.id == row.id).values(last_seen_at=seen))
        assert await _version(conn, books, row.id) == version
        # the description is the book's content too
        for statement in (
            descriptions.insert().values(book_id=row.id, description="one"),
            update(descriptions).values(description="two"),
            descriptions.delete(),
        ):
            await conn.execute(statement)
            version += 1
            assert await _version(conn, books, row.id) == version, statement
        await conn.execute(descriptions.insert().values(book_id=row.id, description="three"))
        await conn.execute(update(descriptions).values(description="three"))
        assert await _version(conn, books, row.id) == version + 1
        for name, slug in (("Renamed", "other"), ("Renamed", "renamed"), ("Renamed", "renamed")):
            await conn.execute(
                update(categories).where(categories.c.id == other_id).values(name=name, slug=slug)
            )
        assert await _version(conn, categories, other_id) == 3


def catalog_record(book: dict[str, Any], **changes: Any) -> BookRecord:
    def pence(amount: float) -> int:
        return round(amount * 100)

    values: dict[str, Any] = {
        "upc": book["upc"],
        "title": book["title"],
        "product_type": book["product_type"],
        "price_excl_tax_pence": pence(book["price_excl_tax"]),
        "price_incl_tax_pence": pence(book["price_incl_tax"]),
        "tax_pence": pence(book["tax"]),
        "currency": book["currency"],
        "availability": book["availability_count"],
        "rating": book["rating"],
        "num_reviews": book["num_reviews"],
        "description": book["description"],
        "category": book["category"],
        "image_url": book["image_url"],
        "product_url": book["product_url"],
    }
    return BookRecord(**(values | changes))


async def _versions(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(select(books.c.upc, books.c.version))).all())


async def test_crawl_upserts_move_only_changed_books(engine: AsyncEngine) -> None:
    """The crawler's write (``upsert_books``): a re-crawl that finds nothing new moves nothing."""
    snapshot = snapshot_books()[:5]
    async with async_write_transaction(engine) as conn:
        await upsert_books(conn, [catalog_record(book) for book in snapshot])
    first = await _versions(engine)
    async with async_write_transaction(engine) as conn:
        counts = await upsert_books(conn, [catalog_record(book) for book in snapshot])
    assert (counts.updated, counts.unchanged) == (0, 5)
    assert await _versions(engine) == first
    priced, described, untouched = snapshot[0]["upc"], snapshot[1]["upc"], snapshot[2]["upc"]
    records = [
        catalog_record(snapshot[0], price_excl_tax_pence=1, price_incl_tax_pence=1, tax_pence=0),
        catalog_record(snapshot[1], description="A new blurb."),
        *[catalog_record(book) for book in snapshot[2:]],
    ]
    async with async_write_transaction(engine) as conn:
        await upsert_books(conn, records)
    moved = await _versions(engine)
    assert moved[priced] == first[priced] + 1
    assert moved[described] == first[described] + 1
    assert moved[untouched] == first[untouched]


@pytest.mark.slow
async def test_seed_never_moves_a_stored_book(engine: AsyncEngine) -> None:
    """Seeding inserts only: a book changed since keeps its content and its version."""
    await seed_catalog(engine)
    seeded = await _versions(engine)
    assert set(seeded.values()) <= {1, 2}  # 2: the description's insert is a change too
    upc = snapshot_books()[0]["upc"]
    async with async_write_transaction(engine) as conn:
        await conn.execute(update(books).where(books.c.upc == upc).values(title="Changed"))
    changed = await _versions(engine)
    assert changed[upc] == seeded[upc] + 1
    assert (await seed_catalog(engine)).inserted == 0
    assert await _versions(engine) == changed


async def _book(client: AdminClient, upc: str = "test-0001") -> dict[str, Any]:
    book: dict[str, Any] = (await client.data(READ, {"upc": upc}))["book"]
    return book


async def test_admin_writes_move_the_version(client: AdminClient) -> None:
    made = await create(client)
    book = await _book(client)
    assert book["version"] == 1
    steps: list[tuple[dict[str, Any], int]] = [
        ({"priceExclTax": 20.0}, 2),
        ({"description": "Words."}, 3),
        ({"title": "Retitled", "rating": 2}, 4),  # one edit, one step
        ({"title": "Retitled"}, 4),  # changes nothing
        ({}, 4),
        ({"description": "Words."}, 4),
        ({"description": None}, 5),
    ]
    for changes, expected in steps:
        data = await client.admin(UPDATE, {"input": {"id": made["id"], **changes}})
        assert data["updateBook"]["book"]["version"] == expected, changes
    deleted = await client.admin(DELETE, {"input": {"id": made["id"]}})
    assert deleted["deleteBook"]["book"]["version"] == 6
    again = await client.admin(DELETE, {"input": {"id": made["id"], "version": 6}})
    assert again["deleteBook"]["book"]["version"] == 6  # already removed: nothing changed
    assert (await _book(client))["version"] == 6
    poetry = (await client.data(READ_CATEGORY, {"slug": "poetry"}))["category"]
    assert poetry["version"] == 1
    for change, expected in [({"name": "Verse"}, 2), ({"name": "Verse"}, 2), ({"slug": "v"}, 3)]:
        data = await client.admin(CATEGORY, {"input": {"id": poetry["id"], **change}})
        assert data["updateCategory"]["category"]["version"] == expected, change
    listed = await client.data("{ categories { slug version } }")
    assert listed["categories"] == [{"slug": "travel", "version": 1}, {"slug": "v", "version": 3}]


async def test_a_stale_version_is_a_conflict_and_changes_nothing(client: AdminClient) -> None:
    made = await create(client)
    current = await client.admin(UPDATE, {"input": {"id": made["id"], "version": 1, "tax": 1.0}})
    assert current["updateBook"]["book"]["version"] == 2
    before = await _book(client)
    stale: list[tuple[str, dict[str, Any]]] = [
        (UPDATE, {"input": {"id": made["id"], "version": 1, "priceExclTax": 99.0}}),
        (UPDATE, {"input": {"id": made["id"], "version": 1, "description": "Lost words."}}),
        (UPDATE, {"input": {"id": made["id"], "version": 3}}),  # from the future: stale too
        (DELETE, {"input": {"id": made["id"], "version": 1}}),
        (UPDATE_BOOK, {"input": {"id": made["id"], "version": 1, "description": None}}),
        (DELETE_BOOK, {"id": made["id"]}),  # no version: the delete below goes through
    ]
    for mutation, variables in stale[:-1]:
        body = await client.execute(mutation, variables, token=client.admin_token)
        assert error_codes(body) == ["CONFLICT"], variables
        assert body["errors"][0]["extensions"] == {
            "code": "CONFLICT",
            "field": "version",
            "currentVersion": 2,
        }
        assert body["data"] is None
        assert await _book(client) == before  # no price point, no description, not removed
    poetry = (await client.data(READ_CATEGORY, {"slug": "poetry"}))["category"]
    body = await client.execute(
        UPDATE_CATEGORY,
        {"input": {"id": poetry["id"], "name": "Verse", "version": 7}},
        token=client.admin_token,
    )
    assert error_codes(body) == ["CONFLICT"]
    assert (await client.data(READ_CATEGORY, {"slug": "poetry"}))["category"] == poetry
    fresh = {"id": poetry["id"], "name": "V", "version": 1}
    renamed = await client.admin(CATEGORY, {"input": fresh})
    assert renamed["updateCategory"]["category"]["version"] == 2
    removed = await client.admin(DELETE, {"input": {"id": made["id"], "version": 2}})
    assert removed["deleteBook"]["book"]["removedAt"] is not None
