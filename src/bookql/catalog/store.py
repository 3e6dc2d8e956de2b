"""Writing the catalogue: categories by name, books by UPC, in batches, idempotently."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.models import books, categories, descriptions, price_points
from bookql.catalog.records import BookRecord
from bookql.catalog.slugs import slugify
from bookql.db.upsert import insert_for

BATCH_SIZE = 500


async def ensure_categories(conn: AsyncConnection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named categories, creating the missing ones (safe under concurrency)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = [{"name": name, "slug": slugify(name)} for name in wanted]
    await conn.execute(insert_for(conn, categories).on_conflict_do_nothing(), rows)
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
    }


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
        statement = (
            insert_for(conn, books)
            .on_conflict_do_nothing(index_elements=["upc"])
            .returning(books.c.id, books.c.upc)
        )
        values = [_book_values(r, category_ids[r.category], now) for r in batch.values()]
        new_ids = {upc: book_id for book_id, upc in (await conn.execute(statement, values))}
        if not new_ids:
            continue
        inserted += len(new_ids)
        texts = [
            {"book_id": book_id, "description": batch[upc].description}
            for upc, book_id in new_ids.items()
            if batch[upc].description is not None
        ]
        if texts:
            await conn.execute(descriptions.insert(), texts)
        await conn.execute(
            price_points.insert(),
            [
                {
                    "book_id": book_id,
                    "observed_at": now,
                    "price_excl_tax_pence": batch[upc].price_excl_tax_pence,
                    "price_incl_tax_pence": batch[upc].price_incl_tax_pence,
                    "tax_pence": batch[upc].tax_pence,
                    "availability": batch[upc].availability,
                }
                for upc, book_id in new_ids.items()
            ],
        )
    return inserted


async def count_books(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(books))).scalar_one())
