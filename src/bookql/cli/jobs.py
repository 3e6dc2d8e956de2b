"""``bookql jobs``: the queue of crawls and trainings, seen and fed from the shell."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.cli.common import async_engine, echo_outcome, migrated_settings
from bookql.core.config import Settings

jobs_app = typer.Typer(help="Queued jobs: crawls and trainings.", no_args_is_help=True)
enqueue_app = typer.Typer(help="Queue a job for a worker.", no_args_is_help=True)
jobs_app.add_typer(enqueue_app, name="enqueue")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The newest jobs: kind, status, attempts, progress and the last error."""
    from bookql.jobs.queue import recent_jobs

    settings = migrated_settings()

    async def run() -> list[str]:
        async with async_engine(settings) as engine:
            rows = await recent_jobs(engine, limit)
        lines = []
        for row in rows:
            done = f" {row.progress:.0%}" if row.progress is not None else ""
            note = row.error if row.status == "FAILED" else row.progress_message or row.error
            lines.append(
                f"{row.id:>6}  {row.kind:<6} {row.status:<9} {row.attempts}/{row.max_attempts}"
                f"{done}  {row.created_at:%Y-%m-%d %H:%M:%S}  {note or ''}".rstrip()
            )
        return lines

    lines = asyncio.run(run())
    typer.echo("\n".join(lines) if lines else "no jobs yet")


@jobs_app.command("prune")
def jobs_prune(
    older_than_days: Annotated[
        float | None,
        typer.Option(min=0, help="Default: BOOKQL_JOB_RETENTION_DAYS."),
    ] = None,
) -> None:
    """Delete finished jobs (succeeded or failed) older than the retention, now."""
    from datetime import timedelta

    from bookql.jobs.queue import JobQueue

    async def prune(settings: Settings, engine: AsyncEngine) -> str:
        days = settings.job_retention_days if older_than_days is None else older_than_days
        pruned = await JobQueue.for_settings(engine, settings).prune(timedelta(days=days))
        return f"deleted {pruned} finished job(s) older than {days:g} day(s)"

    _change(prune)


def _change(work: Callable[[Settings, AsyncEngine], Awaitable[str]]) -> None:
    """Run one change to the queue; an expected refusal (one at a time, bad URL) exits 1."""
    settings = migrated_settings()

    async def run() -> str:
        async with async_engine(settings) as engine:
            return await work(settings, engine)

    echo_outcome(run)


@enqueue_app.command("crawl")
def enqueue_crawl(
    start_url: Annotated[
        str | None, typer.Option(help="Default: BOOKQL_CRAWL_START_URL; host must be allowed.")
    ] = None,
) -> None:
    """Queue a crawl (as `startCrawl` does): for a schedule, e.g. cron or a timer."""
    from bookql.crawls.launcher import CrawlLauncher

    async def queue(settings: Settings, engine: AsyncEngine) -> str:
        run = await CrawlLauncher(settings, engine).start(start_url, None)
        return f"queued crawl run {run.id} (job {run.job_id}): {run.start_url}"

    _change(queue)


@enqueue_app.command("train")
def enqueue_train(
    activate: Annotated[bool, typer.Option("--activate", help="Serve the new version.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model).")] = 42,
) -> None:
    """Queue a training (as `trainModel` does)."""
    from bookql.ml.training_runs import queue_training

    async def queue(settings: Settings, engine: AsyncEngine) -> str:
        row = await queue_training(
            engine,
            seed=seed,
            activate=activate,
            requested_by=None,
            max_attempts=settings.job_max_attempts,
        )
        return f"queued training of model {row.version}"

    _change(queue)
