"""What the command modules share: logging, the database check, engines, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.config import Settings, get_settings
from bookql.core.errors import StartupError
from bookql.core.logs import configure_logging
from bookql.db.engine import check_connection, create_sync_engine


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


BEHIND = "the database schema is behind: run `bookql db upgrade`"


def migrated_settings() -> Settings:
    """The settings, once the database answers and its schema is the code's: a command that
    reads or writes the catalogue says what to run instead of failing on a missing table."""
    from bookql.db.migrate import is_at_head

    settings = get_settings()
    engine = create_sync_engine(settings)
    try:
        check_connection(engine)
        if not is_at_head(engine):
            raise StartupError(BEHIND)
    finally:
        engine.dispose()
    return settings


@asynccontextmanager
async def async_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine for one command's work, disposed of however the work ends."""
    from bookql.db.engine import create_async_db_engine

    engine = create_async_db_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Prints ``bookql: error: message`` to stderr; the caller raises what it returns."""
    typer.echo(f"bookql: error: {message}", err=True)
    return typer.Exit(code=code)


def echo_outcome(run: Callable[[], Coroutine[Any, Any, str]]) -> None:
    """Print what ``run`` reports; an expected refusal is printed to stderr and exits 1."""
    from bookql.core.errors import BookQLError

    try:
        typer.echo(asyncio.run(run()))
    except BookQLError as exc:
        raise fail(exc.message) from None
