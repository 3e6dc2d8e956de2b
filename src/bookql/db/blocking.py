"""Units of database work done whole on a worker thread, for the hottest paths.

Through aiosqlite every DB-API call is a hop to the connection's thread and back (a read is
about eight: begin, cursor, execute, fetch, close, rollback), which costs ~0.6 ms on the
embedded default; the same read on a sync connection in a worker thread costs one hop,
~0.2 ms. Paths taken on nearly every request (checking a caller's token, predictions)
run this way; the rest keep the async engine.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine

from bookql.core.config import Settings
from bookql.db.engine import create_sync_engine

P = ParamSpec("P")
T = TypeVar("T")


class BlockingDatabase:
    """A sync engine and as many threads as it has connections to give them."""

    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="db")

    @classmethod
    def for_settings(cls, settings: Settings) -> BlockingDatabase:
        return cls(create_sync_engine(settings), settings.db_pool_size)

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(*args, **kwargs)`` on a worker thread; it uses ``self.engine`` itself."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(work, *args, **kwargs))

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self.engine.dispose()
