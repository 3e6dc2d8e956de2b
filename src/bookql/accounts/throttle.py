"""Brute-force protection for ``login``, without handing anyone a way to lock others out.

Failed logins are counted three ways over a sliding window:

* per username *and* address: a tight limit that refuses that pair only, so a guesser
  elsewhere cannot lock the real user out;
* per address across usernames: refuses one address that sprays many accounts;
* per username across addresses: a far higher threshold past which every attempt for that
  username is *delayed*, never refused, to slow guessing spread over many addresses.

Only failures count. An attempt holds an in-flight slot on its two limits while its password
is checked, so parallel guesses cannot outrun a limit; an attempt that finds the limit full
of attempts in flight waits for them to finish rather than being refused, so a correct
password is never turned away for others' attempts in flight, only for counted failures. A
success clears its pair's failures.

Counters live in Redis when ``BOOKQL_REDIS_URL`` is set (shared by every worker, each step
one Lua script, so atomic) and in process memory otherwise, or while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bookql.core.errors import RateLimited

log = logging.getLogger("bookql.accounts.throttle")

# An in-flight slot lapses after this long, in case its process died before giving it back.
HOLD_SECONDS = 30.0
# How long an attempt waits for others in flight to finish before giving up.
WAIT_SECONDS = 10.0
# Its first look again comes soon (a password check takes tens of milliseconds), later ones
# less often, so that a flood of parallel attempts does not become a flood of look-ups.
FIRST_POLL_SECONDS = 0.02
LAST_POLL_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Limit:
    key: str
    maximum: int
    counts: str  # what the failures are, for the refusal's message


class Outcome(StrEnum):
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    ABANDONED = "abandoned"  # neither: an error unrelated to the password, or a cancellation


@dataclass(frozen=True, slots=True)
class Refused:
    limit: int  # index into the limits
    failures: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class Busy:
    in_flight: int


@dataclass(frozen=True, slots=True)
class Admitted:
    user_failures: int


Verdict = Refused | Busy | Admitted


class AttemptStore(Protocol):
    async def begin(
        self, attempt: str, limits: Sequence[Limit], user_key: str, window: float
    ) -> Verdict:
        """Refuse, ask to wait, or admit the attempt and hold a slot on every limit."""

    async def end(
        self,
        attempt: str,
        limits: Sequence[Limit],
        user_key: str,
        user_cap: int,
        window: float,
        outcome: Outcome,
    ) -> None:
        """Give the slots back; count a failure on every limit and the username, or clear
        the first limit (the pair) on success."""


class MemoryAttempts:
    """The same bookkeeping in dicts: per process, gone on restart."""

    def __init__(self) -> None:
        self._failures: dict[str, dict[str, float]] = {}
        self._in_flight: dict[str, dict[str, float]] = {}

    async def begin(
        self, attempt: str, limits: Sequence[Limit], user_key: str, window: float
    ) -> Verdict:
        now = time.monotonic()
        busy = 0
        for index, limit in enumerate(limits):
            failures = self._live(self._failures, limit.key, now - window)
            if len(failures) >= limit.maximum:
                oldest = sorted(failures.values())[-limit.maximum]
                return Refused(index, len(failures), oldest + window - now)
            in_flight = self._live(self._in_flight, limit.key, now)
            if len(failures) + len(in_flight) >= limit.maximum:
                busy = max(busy, len(in_flight))
        if busy:
            return Busy(busy)
        for limit in limits:
            self._in_flight.setdefault(limit.key, {})[attempt] = now + HOLD_SECONDS
        return Admitted(len(self._live(self._failures, user_key, now - window)))

    async def end(
        self,
        attempt: str,
        limits: Sequence[Limit],
        user_key: str,
        user_cap: int,
        window: float,
        outcome: Outcome,
    ) -> None:
        now = time.monotonic()
        for limit in limits:
            self._in_flight.get(limit.key, {}).pop(attempt, None)
        if outcome is Outcome.FAILED:
            for key, cap in [(limit.key, limit.maximum) for limit in limits] + [
                (user_key, user_cap)
            ]:
                failures = self._failures.setdefault(key, {})
                failures[attempt] = now
                for stale in sorted(failures, key=failures.__getitem__)[:-cap]:
                    del failures[stale]
        elif outcome is Outcome.SUCCEEDED and limits:
            self._failures.pop(limits[0].key, None)
        if len(self._failures) + len(self._in_flight) > 100_000:
            self._forget(now, window)

    @staticmethod
    def _live(table: dict[str, dict[str, float]], key: str, after: float) -> dict[str, float]:
        entries = table.get(key, {})
        for stale in [member for member, score in entries.items() if score <= after]:
            del entries[stale]
        return entries

    def _forget(self, now: float, window: float) -> None:
        for table, after in ((self._failures, now - window), (self._in_flight, now)):
            for key in list(table):
                if not self._live(table, key, after):
                    del table[key]


# KEYS: failures and in-flight sets of each limit in turn, then the username's failures.
# ARGV: attempt id, window ms, hold ms, then each limit's maximum.
_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, hold = tonumber(ARGV[2]), tonumber(ARGV[3])
local limits = (#KEYS - 1) / 2
local busy = 0
for i = 1, limits do
  local failed, flying, maximum = KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[3 + i])
  redis.call('ZREMRANGEBYSCORE', failed, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', flying, '-inf', now)
  local failures = redis.call('ZCARD', failed)
  if failures >= maximum then
    local oldest = redis.call('ZRANGE', failed, -maximum, -maximum, 'WITHSCORES')
    return {'refused', i - 1, failures, tonumber(oldest[2]) + window - now}
  end
  local in_flight = redis.call('ZCARD', flying)
  if failures + in_flight >= maximum and in_flight > busy then busy = in_flight end
end
if busy > 0 then return {'busy', busy} end
for i = 1, limits do
  redis.call('ZADD', KEYS[2 * i], now + hold, ARGV[1])
  redis.call('PEXPIRE', KEYS[2 * i], hold)
end
local user = KEYS[#KEYS]
redis.call('ZREMRANGEBYSCORE', user, '-inf', now - window)
return {'admitted', redis.call('ZCARD', user)}
"""

