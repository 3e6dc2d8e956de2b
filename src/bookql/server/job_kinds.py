"""The kinds of job bookql runs, and a worker for them: the one place jobs meet the domains."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.config import Settings
from bookql.crawls.job import CrawlJob
from bookql.jobs.handler import JobHandler
from bookql.jobs.queue import JobQueue
from bookql.jobs.worker import Worker
from bookql.ml.job import TrainingJob


def job_handlers(
    settings: Settings,
    engine: AsyncEngine,
    *,
    model_activated: Callable[[], None] | None = None,
) -> dict[str, JobHandler]:
    handlers: list[JobHandler] = [
        CrawlJob(settings, engine),
        TrainingJob(settings, engine, activated=model_activated),
    ]
    return {handler.kind: handler for handler in handlers}


def build_worker(
    settings: Settings,
    engine: AsyncEngine,
    *,
    concurrency: int | None = None,
    model_activated: Callable[[], None] | None = None,
) -> Worker:
    """A worker for every kind, configured by the ``BOOKQL_JOB_*`` settings."""
    return Worker(
        JobQueue.for_settings(engine, settings),
        job_handlers(settings, engine, model_activated=model_activated),
        concurrency=concurrency or settings.job_concurrency,
        poll_seconds=settings.job_poll_seconds,
        grace_seconds=settings.job_shutdown_grace_seconds,
        retention=retention(settings),
    )


def retention(settings: Settings) -> timedelta | None:
    """How long finished jobs are kept; None keeps them all."""
    days = settings.job_retention_days
    return timedelta(days=days) if days else None
