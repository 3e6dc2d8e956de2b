"""``bookql seed``: load the bundled snapshot's missing books; never overwrite crawled data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.catalog.snapshot import load_snapshot
from bookql.catalog.store import insert_missing_books
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow


@dataclass(frozen=True)
class SeedResult:
    inserted: int
    total_in_snapshot: int


async def seed_catalog(engine: AsyncEngine) -> SeedResult:
    records = load_snapshot()
    async with async_write_transaction(engine) as conn:
        inserted = await insert_missing_books(conn, records, utcnow())
    return SeedResult(inserted=inserted, total_in_snapshot=len(records))
