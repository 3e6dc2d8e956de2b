"""What the toolkit asks of a request's context, as a Protocol: the server's ``Context`` is one.

Each domain declares the context its resolvers need the same way
(``bookql.<domain>.graphql.context``), so the one concrete context lives in the server, above
them all, and no layer imports upward to name it.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket


class Viewer(Protocol):
    @property
    def user_id(self) -> int: ...


class UserAuth(Protocol):
    """The caller, as far as the toolkit asks (``bookql.accounts.auth.RequestAuth`` is one)."""

    async def require_user(self) -> Viewer: ...


class RequestContext(Protocol):
    @property
    def request(self) -> Request | WebSocket: ...

    @property
    def auth(self) -> UserAuth: ...


Info: TypeAlias = strawberry.Info[RequestContext, None]