# KEYS: as for _BEGIN. ARGV: attempt id, outcome, window ms, the username's cap, then each
# limit's maximum (a set keeps only its newest ``maximum`` failures: enough to decide).
_END = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local limits = (#KEYS - 1) / 2
for i = 1, limits do redis.call('ZREM', KEYS[2 * i], ARGV[1]) end
if ARGV[2] == 'failed' then
  local function count(key, cap)
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
    redis.call('PEXPIRE', key, window)
  end
  for i = 1, limits do count(KEYS[2 * i - 1], tonumber(ARGV[4 + i])) end
  count(KEYS[#KEYS], tonumber(ARGV[4]))
elseif ARGV[2] == 'succeeded' and limits > 0 then
  redis.call('DEL', KEYS[1])
end
return 1
"""


class RedisAttempts:
    """The bookkeeping in Redis sorted sets, one Lua script per step; process memory while
    Redis is unreachable."""

    def __init__(self, client: Redis, prefix: str = "bookql:login:") -> None:
        self._client = client
        self._prefix = prefix
        self._begin = client.register_script(_BEGIN)
        self._end = client.register_script(_END)
        self._fallback = MemoryAttempts()
        self._local: set[str] = set()  # attempts admitted by the fallback

    def _keys(self, limits: Sequence[Limit], user_key: str) -> list[str]:
        keys = []
        for limit in limits:
            keys += [f"{self._prefix}failed:{limit.key}", f"{self._prefix}flying:{limit.key}"]
        return [*keys, f"{self._prefix}failed:{user_key}"]

    async def begin(
        self, attempt: str, limits: Sequence[Limit], user_key: str, window: float
    ) -> Verdict:
        maxima = [limit.maximum for limit in limits]
        args: list[str | int] = [attempt, int(window * 1000), int(HOLD_SECONDS * 1000), *maxima]
        try:
            reply = await self._begin(keys=self._keys(limits, user_key), args=args)
        except (RedisError, OSError) as exc:
            log.warning("Redis unreachable, login throttling per process: %s", type(exc).__name__)
            verdict = await self._fallback.begin(attempt, limits, user_key, window)
            if isinstance(verdict, Admitted):
                self._local.add(attempt)
            return verdict
        kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if kind == "refused":
            return Refused(int(reply[1]), int(reply[2]), int(reply[3]) / 1000)
        if kind == "busy":
            return Busy(int(reply[1]))
        return Admitted(int(reply[1]))

    async def end(
        self,
        attempt: str,
        limits: Sequence[Limit],
        user_key: str,
        user_cap: int,
        window: float,
        outcome: Outcome,
    ) -> None:
        if attempt in self._local:
            self._local.discard(attempt)
            await self._fallback.end(attempt, limits, user_key, user_cap, window, outcome)
            return
        maxima = [limit.maximum for limit in limits]
        args: list[str | int] = [attempt, outcome.value, int(window * 1000), user_cap, *maxima]
        try:
            await self._end(keys=self._keys(limits, user_key), args=args)
        except (RedisError, OSError) as exc:
            # the slots lapse by themselves; the failure goes uncounted in Redis, so count
            # it here, where this process's later attempts will see it
            log.warning("Redis unreachable, login outcome kept per process: %s", type(exc).__name__)
            await self._fallback.end(attempt, limits, user_key, user_cap, window, outcome)


class Attempt:
    """One login attempt admitted by the throttle; the caller says how it went."""

    def __init__(self) -> None:
        self.outcome = Outcome.ABANDONED

    def failed(self) -> None:
        self.outcome = Outcome.FAILED

    def succeeded(self) -> None:
        self.outcome = Outcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    per_user_and_address: int
    per_address: int
    slowdown_per_user: int
    slowdown_seconds: float
    window_seconds: int


class LoginThrottle:
    def __init__(self, store: AttemptStore, settings: ThrottleSettings) -> None:
        self._store = store
        self._settings = settings

    def _limits(self, username: str, address: str | None) -> list[Limit]:
        s = self._settings
        window = _duration(s.window_seconds)
        pair = Limit(
            f"pair:{address or '-'}|{username}",
            s.per_user_and_address,
            f"failed logins for this username from your address in the last {window}",
        )
        if not address:
            return [pair]
        spread = Limit(
            f"addr:{address}",
            s.per_address,
            f"failed logins from your address in the last {window}",
        )
        return [pair, spread]

    @asynccontextmanager
    async def attempt(self, username: str, address: str | None) -> AsyncIterator[Attempt]:
        """Admit one attempt (waiting for attempts in flight if its limits are full of
        them), or refuse it with ``RATE_LIMITED`` saying which failures it counted."""
        s = self._settings
        limits = self._limits(username, address)
        user_key = f"user:{username}"
        attempt_id = uuid.uuid4().hex
        deadline = time.monotonic() + WAIT_SECONDS
        pause = FIRST_POLL_SECONDS
        while True:
            verdict = await self._store.begin(attempt_id, limits, user_key, s.window_seconds)
            if isinstance(verdict, Admitted):
                break
            if isinstance(verdict, Refused):
                retry = max(1, math.ceil(verdict.retry_after))
                counted = f"{verdict.failures} {limits[verdict.limit].counts}"
                raise RateLimited(f"{counted}: try again in {retry} s", retry_after=retry)
            if time.monotonic() >= deadline:
                raise RateLimited(
                    f"{verdict.in_flight} other login attempts for this username or from your "
                    "address are still being checked: try again in 1 s",
                    retry_after=1,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_POLL_SECONDS)
        attempt = Attempt()
        try:
            if verdict.user_failures >= s.slowdown_per_user:
                log.info(
                    "login slowed: %d failures for one username from many addresses",
                    verdict.user_failures,
                )
                await asyncio.sleep(s.slowdown_seconds)
            yield attempt
        finally:
            await asyncio.shield(
                self._store.end(
                    attempt_id,
                    limits,
                    user_key,
                    s.slowdown_per_user,
                    s.window_seconds,
                    attempt.outcome,
                )
            )


def _duration(seconds: int) -> str:
    if seconds % 60 == 0 and seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} s"
