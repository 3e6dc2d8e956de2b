"""Who is calling: decided once per request, or kept current on sockets and streams.

No credentials means anonymous. Credentials that are present but wrong (not ``Bearer``,
forged, expired, revoked, a refresh token, a session that ended) are refused, never treated
as anonymous. A WebSocket or a long stream is *live*: its first check reads the database and
registers it with the process's :class:`~bookql.accounts.live.LiveSessions`; every later check
answers from the state that change notices keep current, without a database read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bookql.accounts.live import Holder, LiveSessions, Stream
from bookql.accounts.service import Accounts, Viewer
from bookql.accounts.tokens import InvalidToken, TokenType
from bookql.core.errors import BookQLError, Forbidden, Unauthenticated


class RequestAuth:
    def __init__(
        self,
        accounts: Accounts,
        credentials: Callable[[], str | None],
        live: LiveSessions | None = None,
    ) -> None:
        self._accounts = accounts
        self._credentials = credentials
        self._live = live
        self._viewer: asyncio.Future[Viewer | None] | None = None
        self.holder: Holder | None = None

    def go_live(self) -> None:
        """From now on this caller is held as they are now (a socket, a stream)."""
        if self._live is not None and self.holder is None:
            self.holder = Holder()

    async def viewer(self) -> Viewer | None:
        """The caller; resolved at most once, then (when live) as they are now."""
        if self._viewer is None:
            self._viewer = asyncio.ensure_future(self._resolve())
        viewer = await asyncio.shield(self._viewer)
        if viewer is not None and self.holder is not None:
            return self.holder.viewer()
        return viewer

    def refusal(self) -> BookQLError | None:
        """Why the credentials were refused, once checking them has failed; else None."""
        checked = self._viewer
        if checked is None or not checked.done() or checked.cancelled():
            return None
        failure = checked.exception()
        return failure if isinstance(failure, BookQLError) else None

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

    def stream(self, subscription: bool) -> Stream | None:
        """A long operation of a live caller, ended when the session ends (or, for a
        subscription, when the role changes); None for a caller that is not live."""
        return self.holder.stream(subscription) if self.holder is not None else None

    def end_stream(self, stream: Stream | None) -> None:
        if stream is not None and self.holder is not None:
            self.holder.streams.discard(stream)

    def close(self) -> None:
        """The socket or stream is over: stop holding it."""
        if self.holder is not None:
            self.holder.release()

    async def _resolve(self) -> Viewer | None:
        credentials = self._credentials()
        if credentials is None or not credentials.strip():
            return None
        scheme, _, token = credentials.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <access token>'")
        if self.holder is None or self._live is None:
            return await self._accounts.authenticate(token)
        try:
            claims = self._accounts.codec.decode(token, TokenType.ACCESS)
        except InvalidToken:
            return await self._accounts.authenticate(token)  # refuses it, with the reason
        # held before the read, so that a change committed after the read is noticed
        self._live.hold(self.holder, claims.user_id, claims.family_id, claims.token_version)
        viewer = await self._accounts.authenticate(token)
        self._live.start(self.holder, viewer)
        return viewer
