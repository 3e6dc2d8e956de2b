"""What a kind of job provides to the worker, and what the worker hands it.

A handler runs the job and keeps its domain's own record (a crawl run, a training) in step
when the queue decides a job's fate without it: ``requeued`` when an attempt ended early and
another will follow, ``failed`` when no attempt is left. Both are called inside the queue's
transaction, so the job and its domain record change together or not at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """One attempt at a job, held by the worker named ``claimed_by``."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    claimed_by: str


class PermanentJobError(Exception):
    """The job cannot succeed however often it is tried: fail it now, without retries."""


class Progress:
    """The latest progress a job reported; safe to report from a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: tuple[float | None, str] | None = None

    def report(self, message: str, fraction: float | None = None) -> None:
        with self._lock:
            self._latest = (fraction, message)

    def take(self) -> tuple[float | None, str] | None:
        """What was reported since the last call (None when nothing was)."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest


class JobHandler(Protocol):
    kind: str

    async def run(self, job: ClaimedJob, progress: Progress) -> None:
        """Do the work; raise to fail this attempt (``PermanentJobError``: every attempt)."""

    async def requeued(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        """An attempt ended without finishing and the job waits for another."""

    async def failed(self, conn: AsyncConnection, payload: dict[str, Any], message: str) -> None:
        """The job failed for good: record why in the domain."""
