"""Alembic, driven from code: ``bookql db upgrade``, and the "at head?" check of ``/readyz``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from bookql.db.base import metadata
from bookql.db.engine import WRITE_OPTION

SCRIPT_LOCATION = "bookql.db:migrations"
_PG_MIGRATION_LOCK = 0x626F6F6B716C  # "bookql": one migrator at a time across machines


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out what no model describes: the full-text search tables and their indexes.

    The models are those registered on the shared metadata: all of them once the domains'
    tables are imported, which ``bookql.server.registry`` does for whoever compares."""
    if not reflected or compare_to is not None:
        return True
    if type_ == "table":
        return name in metadata.tables
    table = getattr(obj, "table", None)
    return table is None or table.name in metadata.tables


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; concurrent callers wait for each other instead of racing."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(conn), revision)


def is_at_head(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revision(conn) == head_revision()
