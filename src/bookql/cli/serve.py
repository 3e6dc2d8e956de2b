"""The long-running processes: ``bookql serve`` (the API) and ``bookql worker`` (the jobs)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from bookql.cli.common import BEHIND, async_engine, setup_logging
from bookql.core.config import get_settings
from bookql.core.errors import StartupError
from bookql.core.logs import logging_config
from bookql.db.engine import check_connection, create_sync_engine

log = logging.getLogger("bookql.cli")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)


@contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, prometheus-client's multiprocess mode needs a directory they
    share (``PROMETHEUS_MULTIPROC_DIR``): the operator's, emptied of a previous run's
    samples, or a temporary one removed afterwards."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if workers == 1 and not given:
        yield
        return
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bookql-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # the workers inherit it
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve GraphQL at /graphql (migrating and seeding an empty database first)."""
    from bookql.server.prepare import prepare_database

    settings = get_settings()
    setup_logging(settings)
    settings.check_production()
    report = prepare_database(settings)
    for line in report:
        log.info(line)
    if settings.jobs_in_server:
        log.info("queued jobs (crawls, trainings): run by this server")
    else:
        log.info("queued jobs (crawls, trainings): run by `bookql worker`")
    typer.echo(f"bookql: serving http://{host}:{port}/graphql", err=True)
    with _metrics_directory(workers):
        uvicorn.run(
            "bookql.server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(settings.log_level, settings.log_format),
            log_level=settings.log_level.lower(),
            access_log=False,  # bookql.access logs each request, with its request id
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs at once (default: BOOKQL_JOB_CONCURRENCY)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run the jobs due now, then exit.")] = False,
) -> None:
    """Run queued jobs (crawls, trainings) until SIGTERM or SIGINT.

    The first signal stops claiming and lets running jobs finish for
    BOOKQL_JOB_SHUTDOWN_GRACE_SECONDS, then gives them back to the queue; a second signal
    gives them back at once.
    """
    from bookql.db.migrate import is_at_head
    from bookql.server.job_kinds import build_worker

    settings = get_settings()
    settings.check_production()
    engine = create_sync_engine(settings)
    check_connection(engine)
    at_head = is_at_head(engine)
    engine.dispose()
    if not at_head:
        raise StartupError(BEHIND)
    setup_logging(settings)

    async def run() -> None:
        async with async_engine(settings) as engine:
            jobs = build_worker(settings, engine, concurrency=concurrency)
            signals = 0

            def on_signal() -> None:
                nonlocal signals
                signals += 1
                jobs.stop(now=signals > 1)

            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, on_signal)
            await jobs.run(once=once)

    asyncio.run(run())
