"""Brute-force protection for ``login``: failures counted per username and per client address.

An attempt takes its slot *before* the password is checked, so a hundred aliased ``login``
fields in one request are a hundred attempts, not one; a success gives its slots back and
clears the username's count. Counters live in Redis when ``BOOKQL_REDIS_URL`` is set (shared
by every worker) and in process memory otherwise, or while Redis is unreachable.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("bookql.accounts.throttle")


@dataclass(frozen=True, slots=True)
class Limit:
    key: str
    maximum: int


class CounterStore(Protocol):
    async def increment(self, key: str, window_seconds: int) -> tuple[int, float]:
        """Add one; return the new count and the seconds until the window ends."""

    async def decrement(self, key: str) -> None: ...

    async def reset(self, key: str) -> None: ...


class MemoryCounters:
    """Fixed windows in a dict: per process, gone on restart."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def increment(self, key: str, window_seconds: int) -> tuple[int, float]:
        now = time.monotonic()
        count, ends = self._counts.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_seconds
        self._counts[key] = (count + 1, ends)
        if len(self._counts) > 100_000:
            self._forget_expired(now)
        return count + 1, ends - now

    async def decrement(self, key: str) -> None:
        if key in self._counts:
            count, ends = self._counts[key]
            self._counts[key] = (max(count - 1, 0), ends)

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (_, ends) in self._counts.items() if ends <= now]:
            del self._counts[key]


class RedisCounters:
    """Fixed windows in Redis (INCR + EXPIRE NX), falling back to memory while it is down."""

    def __init__(self, client: Redis, prefix: str = "bookql:login:") -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = MemoryCounters()

    async def increment(self, key: str, window_seconds: int) -> tuple[int, float]:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(self._prefix + key)
                pipe.expire(self._prefix + key, window_seconds, nx=True)
                pipe.pttl(self._prefix + key)
                count, _, ttl_ms = await pipe.execute()
            return int(count), max(int(ttl_ms), 0) / 1000
        except (RedisError, OSError) as exc:
            log.warning("Redis unreachable, login throttling per process: %s", type(exc).__name__)
            return await self._fallback.increment(key, window_seconds)

    async def decrement(self, key: str) -> None:
        try:
            await self._client.decr(self._prefix + key)
        except (RedisError, OSError):
            await self._fallback.decrement(key)

    async def reset(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except (RedisError, OSError):
            await self._fallback.reset(key)


class LoginThrottle:
    def __init__(
        self,
        store: CounterStore,
        *,
        per_user: int,
        per_address: int,
        window_seconds: int,
    ) -> None:
        self._store = store
        self._per_user = per_user
        self._per_address = per_address
        self._window = window_seconds

    def _limits(self, username: str, address: str | None) -> list[Limit]:
        limits = [Limit(f"user:{username}", self._per_user)]
        if address:
            limits.append(Limit(f"addr:{address}", self._per_address))
        return limits

    async def acquire(self, username: str, address: str | None) -> int | None:
        """Take a slot for one attempt; ``None`` if allowed, else seconds until retrying helps."""
        retry_after: float | None = None
        limits = self._limits(username, address)
        for limit in limits:
            count, remaining = await self._store.increment(limit.key, self._window)
            if count > limit.maximum:
                retry_after = max(retry_after or 0.0, remaining)
        if retry_after is None:
            return None
        # A refused attempt checks no password, so it must not count: otherwise a burst of
        # correct logins from one address (an office behind NAT) would lock it out for the
        # whole window once the slots taken in flight came back.
        for limit in limits:
            await self._store.decrement(limit.key)
        return max(1, math.ceil(retry_after))

    async def succeeded(self, username: str, address: str | None) -> None:
        """A correct password: clear the username, give the address its slot back."""
        await self._store.reset(f"user:{username}")
        if address:
            await self._store.decrement(f"addr:{address}")
