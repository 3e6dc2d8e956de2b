"""The live sockets and streams of one process, kept acting as their users are *now*.

A WebSocket or a long HTTP stream is a :class:`Holder` of one session. The registry keeps
the state (role, active, token version, ended sessions) of the users that hold something
here, refreshed by change notices (``bookql.accounts.notices``), so an operation on a socket
checks that state without a database read. A notice that ends a session (logout, reuse, a
password change or deactivation, which move the token version) ends its holders at once:
the socket closes with 4403, streams stop mid-batch. A role change ends the holders'
subscriptions, and later operations run with the new role.

Notices carry no state of their own: on one, the registry re-reads the user (one statement,
serialised, so the last read is never older than the last notice). Where notices cannot
reach every process, or while a listener is reconnecting, it re-reads every held user once
per ``BOOKQL_SESSION_POLL_SECONDS`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select

from bookql.accounts.notices import Notice, NoticeBus
from bookql.accounts.service import Viewer
from bookql.accounts.tables import Role, sessions, users
from bookql.core.errors import BookQLError, Forbidden, Unauthenticated
from bookql.db.blocking import BlockingDatabase

log = logging.getLogger(__name__)
T = TypeVar("T")

SESSION_ENDED = "this session has ended: sign in again"
ROLE_CHANGED = "your role changed: start the subscription again"


class SessionEnded(Exception):
    """A stream stopped because its caller's session ended (raised past where errors can be
    reported, e.g. mid-file)."""


@dataclass(slots=True)
class UserState:
    role: Role
    active: bool
    token_version: int


class Stream:
    """One long operation: ended from outside at once, by cancelling the task awaiting it."""

    def __init__(self, subscription: bool) -> None:
        self.subscription = subscription
        self.error: BookQLError | None = None
        self._task: asyncio.Task[Any] | None = None

    def end(self, error: BookQLError) -> None:
        if self.error is None:
            self.error = error
            if self._task is not None:
                self._task.cancel()

    async def step(self, awaitable: Any) -> Any:
        """``await awaitable``, unless or until the stream is ended: then its error."""
        if self.error is not None:
            _close(awaitable)
            raise self.error
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if self._ended_by_us(task):
                raise self._error() from None
            raise
        finally:
            self._task = None
        if task.cancelling() and self.ended():  # ended just as the await completed
            try:
                await asyncio.sleep(0)  # take the pending cancellation here
            except asyncio.CancelledError:
                if not self._ended_by_us(task):
                    raise
            raise self._error()
        return result

    def ended(self) -> bool:
        return self.error is not None

    def runs_in(self, task: asyncio.Task[Any] | None) -> bool:
        return task is not None and self._task is task

    def _ended_by_us(self, task: asyncio.Task[Any]) -> bool:
        return self.ended() and task.uncancel() == 0

    def _error(self) -> BookQLError:
        assert self.error is not None
        return self.error


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


class Holder:
    """A socket or stream of one signed-in session."""

    def __init__(self) -> None:
        self.user_id: int | None = None
        self.session = ""
        self.token_version = 0
        self.username = ""
        self.ended: BookQLError | None = None
        self.streams: set[Stream] = set()
        self.on_end: Callable[[], None] | None = None
        self._registry: LiveSessions | None = None

    def viewer(self) -> Viewer:
        """The user as they are now; refused once the session ended."""
        if self.ended is not None:
            raise self.ended
        assert self._registry is not None and self.user_id is not None
        state = self._registry.state(self.user_id)
        return Viewer(
            user_id=self.user_id,
            username=self.username,
            role=state.role,
            session_id=self.session,
            token_version=self.token_version,
        )

    def stream(self, subscription: bool) -> Stream:
        stream = Stream(subscription)
        if self.ended is not None:
            stream.end(self.ended)
        self.streams.add(stream)
        return stream

    def end(self, error: BookQLError) -> None:
        if self.ended is not None:
            return
        self.ended = error
        if self.on_end is not None:
            self.on_end()
        current = asyncio.current_task()
        for stream in list(self.streams):
            if not stream.runs_in(current):  # an operation that ended its own session finishes
                stream.end(error)

    def role_changed(self) -> None:
        for stream in list(self.streams):
            if stream.subscription:
                stream.end(Forbidden(ROLE_CHANGED))

    def release(self) -> None:
        if self._registry is not None:
            self._registry.release(self)
            self._registry = None


class LiveSessions:
    """The holders of this process by user, and the state of those users."""

    def __init__(self, blocking: BlockingDatabase, poll_seconds: float) -> None:
        self._blocking = blocking
        self._poll_seconds = poll_seconds
        self._holders: dict[int, set[Holder]] = {}
        self._states: dict[int, UserState] = {}
        self._reading = asyncio.Lock()
        self._stale = False  # a read after a notice failed: poll until one succeeds

    def held_users(self) -> int:
        return len(self._holders)

    def state(self, user_id: int) -> UserState:
        return self._states[user_id]

    # -- holders ---------------------------------------------------------------------------

    def hold(self, holder: Holder, user_id: int, session: str, token_version: int) -> None:
        """Register before the caller's row is read, so no notice can slip in between."""
        holder.user_id, holder.session, holder.token_version = user_id, session, token_version
        holder._registry = self
        self._holders.setdefault(user_id, set()).add(holder)

    def start(self, holder: Holder, viewer: Viewer) -> None:
        """The row read after :meth:`hold` found the session valid: unless a notice since said
        otherwise, this is the user's state."""
        assert holder.user_id == viewer.user_id
        holder.username = viewer.username
        state = self._states.setdefault(
            viewer.user_id, UserState(viewer.role, True, viewer.token_version)
        )
        if not state.active or state.token_version != holder.token_version:
            holder.end(Unauthenticated(SESSION_ENDED))
        if holder.ended is not None:
            raise holder.ended

    def release(self, holder: Holder) -> None:
        if holder.user_id is None:
            return
        held = self._holders.get(holder.user_id)
        if held is None:
            return
        held.discard(holder)
        if not held:
            del self._holders[holder.user_id]
            self._states.pop(holder.user_id, None)

    # -- changes ---------------------------------------------------------------------------

    async def apply(self, notice: Notice) -> None:
        held = self._holders.get(notice.user_id)
        if not held:
            return
        for holder in list(held):  # what a notice ends stays ended: act before the read
            if notice.session == holder.session or (
                notice.token_version is not None and holder.token_version < notice.token_version
            ):
                holder.end(Unauthenticated(SESSION_ENDED))
        try:
            await self.refresh([notice.user_id])
        except Exception:  # the poll, or the next notice, tries again
            log.warning("could not re-read a user after a notice", exc_info=True)
            self._stale = True

    async def refresh(self, user_ids: Iterable[int] | None = None) -> None:
        """Re-read the state of these held users (all of them by default) and act on it."""
        async with self._reading:
            wanted = set(self._holders) if user_ids is None else set(user_ids)
            ids = sorted(wanted & set(self._holders))
            if not ids:
                return
            held = {user_id: set(self._holders[user_id]) for user_id in ids}
            families = sorted({h.session for holders in held.values() for h in holders})
            rows, ended = await self._blocking.run(self._read, ids, families)
            for user_id, holders in held.items():
                self._update(user_id, holders, rows.get(user_id), ended)
            if user_ids is None:
                self._stale = False

    def _update(
        self, user_id: int, holders: set[Holder], row: UserState | None, ended: set[str]
    ) -> None:
        before = self._states.get(user_id)
        if user_id in self._holders and row is not None:
            self._states[user_id] = row
        for holder in holders:
            if (
                row is None
                or not row.active
                or row.token_version != holder.token_version
                or holder.session in ended
            ):
                holder.end(Unauthenticated(SESSION_ENDED))
            elif before is not None and before.role is not row.role:
                holder.role_changed()

    def _read(self, ids: list[int], families: list[str]) -> tuple[dict[int, UserState], set[str]]:
        with self._blocking.engine.connect() as conn:
            found = conn.execute(
                select(users.c.id, users.c.role, users.c.is_active, users.c.token_version).where(
                    users.c.id.in_(ids)
                )
            )
            rows = {
                row.id: UserState(Role(row.role), bool(row.is_active), row.token_version)
                for row in found
            }
            revoked = conn.execute(
                select(sessions.c.family_id).where(
                    sessions.c.family_id.in_(families), sessions.c.revoked_at.is_not(None)
                )
            )
            return rows, set(revoked.scalars())

    # -- the process's lifetime ------------------------------------------------------------

    async def run(self, bus: NoticeBus) -> None:
        """Until cancelled: apply notices, and poll where (or while) they cannot arrive."""
        bus.deliver_to(self.apply)
        listener = asyncio.create_task(bus.listen(self.apply, self.refresh))
        try:
            while True:
                await asyncio.sleep(self._poll_seconds)
                if (bus.polls or not bus.healthy or self._stale) and self._holders:
                    try:
                        await self.refresh()
                    except Exception:  # the database is away: keep trying
                        log.warning("could not re-read live users", exc_info=True)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
