"""The Starlette application: GraphQL at ``/graphql``, health probes beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import strawberry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UnsetType

from bookql.accounts.service import Accounts
from bookql.accounts.setup import build_accounts
from bookql.api.context import Context
from bookql.api.errors import BookQLError
from bookql.api.health import healthz, readyz
from bookql.api.middleware import RequestIdMiddleware, request_id_of
from bookql.api.schema import build_schema
from bookql.catalog.graphql.loaders import CatalogLoaders
from bookql.core.config import Settings, get_settings
from bookql.db.engine import create_async_db_engine


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context and orjson on the way out."""

    def __init__(
        self, schema: strawberry.Schema, settings: Settings, engine: AsyncEngine, accounts: Accounts
    ) -> None:
        super().__init__(schema)
        self.settings = settings
        self.engine = engine
        self.accounts = accounts

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            engine=self.engine,
            request_id=request_id_of(request.scope),
            accounts=self.accounts,
            catalog=CatalogLoaders(self.engine),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Credentials in ``connection_init`` are checked now: a bad token closes with 4403."""
        try:
            await context.auth.viewer()
        except BookQLError:
            raise ConnectionRejectionError({"message": "invalid credentials"}) from None
        return UnsetType()  # acknowledge without a payload

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws clients expect text frames.
        return orjson.dumps(data).decode()


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.check_production()
    engine = create_async_db_engine(settings)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    accounts = build_accounts(settings, engine, redis)
    graphql = GraphQLApp(build_schema(), settings, engine, accounts)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        accounts.close()
        await engine.dispose()
        if redis is not None:
            await redis.aclose()

    app = Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.redis = redis
    return app
