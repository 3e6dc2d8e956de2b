"""Per-user caps on long-running work (subscriptions, exports), shared by every worker.

With ``BOOKQL_REDIS_URL`` a user's running streams of a kind are members of one Redis sorted
set, scored by when their lease lapses: taking a slot drops lapsed members, counts and adds
in one script (atomic, on Redis's clock), a holder renews its lease every third of its
length, and releases it when done. A worker killed mid-stream stops renewing, so its slots
lapse after one lease instead of being lost for good. Without Redis (or while it is
unreachable) slots are counted in process memory.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager, suppress
from enum import StrEnum
from typing import Any, TypeVar

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bookql.core.errors import RateLimited
from bookql.graphql.context import Info

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
T = TypeVar("T")

# KEYS[1] the set; ARGV: limit, member, lease (ms). 1 when the slot was taken.
_TAKE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
# KEYS[1] the set; ARGV: member, lease (ms).
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class Kind(StrEnum):
    STREAM = "stream"  # a subscription, over WebSocket, SSE or multipart
    EXPORT = "export"  # a download from /export/training-data


class UserSlots:
    def __init__(
        self,
        redis: Redis | None,
        limits: dict[Kind, int],
        lease_seconds: float,
        prefix: str = "bookql:slots:",
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.lease_ms = int(lease_seconds * 1000)
        self.prefix = prefix
        self.local: Counter[tuple[Kind, int]] = Counter()

    @asynccontextmanager
    async def hold(self, kind: Kind, user_id: int) -> AsyncIterator[None]:
        """One of the user's slots of ``kind`` while the block runs; ``RATE_LIMITED`` when
        they are all taken."""
        limit = self.limits[kind]
        key = f"{self.prefix}{kind.value}:{user_id}"
        member = uuid.uuid4().hex
        shared = await self._take_shared(key, member, limit)
        if shared is None:  # no Redis, or unreachable: this process's count
            if self.local[kind, user_id] >= limit:
                raise _refusal(kind, limit)
            self.local[kind, user_id] += 1
            try:
                yield
            finally:
                self.local[kind, user_id] -= 1
                if self.local[kind, user_id] <= 0:
                    del self.local[kind, user_id]
            return
        if not shared:
            raise _refusal(kind, limit)
        renewal = asyncio.create_task(self._renew(key, member))
        try:
            yield
        finally:
            renewal.cancel()
            # Starlette cancels a stream whose client left at every await: shielded, so
            # the slot is handed back now rather than when its lease lapses.
            with anyio.CancelScope(shield=True):
                with suppress(asyncio.CancelledError):
                    await renewal
                await self._release(key, member)

    async def _take_shared(self, key: str, member: str, limit: int) -> bool | None:
        if self.redis is None:
            return None
        try:
            taken = await self.redis.eval(_TAKE, 1, key, limit, member, self.lease_ms)
        except (RedisError, OSError) as exc:
            log.warning("Redis unreachable, stream limits per process: %s", type(exc).__name__)
            return None
        return bool(taken)

    async def _renew(self, key: str, member: str) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.redis.eval(_RENEW, 1, key, member, self.lease_ms)
            except (RedisError, OSError) as exc:
                log.warning("could not renew a stream slot: %s", type(exc).__name__)

    async def _release(self, key: str, member: str) -> None:
        assert self.redis is not None
        try:
            await self.redis.zrem(key, member)
        except (RedisError, OSError) as exc:  # the lease lapses by itself
            log.warning("could not release a stream slot: %s", type(exc).__name__)


def _refusal(kind: Kind, limit: int) -> RateLimited:
    what = "subscriptions" if kind is Kind.STREAM else "exports"
    error = RateLimited(
        f"you already run {limit} {what} at once, the most allowed: finish one first",
        retry_after=RETRY_AFTER_SECONDS,
    )
    error.extensions["limit"] = limit
    return error


def per_user_stream(
    resolver: Callable[..., AsyncGenerator[T, None]],
) -> Callable[..., AsyncGenerator[T, None]]:
    """A subscription resolver that holds one of its caller's stream slots while it runs
    (the app's :class:`UserSlots`, kept in ``app.state.user_slots``)."""

    @functools.wraps(resolver)
    async def limited(self: Any, info: Info, *args: Any, **kwargs: Any) -> AsyncGenerator[T, None]:
        viewer = await info.context.auth.require_user()
        slots: UserSlots = info.context.request.app.state.user_slots
        async with (
            slots.hold(Kind.STREAM, viewer.user_id),
            aclosing(resolver(self, info, *args, **kwargs)) as items,
        ):
            async for item in items:
                yield item

    return limited
