"""Engines for both back ends, tuned for a server and a crawler writing at the same time.

SQLite gets WAL (readers never wait for the writer), a busy timeout, foreign keys, and
explicit transaction control: reads begin deferred, writes begin IMMEDIATE so two writers
queue on the busy timeout instead of failing on a lock upgrade. PostgreSQL goes through
psycopg 3 with a pool and a statement timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bookql.core.config import Settings
from bookql.core.errors import DatabaseUnavailableError
from bookql.db.urls import async_url, parse_database_url, redact, sync_url

WRITE_OPTION = "bookql_write"


def database_url(settings: Settings) -> URL:
    return parse_database_url(settings.effective_database_url)


def _engine_options(url: URL, settings: Settings) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return {"connect_args": {"timeout": settings.db_pool_timeout}}
    options = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_pool_size,
        "pool_timeout": settings.db_pool_timeout,
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": 5, "options": options},
    }


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_sync_engine(settings: Settings, url: URL | None = None) -> Engine:
    url = url or database_url(settings)
    engine = create_engine(sync_url(url), **_engine_options(url, settings))
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine, int(settings.db_pool_timeout * 1000))
    return engine


def create_async_db_engine(settings: Settings, url: URL | None = None) -> AsyncEngine:
    url = url or database_url(settings)
    engine = create_async_engine(async_url(url), **_engine_options(url, settings))
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine.sync_engine, int(settings.db_pool_timeout * 1000))
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that is going to write (BEGIN IMMEDIATE on SQLite)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@asynccontextmanager
async def async_write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The async twin of :func:`write_transaction`."""
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            yield conn


def unavailable(url: URL, exc: BaseException) -> DatabaseUnavailableError:
    """A one-line error naming the database (without its password) and the driver's reason."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first_line = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason)
    return DatabaseUnavailableError(f"cannot reach the database {redact(url)}: {first_line}")


def check_connection(engine: Engine) -> None:
    """Fail fast, with a clear message, when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as exc:
        raise unavailable(engine.url, exc) from None
