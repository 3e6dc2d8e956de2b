"""What ``bookql serve`` does to a database before serving: check, migrate, seed."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bookql.catalog.seed import seed_catalog
from bookql.catalog.tables import books
from bookql.core.config import Settings
from bookql.db.engine import check_connection, create_async_db_engine, create_sync_engine
from bookql.db.migrate import is_at_head, upgrade


def prepare_database(settings: Settings) -> list[str]:
    """Bring the database to a servable state; returns what was done, for the log."""
    engine = create_sync_engine(settings)
    report: list[str] = []
    try:
        check_connection(engine)
        if settings.auto_migrate:
            upgrade(engine)
            report.append("database schema at head")
        elif not is_at_head(engine):
            report.append("database schema is behind: run `bookql db upgrade` (/readyz fails)")
            return report
        if settings.auto_seed:
            with engine.connect() as conn:
                empty = conn.execute(select(func.count()).select_from(books)).scalar_one() == 0
            if empty:
                result = asyncio.run(_seed(settings))
                report.append(f"empty catalogue: loaded {result} books from the bundled snapshot")
    finally:
        engine.dispose()
    return report


async def _seed(settings: Settings) -> int:
    engine = create_async_db_engine(settings)
    try:
        return (await seed_catalog(engine)).inserted
    finally:
        await engine.dispose()
