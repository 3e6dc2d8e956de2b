"""The typed per-request context: settings, the engine, and fresh DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from bookql.catalog.graphql.loaders import CatalogLoaders
from bookql.core.config import Settings


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    engine: AsyncEngine
    request_id: str
    catalog: CatalogLoaders
    connection_params: dict[str, Any] | None = field(default=None)


Info: TypeAlias = strawberry.Info[Context, None]
