"""The typed per-request context: settings, the engine, and fresh DataLoaders.

The one concrete context, above the domains. Each domain (and the toolkit) declares what it
needs as a Protocol; :func:`_serves_every_layer` has mypy check that this context fits them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from bookql.accounts.auth import RequestAuth
from bookql.accounts.graphql.context import AccountsContext
from bookql.accounts.live import LiveSessions
from bookql.accounts.service import Accounts
from bookql.catalog.graphql.context import CatalogContext
from bookql.catalog.graphql.loaders import CatalogLoaders
from bookql.core.config import Settings
from bookql.crawls.graphql.context import CrawlsContext
from bookql.crawls.launcher import CrawlLauncher
from bookql.graphql.context import RequestContext
from bookql.ml.graphql.context import MlContext
from bookql.ml.service import PriceService


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    engine: AsyncEngine
    request_id: str
    accounts: Accounts
    crawls: CrawlLauncher
    ml: PriceService
    catalog: CatalogLoaders
    live: LiveSessions | None = None
    auth: RequestAuth = field(init=False)
    connection_params: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        self.auth = RequestAuth(self.accounts, self._credentials, self.live)
        if isinstance(self.request, WebSocket):
            self.auth.go_live()

    def _credentials(self) -> str | None:
        """The ``Authorization`` header; over WebSocket, as clients send it: in the
        ``connection_init`` payload, else on the upgrade request."""
        if isinstance(self.request, WebSocket):
            value = socket_credentials(self.connection_params or {})
            return value if value is not None else self.request.headers.get("authorization")
        return self.request.headers.get("authorization")


def socket_credentials(payload: dict[str, Any]) -> str | None:
    """``Authorization`` in any case, at the top of the payload or (Apollo) under ``headers``."""
    for source in (payload, payload.get("headers")):
        if isinstance(source, dict):
            for key, value in source.items():
                if isinstance(key, str) and key.lower() == "authorization" and value is not None:
                    return str(value)
    return None


Info: TypeAlias = strawberry.Info[Context, None]


def _serves_every_layer(
    context: Context,
) -> tuple[RequestContext, AccountsContext, CatalogContext, CrawlsContext, MlContext]:
    """Never called: mypy checks here that ``Context`` gives each layer what it declared."""
    return context, context, context, context, context
