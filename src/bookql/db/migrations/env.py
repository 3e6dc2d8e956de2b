"""Alembic environment: runs on the connection handed over by ``bookql.db.migrate``."""

from alembic import context
from sqlalchemy import Connection

from bookql.core.config import get_settings
from bookql.db.engine import create_sync_engine
from bookql.db.migrate import include_object
from bookql.db.registry import metadata

config = context.config


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
