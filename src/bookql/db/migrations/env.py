"""Alembic environment: runs on the connection handed over by ``bookql.db.migrate``."""

from alembic import context
from sqlalchemy import Connection

from bookql.core.config import get_settings
from bookql.db.engine import create_sync_engine
from bookql.db.registry import metadata

config = context.config


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out tables that no model describes (full-text search shadows, for one)."""
    return not (
        type_ == "table" and reflected and compare_to is None and name not in metadata.tables
    )


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_sync_engine(get_settings())
        with engine.begin() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
