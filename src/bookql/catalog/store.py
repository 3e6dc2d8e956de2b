"""Writing the catalogue: categories by name, books by UPC, in batches, idempotently.

``insert_missing_books`` (the seed) never touches a stored book; ``upsert_books`` (a crawl)
refreshes what it saw and records price changes, reading the stored rows it compares with
locked (``FOR UPDATE`` on PostgreSQL, the ``IMMEDIATE`` write transaction on SQLite) and
taking its time after the lock, so an administrator's edit in between is neither missed in
the counts nor left newer in the price history than the book.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.records import BookRecord
from bookql.catalog.slugs import slugify
from bookql.catalog.tables import CRAWL, books, categories, descriptions, price_points
from bookql.db.types import utcnow
from bookql.db.upsert import insert_for

BATCH_SIZE = 500


async def ensure_categories(conn: AsyncConnection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named categories, creating the missing ones (safe under concurrency)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = [{"name": name, "slug": slugify(name)} for name in wanted]
    await conn.execute(insert_for(conn, categories).values(rows).on_conflict_do_nothing())
    result = await conn.execute(
        select(categories.c.name, categories.c.id).where(categories.c.name.in_(wanted))
    )
    found: dict[str, int] = {row[0]: row[1] for row in result}
    missing = set(wanted) - found.keys()
    if missing:
        # A different name with the same slug exists: "Self-Help" vs "Self Help".
        raise ValueError(f"category names clash with existing slugs: {sorted(missing)}")
    return found


def _book_values(record: BookRecord, category_id: int, now: datetime) -> dict[str, Any]:
    return {
        "upc": record.upc,
        "title": record.title,
        "product_type": record.product_type,
        "price_excl_tax_pence": record.price_excl_tax_pence,
        "price_incl_tax_pence": record.price_incl_tax_pence,
        "tax_pence": record.tax_pence,
        "currency": record.currency,
        "availability": record.availability,
        "rating": record.rating,
        "num_reviews": record.num_reviews,
        "image_url": record.image_url,
        "product_url": record.product_url,
        "category_id": category_id,
        "first_seen_at": now,
        "last_seen_at": now,
        "source": CRAWL,  # the snapshot is the crawled site: seeded books are the crawler's too
    }


def _price_points(
    books_seen: Iterable[tuple[int, BookRecord]], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "book_id": book_id,
            "observed_at": now,
            "price_excl_tax_pence": record.price_excl_tax_pence,
            "price_incl_tax_pence": record.price_incl_tax_pence,
            "tax_pence": record.tax_pence,
            "availability": record.availability,
        }
        for book_id, record in books_seen
    ]


async def insert_missing_books(
    conn: AsyncConnection, records: Sequence[BookRecord], now: datetime
) -> int:
    """Insert the books whose UPC is not stored yet, with description and first price point.

    Books already stored are left exactly as they are; returns how many were inserted.
    """
    category_ids = await ensure_categories(conn, (record.category for record in records))
    inserted = 0
    for start in range(0, len(records), BATCH_SIZE):
        batch = {record.upc: record for record in records[start : start + BATCH_SIZE]}
        values = [_book_values(r, category_ids[r.category], now) for r in batch.values()]
        statement = (
            insert_for(conn, books)
            .values(values)
            .on_conflict_do_nothing(index_elements=["upc"])
            .returning(books.c.id, books.c.upc)
        )
        new_ids = {upc: book_id for book_id, upc in await conn.execute(statement)}
        if not new_ids:
            continue
        inserted += len(new_ids)
        texts = [
            {"book_id": book_id, "description": batch[upc].description}
            for upc, book_id in new_ids.items()
            if batch[upc].description is not None
        ]
        if texts:
            await conn.execute(descriptions.insert().values(texts))
        await conn.execute(
            price_points.insert().values(
                _price_points(((book_id, batch[upc]) for upc, book_id in new_ids.items()), now)
            )
        )
    return inserted


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.new + other.new, self.updated + other.updated, self.unchanged + other.unchanged
        )


# What makes a stored book differ from a record (the import compares the same columns).
COMPARED_COLUMNS = (
    "title",
    "product_type",
    "price_excl_tax_pence",
    "price_incl_tax_pence",
    "tax_pence",
    "currency",
    "availability",
    "rating",
    "num_reviews",
    "image_url",
    "product_url",
    "category_id",
)
# A change in these adds a price point.
PRICED_COLUMNS = ("price_excl_tax_pence", "price_incl_tax_pence", "tax_pence", "availability")


async def upsert_books(
    conn: AsyncConnection,
    records: Sequence[BookRecord],
    category_ids: dict[str, int] | None = None,
) -> UpsertCounts:
    """Store what a crawl saw, keyed by UPC, in one ``INSERT … ON CONFLICT`` per batch.

    Every book seen gets ``last_seen_at`` now (and loses ``removed_at``: it is back) and
    becomes the crawler's (an imported book the site lists is kept fresh, and retired, by the
    crawl); a changed price or stock adds a price point; ``first_seen_at`` never moves. A caller
    storing many batches passes ``category_ids`` to keep the category ids it has learnt.
    """
    if not records:
        return UpsertCounts()
    latest = {record.upc: record for record in records}  # the last sighting wins
    category_ids = {} if category_ids is None else category_ids
    unknown = {r.category for r in latest.values()} - category_ids.keys()
    if unknown:
        category_ids.update(await ensure_categories(conn, unknown))
    existing_rows = await conn.execute(
        select(books, descriptions.c.description)
        .select_from(books.outerjoin(descriptions, descriptions.c.book_id == books.c.id))
        .where(books.c.upc.in_(latest))
        .order_by(books.c.id)  # one lock order for every writer: no deadlock between them
        .with_for_update(of=books)
    )
    existing = {row.upc: row for row in existing_rows}
    now = utcnow()  # after the locks: the price points follow the order of the writes
    values = [_book_values(r, category_ids[r.category], now) for r in latest.values()]
    new = updated = unchanged = 0
    priced_upcs: list[str] = []
    for row in values:
        old = existing.get(row["upc"])
        record = latest[row["upc"]]
        if old is None:
            new += 1
            priced_upcs.append(row["upc"])
            continue
        changed = any(getattr(old, name) != row[name] for name in COMPARED_COLUMNS)
        changed = changed or old.description != record.description or old.removed_at is not None
        updated, unchanged = (updated + 1, unchanged) if changed else (updated, unchanged + 1)
        if any(getattr(old, name) != row[name] for name in PRICED_COLUMNS):
            priced_upcs.append(row["upc"])
    statement = insert_for(conn, books).values(values)
    refreshed = {
        name: statement.excluded[name] for name in (*COMPARED_COLUMNS, "last_seen_at", "source")
    }
    statement = statement.on_conflict_do_update(
        index_elements=["upc"], set_={**refreshed, "removed_at": None}
    ).returning(books.c.id, books.c.upc)
    ids = {upc: book_id for book_id, upc in await conn.execute(statement)}
    await _store_descriptions(conn, latest, ids, existing)
    if priced_upcs:
        await conn.execute(
            price_points.insert().values(
                _price_points(((ids[upc], latest[upc]) for upc in priced_upcs), now)
            )
        )
    return UpsertCounts(new=new, updated=updated, unchanged=unchanged)


async def _store_descriptions(
    conn: AsyncConnection,
    latest: dict[str, BookRecord],
    ids: dict[str, int],
    existing: dict[str, Any],
) -> None:
    changed = [
        {"book_id": ids[upc], "description": record.description}
        for upc, record in latest.items()
        if record.description is not None
        and (upc not in existing or existing[upc].description != record.description)
    ]
    if changed:
        statement = insert_for(conn, descriptions).values(changed)
        statement = statement.on_conflict_do_update(
            index_elements=["book_id"], set_={"description": statement.excluded.description}
        )
        await conn.execute(statement)
    gone = [
        ids[upc]
        for upc, record in latest.items()
        if record.description is None and upc in existing and existing[upc].description is not None
    ]
    if gone:
        await conn.execute(descriptions.delete().where(descriptions.c.book_id.in_(gone)))


async def mark_unseen_removed(conn: AsyncConnection, seen_since: datetime, now: datetime) -> int:
    """After a complete crawl: the crawler's books it did not see have vanished from the site.

    Imported books are not the site's: a crawl never retires them.
    """
    result = await conn.execute(
        update(books)
        .where(
            books.c.last_seen_at < seen_since,
            books.c.removed_at.is_(None),
            books.c.source == CRAWL,
        )
        .values(removed_at=now)
    )
    return int(result.rowcount or 0)
