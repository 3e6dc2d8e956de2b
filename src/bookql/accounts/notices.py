"""Change notices about users and sessions, from the process that made a change to all of them.

A notice names a user, and the token version or session that the change ended. Live sockets
and streams act on it (``bookql.accounts.live``) without reading the database per operation.
Notices travel through Redis pub/sub when ``BOOKQL_REDIS_URL`` is set, else through PostgreSQL
``LISTEN/NOTIFY``; the process that publishes also applies a notice at once itself. On SQLite
without Redis notices stay in the process, and the registry polls instead (``polls``).

A listener whose connection drops marks itself unhealthy (the registry polls meanwhile) and,
once reconnected, asks for a re-read of every user with live connections: notices sent while
it was away are lost, the database is not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "bookql_accounts"
LISTENER = "bookql account notices"  # the listener's application_name, as pg_stat_activity shows
# Waits between reconnection attempts of a listener, and how often an idle one checks in.
RETRY_SECONDS = (0.1, 0.5, 1.0)
WAKE_SECONDS = 1.0

NoticeHandler = Callable[["Notice"], Awaitable[None]]
Resync = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Notice:
    """A user changed (role, activity); ``token_version``: tokens below it died; ``session``:
    that session ended."""

    user_id: int
    token_version: int | None = None
    session: str | None = None

    def encode(self) -> str:
        return orjson.dumps([self.user_id, self.token_version, self.session]).decode()

    @classmethod
    def decode(cls, raw: str | bytes) -> Notice | None:
        try:
            user_id, version, session = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return None
        if (
            not isinstance(user_id, int)
            or not isinstance(version, int | None)
            or not isinstance(session, str | None)
        ):
            return None
        return cls(user_id, version, session)


class NoticeBus:
    """Publishes to this process at once and to the others through the transport."""

    polls = False  # True where notices cannot reach other processes

    def __init__(self) -> None:
        self.healthy = True
        self._local: NoticeHandler | None = None

    def deliver_to(self, handler: NoticeHandler) -> None:
        self._local = handler

    async def publish(self, notice: Notice) -> None:
        if self._local is not None:
            await self._local(notice)
        try:
            await self._broadcast(notice.encode())
        except Exception:  # the change is committed; the others' listeners resync or poll
            log.warning("could not publish an account notice", exc_info=True)

    async def _broadcast(self, payload: str) -> None:
        return None

    async def listen(self, handler: NoticeHandler, resync: Resync) -> None:
        """Until cancelled: every notice from other processes to ``handler``."""
        await asyncio.Event().wait()

    async def _reconnecting(self, session: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            try:
                await session()
            except Exception as exc:  # any failure: reconnect
                self.healthy = False
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("account notices lost (%s): reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            else:
                failures = 0


class LocalNotices(NoticeBus):
    """One process only (SQLite without Redis): the registry polls for the others."""

    polls = True


class RedisNotices(NoticeBus):
    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self._redis = redis
        self._reconnected = False

    async def _broadcast(self, payload: str) -> None:
        await self._redis.publish(CHANNEL, payload)

    async def listen(self, handler: NoticeHandler, resync: Resync) -> None:
        async def session() -> None:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                connection: Any = pubsub.connection
                # redis-py reconnects a subscriber silently: each reconnection means a resync
                connection.register_connect_callback(self._on_connect)
                self._reconnected = True
                while True:
                    if self._reconnected:
                        self._reconnected = False
                        await resync()
                        self.healthy = True
                    message = await pubsub.get_message(timeout=WAKE_SECONDS)
                    if message is not None and message.get("type") == "message":
                        notice = Notice.decode(message["data"])
                        if notice is not None:
                            await handler(notice)
            finally:
                await pubsub.aclose()

        await self._reconnecting(session)

    async def _on_connect(self, connection: Any) -> None:
        self._reconnected = True


class PostgresNotices(NoticeBus):
    """``NOTIFY`` through the application's engine, ``LISTEN`` on a connection of its own."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        super().__init__()
        self._engine = engine
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _broadcast(self, payload: str) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(select(func.pg_notify(CHANNEL, payload)))
            await conn.commit()

    async def listen(self, handler: NoticeHandler, resync: Resync) -> None:
        async def session() -> None:
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=5, application_name=LISTENER
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                await resync()
                self.healthy = True
                while True:
                    async for notify in conn.notifies(timeout=WAKE_SECONDS):
                        notice = Notice.decode(notify.payload)
                        if notice is not None:
                            await handler(notice)
                    await conn.execute("SELECT 1")  # a dead connection shows itself here

        await self._reconnecting(session)


def notice_bus(engine: AsyncEngine, redis: Redis | None) -> NoticeBus:
    """Redis when configured (it also reaches processes on other databases' hosts), else
    PostgreSQL's own notifications, else this process alone."""
    if redis is not None:
        return RedisNotices(redis)
    if engine.url.get_backend_name() == "postgresql":
        return PostgresNotices(engine, engine.url)
    return LocalNotices()
