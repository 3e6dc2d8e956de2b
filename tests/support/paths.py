"""Both executors over one database: an app with compiled plans and one without."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from bookql.graphql.compiled.executor import Counts
from bookql.server.app import create_app
from bookql.server.view import GraphQLApp
from tests.conftest import ScratchDatabase


def graphql_view(app: Starlette) -> GraphQLApp:
    """The app's GraphQL view (the one behind ``/graphql``)."""
    views = [getattr(route, "endpoint", None) for route in app.routes]
    return next(view for view in views if isinstance(view, GraphQLApp))


@dataclass
class Pair:
    """Clients of the two apps, and the counts of the compiled one."""

    standard: httpx.AsyncClient
    compiled: httpx.AsyncClient
    counts: Counts

    async def both(self, method: str, **request: Any) -> tuple[httpx.Response, httpx.Response]:
        """The same request (and request id) to each app."""
        headers = {"X-Request-ID": "the-same-request", **request.pop("headers", {})}
        standard = await self.standard.request(method, "/graphql", headers=headers, **request)
        compiled = await self.compiled.request(method, "/graphql", headers=headers, **request)
        return standard, compiled


@asynccontextmanager
async def pair(database: ScratchDatabase, **settings: Any) -> AsyncIterator[Pair]:
    async with AsyncExitStack() as stack:
        clients = []
        counts = None
        for compiled in (False, True):
            app = create_app(database.settings(compiled_queries=compiled, **settings))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            clients.append(await stack.enter_async_context(client))
            view = graphql_view(app)
            assert (view.compiled is not None) is compiled
            if view.compiled is not None:
                counts = view.compiled.counts
        assert counts is not None
        yield Pair(standard=clients[0], compiled=clients[1], counts=counts)
