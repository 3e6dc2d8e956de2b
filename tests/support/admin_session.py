"""An administrator's session over a scratch database, for the catalogue's write tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bookql.catalog.seed import seed_catalog
from bookql.db.engine import create_async_db_engine
from tests.accounts.test_accounts import SECRET, login, make_admin, register
from tests.conftest import GraphQLClient, ScratchDatabase, app_client


class AdminClient(GraphQLClient):
    """A GraphQL client holding an administrator's and a plain user's access tokens."""

    admin_token: str
    user_token: str

    async def admin(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of an operation, run as the administrator, that must succeed."""
        return await self.data(query, variables, token=self.admin_token)


async def seed(database: ScratchDatabase) -> None:
    engine = create_async_db_engine(database.settings())
    try:
        await seed_catalog(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def admin_session(
    database: ScratchDatabase, *, seeded: bool = True, **settings: Any
) -> AsyncIterator[AdminClient]:
    """A client on ``database`` (seeded with the snapshot unless told otherwise)."""
    if seeded:
        await seed(database)
    await make_admin(database)
    async with app_client(database.settings(jwt_secret=SECRET, **settings)) as http:
        client = AdminClient(http)
        session = await login(client, "root")
        assert "errors" not in session, session
        client.admin_token = session["data"]["login"]["accessToken"]
        client.user_token = (await register(client, "reader"))["accessToken"]
        yield client
