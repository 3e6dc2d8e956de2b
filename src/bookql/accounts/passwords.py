"""argon2id hashing, off the event loop and bounded: it costs tens of milliseconds of CPU.

Hashes are computed on a small pool of threads (``password_hash_concurrency``) that lower
their own scheduling priority, so that a burst of logins takes the CPU the event loop does
not need instead of the CPU it does. A login for an unknown user verifies against a dummy
hash, so that it costs what a real one costs and timing does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bookql.core.config import Settings
from bookql.core.errors import BadUserInput

T = TypeVar("T")
HASHING_NICENESS = 10


def _lower_priority() -> None:
    """Runs in each hashing thread: on Linux a thread has its own nice value."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


class Passwords:
    """One per process: the hasher, its concurrency bound and the dummy hash."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._threads = ThreadPoolExecutor(
            max_workers=settings.password_hash_concurrency,
            thread_name_prefix="argon2",
            initializer=_lower_priority,
        )
        self._dummy: str | None = None

    def check_policy(self, password: str) -> None:
        low, high = self.settings.password_min_length, self.settings.password_max_length
        if not low <= len(password) <= high:
            raise BadUserInput(f"a password has {low} to {high} characters", field="password")
        if not password.strip():
            raise BadUserInput("a password cannot be only spaces", field="password")

    async def _off_loop(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    async def hash(self, password: str) -> str:
        text = _normalise(password)
        return await self._off_loop(lambda: self.hasher.hash(text))

    async def verify(self, password_hash: str, password: str) -> bool:
        text = _normalise(password)
        return await self._off_loop(lambda: self._verify(password_hash, text))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def verify_unknown_user(self, password: str) -> None:
        """Spend one verification on a dummy hash: a miss costs what a hit costs."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _normalise(password: str) -> str:
    """NFKC, so the same password typed on two keyboards is the same password."""
    return unicodedata.normalize("NFKC", password)
