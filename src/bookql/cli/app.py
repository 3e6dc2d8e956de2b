"""Commands: serve, db, seed, export-schema."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer
import uvicorn

from bookql.core.config import get_settings
from bookql.db.engine import check_connection, create_sync_engine, database_url
from bookql.db.urls import redact

app = typer.Typer(
    name="bookql",
    help="The books.toscrape.com catalogue over GraphQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")

log = logging.getLogger("bookql.cli")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve GraphQL at /graphql (migrating and seeding an empty database first)."""
    from bookql.db.prepare import prepare_database

    _setup_logging()
    settings = get_settings()
    settings.check_production()
    report = prepare_database(settings)
    for line in report:
        log.info(line)
    typer.echo(f"bookql: serving http://{host}:{port}/graphql", err=True)
    uvicorn.run(
        "bookql.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
    )


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


@app.command()
def seed() -> None:
    """Insert the bundled snapshot's missing books; never overwrites crawled data."""
    from bookql.catalog.seed import seed_catalogue
    from bookql.db.engine import create_async_db_engine

    settings = get_settings()
    check_connection(create_sync_engine(settings))

    async def run() -> None:
        engine = create_async_db_engine(settings)
        try:
            result = await seed_catalogue(engine)
        finally:
            await engine.dispose()
        typer.echo(
            f"seeded {result.inserted} new books "
            f"({result.total_in_snapshot - result.inserted} already stored)"
        )

    asyncio.run(run())


def _read_password() -> str:
    """From a hidden prompt (typed twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
) -> None:
    """Create a user; the password is read from a prompt or stdin, never from arguments."""
    from bookql.accounts.models import Role
    from bookql.accounts.setup import build_accounts
    from bookql.api.errors import BookQLError
    from bookql.db.engine import create_async_db_engine

    settings = get_settings()
    check_connection(create_sync_engine(settings))
    password = _read_password()

    async def run() -> str:
        engine = create_async_db_engine(settings)
        try:
            accounts = build_accounts(settings, engine, None)
            role = Role.ADMIN if admin else Role.USER
            row = await accounts.create_user(username, password, email=email, role=role)
            return f"created {role.value.lower()} {row.username}"
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(run()))
    except BookQLError as exc:
        typer.echo(f"bookql: error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


@app.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL SDL (the content of schema.graphql)."""
    from bookql.api.schema import build_schema, print_sdl

    typer.echo(print_sdl(build_schema()), nl=False)
