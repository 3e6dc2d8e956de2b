"""Migrations build exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bookql.db.engine import create_sync_engine
from bookql.db.migrate import (
    current_revision,
    head_revision,
    include_object,
    is_at_head,
    upgrade,
)
from bookql.server.registry import metadata
from tests.conftest import ScratchDatabase


def _diff(database: ScratchDatabase) -> list[object]:
    engine = create_sync_engine(database.settings())
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return list(diff)


@pytest.mark.slow
def test_migrations_match_the_models(blank_db: ScratchDatabase) -> None:
    engine = create_sync_engine(blank_db.settings())
    assert not is_at_head(engine)
    upgrade(engine)
    assert is_at_head(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert set(metadata.tables) <= tables
    assert _diff(blank_db) == []


@pytest.mark.slow
def test_downgrade_and_upgrade_again(blank_db: ScratchDatabase) -> None:
    engine = create_sync_engine(blank_db.settings())
    upgrade(engine)
    upgrade(engine)  # already at head: nothing to do, no error
    from alembic import command

    from bookql.db.migrate import alembic_config

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with engine.connect() as conn:
        assert not set(metadata.tables) & set(inspect(conn).get_table_names())
    upgrade(engine)
    engine.dispose()
    assert _diff(blank_db) == []


def test_sqlite_is_tuned_for_concurrent_use(empty_db: ScratchDatabase) -> None:
    engine = create_sync_engine(empty_db.settings())
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            engine.dispose()
            return
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    engine.dispose()
