"""``bookql db`` (the schema's migrations) and ``bookql seed`` (the bundled catalogue)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bookql.cli.common import async_engine, migrated_settings
from bookql.core.config import get_settings
from bookql.db.engine import check_connection, create_sync_engine, database_url
from bookql.db.urls import redact

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(seed)
    app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the migrations up to REVISION (default: head)."""
    from bookql.db.migrate import upgrade

    settings = get_settings()
    engine = create_sync_engine(settings)
    check_connection(engine)
    upgrade(engine, revision)
    typer.echo(f"{redact(database_url(settings))}: migrated to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from bookql.db.migrate import current_revision, head_revision

    engine = create_sync_engine(get_settings())
    check_connection(engine)
    with engine.connect() as conn:
        current = current_revision(conn)
    typer.echo(f"current: {current or '(empty)'}\nhead:    {head_revision()}")


def seed() -> None:
    """Insert the bundled snapshot's missing books; never overwrites crawled data."""
    from bookql.catalog.seed import seed_catalog

    settings = migrated_settings()

    async def run() -> None:
        async with async_engine(settings) as engine:
            result = await seed_catalog(engine)
        typer.echo(
            f"seeded {result.inserted} new books "
            f"({result.total_in_snapshot - result.inserted} already stored)"
        )

    asyncio.run(run())
