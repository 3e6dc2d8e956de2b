"""The typed per-request context: settings, the engine, and fresh DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from bookql.accounts.auth import RequestAuth
from bookql.accounts.service import Accounts
from bookql.catalog.graphql.loaders import CatalogLoaders
from bookql.core.config import Settings
from bookql.crawls.launcher import CrawlLauncher
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
    auth: RequestAuth = field(init=False)
    connection_params: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        self.auth = RequestAuth(self.accounts, self._credentials)

    def _credentials(self) -> str | None:
        """The ``Authorization`` header, or over WebSocket the same key in ``connection_init``."""
        if isinstance(self.request, WebSocket):
            value = (self.connection_params or {}).get("Authorization")
            return None if value is None else str(value)
        return self.request.headers.get("authorization")


Info: TypeAlias = strawberry.Info[Context, None]
