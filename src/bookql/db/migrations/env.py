"""Alembic environment: runs on the connection handed over by ``bookql.db.migrate``.

``target_metadata`` is the shared metadata every domain's tables register on; ``db`` imports
no domain, so whoever autogenerates a revision imports ``bookql.server.registry`` first.
Upgrades and downgrades do not read it.
"""

from alembic import context
from sqlalchemy import Connection

from bookql.core.config import get_settings
from bookql.db.base import metadata
from bookql.db.engine import create_sync_engine
from bookql.db.migrate import include_object

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
