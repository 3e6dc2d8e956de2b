"""Wiring the accounts service of a process from its settings."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.accounts.notices import NoticeBus
from bookql.accounts.passwords import Passwords
from bookql.accounts.service import Accounts
from bookql.accounts.throttle import CounterStore, LoginThrottle, MemoryCounters, RedisCounters
from bookql.accounts.tokens import TokenCodec
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase


def build_accounts(
    settings: Settings,
    engine: AsyncEngine,
    redis: Redis | None,
    blocking: BlockingDatabase,
    notices: NoticeBus | None = None,
) -> Accounts:
    store: CounterStore = RedisCounters(redis) if redis is not None else MemoryCounters()
    throttle = LoginThrottle(
        store,
        per_user=settings.login_max_failures_per_user,
        per_address=settings.login_max_failures_per_address,
        window_seconds=settings.login_failure_window_seconds,
    )
    return Accounts(
        engine,
        Passwords(settings),
        TokenCodec(settings),
        throttle,
        blocking=blocking,
        registration_open=settings.registration_open,
        notices=notices,
    )
