"""Wiring the accounts service of a process from its settings."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.accounts.notices import NoticeBus
from bookql.accounts.passwords import Passwords
from bookql.accounts.service import Accounts
from bookql.accounts.throttle import (
    AttemptStore,
    LoginThrottle,
    MemoryAttempts,
    RedisAttempts,
    ThrottleSettings,
)
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
    store: AttemptStore = RedisAttempts(redis) if redis is not None else MemoryAttempts()
    throttle = LoginThrottle(
        store,
        ThrottleSettings(
            per_user_and_address=settings.login_max_failures_per_user_and_address,
            per_address=settings.login_max_failures_per_address,
            slowdown_per_user=settings.login_slowdown_failures_per_user,
            slowdown_seconds=settings.login_slowdown_seconds,
            window_seconds=settings.login_failure_window_seconds,
        ),
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
