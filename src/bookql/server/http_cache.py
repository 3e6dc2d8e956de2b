"""HTTP caching of public GET queries: a strong ``ETag``, ``Cache-Control``, ``Vary``, and
``304 Not Modified`` without executing anything.

A request is cacheable when it is a GET of a query that reads only the public catalogue
(``bookql.server.public_queries``), sends no ``Authorization`` and asks for no stream, while the
catalogue is public and caching is on. Its tag digests everything its answer depends on:
the document, the variables (canonical JSON), ``operationName``, the response media type, the
server's build (package version and a digest of its code) and the
catalogue's data version, which the database moves in the transaction of every catalogue
write (migration ``0014_catalog_data_version``). The version is read before executing: an
answer tagged with it holds that data or newer, so a tag can only be older than its answer,
never newer, and a ``304`` is only ever sent while nothing changed.

Everything else, and any answer with errors, is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import Response

import bookql
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase
from bookql.server.public_queries import PublicQueries

NO_STORE = "no-store"
VARY = "Accept, Authorization, Origin"
DATA_VERSION = text("SELECT sum(bumps) FROM catalog_data_version")

HTTP_CACHE = Counter(
    "bookql_http_cache_total",
    "GraphQL HTTP answers by caching outcome: not_modified (304, nothing executed), "
    "tagged (executed, answered with an ETag) or uncacheable (no-store)",
    ["outcome"],
)
NOT_MODIFIED, TAGGED, UNCACHEABLE = (
    HTTP_CACHE.labels(outcome) for outcome in ("not_modified", "tagged", "uncacheable")
)


@cache
def code_digest() -> str:
    """A digest of the installed package's code: a new build makes new tags."""
    digest = hashlib.blake2b(digest_size=16)
    root = Path(bookql.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def server_build() -> str:
    """The package version and its code.

    Settings are left out: none changes a successful public answer (limits only refuse, and
    refusals are ``no-store``), and per-host settings (addresses, paths, the executor) must not
    give two machines serving the same data different tags for the same answer.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{bookql.__version__}\0{code_digest()}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Tagged:
    """A cacheable request: its entity tag and the headers that go with it."""

    etag: str
    max_age: int

    def matches(self, if_none_match: str | None) -> bool:
        """``If-None-Match`` by weak comparison, as RFC 9110 has it for this header. ``*`` is
        not taken as a match: whether an answer exists (rather than an error) is only known
        by executing, and only a tag this server gave out names an answer that did."""
        if not if_none_match:
            return False
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return any(tag.removeprefix("W/") == self.etag for tag in tags)

    def headers(self) -> dict[str, str]:
        return {
            "ETag": self.etag,
            "Cache-Control": f"public, max-age={self.max_age}",
            "Vary": VARY,
        }

    def not_modified(self) -> Response:
        NOT_MODIFIED.inc()
        return Response(status_code=304, headers=self.headers())


class HttpCache:
    """Decides whether a request is cacheable, tags it, and marks its answer."""

    def __init__(self, settings: Settings, blocking: BlockingDatabase, schema: Any) -> None:
        self.enabled = settings.http_cache and settings.public_catalogue
        self.max_age = settings.http_cache_max_age_seconds
        self.blocking = blocking
        self.inline = blocking.engine.dialect.name == "sqlite"
        self._connection: Any = None
        self.build = server_build() if self.enabled else ""
        self.queries = PublicQueries(schema, settings.max_query_tokens)

    async def tag(
        self,
        request: Request,
        operation: tuple[str, dict[str, Any] | None, str | None] | None,
        media_type: str,
    ) -> Tagged | None:
        """The tag of a cacheable request (the data version read now), else None."""
        if (
            not self.enabled
            or operation is None
            or request.method != "GET"
            or "authorization" in request.headers
        ):
            return None
        query, variables, operation_name = operation
        shape = self.queries.shape_of(query)
        if shape is None or not shape.allows(variables):
            return None
        version = await self.data_version()
        if version is None:
            return None
        digest = hashlib.blake2b(digest_size=16)
        for part in (
            self.build,
            str(version),
            media_type,
            query,
            orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode(),
            operation_name or "",
        ):
            digest.update(part.encode())
            digest.update(b"\0")
        return Tagged(f'"{digest.hexdigest()}"', self.max_age)

    async def data_version(self) -> int | None:
        """The catalogue's data version; None where the database cannot say (not migrated).

        Read on every cacheable request, so at the least cost: SQLite's 64-row sum takes tens
        of microseconds, less than any hop to a thread, so it is read right here; PostgreSQL's
        round trip goes whole to a worker thread (one hop), so the loop never waits on the
        network."""
        try:
            if self.inline:
                found = self._read_version_inline()
            else:
                found = await self.blocking.run(self._read_version)
        except (DBAPIError, sqlite3.Error):
            self.close()  # a fresh one next time
            return None
        return int(found) if found is not None else None

    def close(self) -> None:
        """Give back the connection the inline reads hold (at shutdown, or after an error)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _read_version_inline(self) -> Any:
        """One statement on a connection of its own in autocommit (the engine's SQLite
        connections are): a snapshot by itself, without a transaction around it."""
        if self._connection is None:
            self._connection = self.blocking.engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute(str(DATA_VERSION))
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    def _read_version(self) -> Any:
        with self.blocking.engine.connect() as conn:
            return conn.execute(DATA_VERSION).scalar_one_or_none()

    @staticmethod
    def mark(response: Response, tagged: Tagged | None, succeeded: bool) -> Response:
        """A successful cacheable answer gets its tag; every other answer ``no-store``."""
        if tagged is not None and succeeded and response.status_code == 200:
            TAGGED.inc()
            response.headers.update(tagged.headers())
        elif "cache-control" not in response.headers:
            UNCACHEABLE.inc()
            response.headers["Cache-Control"] = NO_STORE
        return response
