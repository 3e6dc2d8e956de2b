"""Who is calling, decided once per request (or per WebSocket connection).

No credentials means anonymous. Credentials that are present but wrong (not ``Bearer``,
forged, expired, revoked, a refresh token) are refused, never treated as anonymous.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bookql.accounts.service import Accounts, Viewer
from bookql.api.errors import Forbidden, Unauthenticated


class RequestAuth:
    def __init__(self, accounts: Accounts, credentials: Callable[[], str | None]) -> None:
        self._accounts = accounts
        self._credentials = credentials
        self._viewer: asyncio.Future[Viewer | None] | None = None

    async def viewer(self) -> Viewer | None:
        """The caller; resolved at most once however many fields ask."""
        if self._viewer is None:
            self._viewer = asyncio.ensure_future(self._resolve())
        return await asyncio.shield(self._viewer)

    async def require_user(self) -> Viewer:
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated("sign in first: send 'Authorization: Bearer <access token>'")
        return viewer

    async def require_admin(self) -> Viewer:
        viewer = await self.require_user()
        if not viewer.is_admin:
            raise Forbidden("only administrators may do this")
        return viewer

    async def _resolve(self) -> Viewer | None:
        credentials = self._credentials()
        if credentials is None or not credentials.strip():
            return None
        scheme, _, token = credentials.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <access token>'")
        return await self._accounts.authenticate(token.strip())
