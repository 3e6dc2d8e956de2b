"""Test databases for both back ends, and a GraphQL client over the real ASGI app.

SQLite always runs. PostgreSQL and Redis run when ``BOOKQL_TEST_DATABASE_URL`` and
``BOOKQL_TEST_REDIS_URL`` name them; without them their tests skip, except under
``CI=true``, where a missing service fails the run instead of hiding behind a skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bookql.catalog.seed import seed_catalog
from bookql.core.config import Settings
from bookql.db.engine import create_async_db_engine, create_sync_engine
from bookql.db.migrate import upgrade
from bookql.server.app import create_app

for name in [key for key in os.environ if key.startswith("BOOKQL_")]:
    if not name.startswith("BOOKQL_TEST_"):
        del os.environ[name]  # the suite must not depend on the developer's shell

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("BOOKQL_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("BOOKQL_TEST_REDIS_URL")
BACKENDS = ["sqlite", "postgresql"]
# OWASP's minimum argon2id cost (the floor the settings accept), to keep the suite quick.
FAST_ARGON2 = {"argon2_time_cost": 2, "argon2_memory_kib": 19_456, "argon2_parallelism": 1}


def require_service(configured: str | None, variable: str, what: str) -> str:
    if configured:
        return configured
    message = f"{what} tests need {variable} (e.g. see .ci/run)"
    if IN_CI:
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


@dataclass
class ScratchDatabase:
    backend: str
    url: str
    data_dir: Path

    def settings(self, **overrides: Any) -> Settings:
        return Settings.model_validate(
            {"database_url": self.url, "data_dir": self.data_dir, **FAST_ARGON2} | overrides
        )


class PostgresDatabases:
    """Creates scratch databases beside the configured one and drops them at the end."""

    def __init__(self, url: str) -> None:
        self.base = make_url(url).set(drivername="postgresql+psycopg")
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self) -> str:
        name = f"bookql_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(require_service(PG_URL, "BOOKQL_TEST_DATABASE_URL", "PostgreSQL"))
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The configured Redis; under pytest-xdist each worker gets a database of its own (the
    configured number, then the ones below it), since tests flush theirs."""
    url = make_url(require_service(REDIS_URL, "BOOKQL_TEST_REDIS_URL", "Redis"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    database = (int(url.database or 0) - int(worker.removeprefix("gw"))) % 16
    return url.set(database=str(database)).render_as_string(hide_password=False)


def _new_database(
    backend: str, request: pytest.FixtureRequest, tmp: Path, *, migrate: bool
) -> ScratchDatabase:
    if backend == "postgresql":
        url = request.getfixturevalue("postgres").create()
    else:
        url = f"sqlite:///{tmp / 'bookql.db'}"
    database = ScratchDatabase(backend=backend, url=url, data_dir=tmp)
    if migrate:
        engine = create_sync_engine(database.settings())
        upgrade(engine)
        engine.dispose()
    return database


def _seed(database: ScratchDatabase) -> None:
    async def run() -> None:
        engine = create_async_db_engine(database.settings())
        await seed_catalog(engine)
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session", params=BACKENDS)
def seeded_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ScratchDatabase:
    """A migrated database holding the bundled catalogue; tests must not change the catalogue."""
    database = _new_database(
        request.param, request, tmp_path_factory.mktemp("seeded"), migrate=True
    )
    _seed(database)
    return database


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> ScratchDatabase:
    """A migrated, empty database of its own: tests may write to it."""
    return _new_database(request.param, request, tmp_path, migrate=True)


@pytest.fixture(params=BACKENDS)
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> ScratchDatabase:
    """A database with no tables at all, for migration tests."""
    return _new_database(request.param, request, tmp_path, migrate=False)


class GraphQLClient:
    """Posts GraphQL to the app in-process, as a frontend would over HTTP."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The data of an operation that must succeed."""
        body = await self.execute(query, variables, token=token)
        assert "errors" not in body, body.get("errors")
        data: dict[str, Any] = body["data"]
        return data


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh app in-process (lifespan included)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
async def http(seeded_db: ScratchDatabase) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(seeded_db.settings()) as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
