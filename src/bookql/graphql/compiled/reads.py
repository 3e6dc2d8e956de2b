"""The domains' reads, written for the async engine, run whole on a sync connection.

Catalogue reads (``queries``, ``stats``, keyset pages) are coroutines whose only suspension
is ``await conn.execute(...)``. Given a connection whose ``execute`` returns at once, such a
coroutine completes on its first step, so a compiled plan runs the very same statements on
a worker thread (one thread hop for a whole request) instead of copying them.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import Connection, Result
from sqlalchemy.sql import Executable

T = TypeVar("T")


class SyncReads:
    """A sync connection presented as the ``AsyncConnection`` that reads expect."""

    __slots__ = ("dialect", "sync_connection")

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        return self.sync_connection.execute(statement, parameters)


def complete(work: Coroutine[Any, Any, T]) -> T:
    """The value of a coroutine that never really suspends; refuses one that does."""
    try:
        work.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    work.close()
    raise RuntimeError("a compiled read awaited something other than its connection")
