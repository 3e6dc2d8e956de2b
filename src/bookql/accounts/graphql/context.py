"""What the accounts' resolvers and permissions need from a request's context.

A Protocol, not the server's ``Context``: the server sits above the domains and its one
context satisfies each domain's declaration (checked by mypy in ``bookql.server.context``).
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket

from bookql.accounts.auth import RequestAuth
from bookql.accounts.service import Accounts
from bookql.core.config import Settings


class AccountsContext(Protocol):
    request: Request | WebSocket
    settings: Settings
    engine: AsyncEngine
    accounts: Accounts
    auth: RequestAuth


Info: TypeAlias = strawberry.Info[AccountsContext, None]
