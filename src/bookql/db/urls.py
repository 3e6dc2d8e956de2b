"""Database URLs: the two supported back ends, their sync and async drivers, and redaction."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bookql.core.errors import ConfigError

_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_ALIASES = {"postgres": "postgresql"}


def parse_database_url(raw: str) -> URL:
    """Parse and check a database URL; the result names the back end, not a driver."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "BOOKQL_DATABASE_URL is not a database URL "
            "(expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
        ) from None
    backend, _, driver = url.drivername.partition("+")  # without loading any dialect
    backend = _ALIASES.get(backend, backend)
    if backend not in _SYNC_DRIVERS:
        raise ConfigError(
            f"BOOKQL_DATABASE_URL has an unsupported scheme {url.drivername!r}: "
            "use sqlite:/// or postgresql+psycopg://"
        )
    if backend == "postgresql" and driver not in ("", "psycopg"):
        raise ConfigError(
            f"BOOKQL_DATABASE_URL names driver {driver!r}: bookql talks to PostgreSQL through "
            "psycopg 3 (postgresql+psycopg://)"
        )
    if backend == "sqlite" and driver not in ("", "pysqlite", "aiosqlite"):
        raise ConfigError(f"BOOKQL_DATABASE_URL names an unsupported SQLite driver {driver!r}")
    return url.set(drivername=backend)


def sync_url(url: URL) -> URL:
    return url.set(drivername=_SYNC_DRIVERS[url.get_backend_name()])


def async_url(url: URL) -> URL:
    return url.set(drivername=_ASYNC_DRIVERS[url.get_backend_name()])


def redact(url: URL) -> str:
    """The URL as it may appear in logs and error messages: never with its password."""
    return url.render_as_string(hide_password=True)
