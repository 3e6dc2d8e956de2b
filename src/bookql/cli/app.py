"""Commands: serve, worker, jobs, db, seed, users, train, models, export, export-schema."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.config import Settings, get_settings
from bookql.core.errors import StartupError
from bookql.core.logs import configure_logging, logging_config
from bookql.db.engine import check_connection, create_sync_engine, database_url
from bookql.db.urls import redact

if TYPE_CHECKING:  # pandas loads only when a command needs it: `bookql --help` stays quick
    import pandas as pd

app = typer.Typer(
    name="bookql",
    help="The books.toscrape.com catalogue over GraphQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
models_app = typer.Typer(help="Price model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
export_app = typer.Typer(help="Bulk data to files.", no_args_is_help=True)
app.add_typer(export_app, name="export")
jobs_app = typer.Typer(help="Queued jobs: crawls and trainings.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
enqueue_app = typer.Typer(help="Queue a job for a worker.", no_args_is_help=True)
jobs_app.add_typer(enqueue_app, name="enqueue")

log = logging.getLogger("bookql.cli")


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve GraphQL at /graphql (migrating and seeding an empty database first)."""
    from bookql.db.prepare import prepare_database

    settings = get_settings()
    _setup_logging(settings)
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
            "bookql.api.app:create_app",
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


@app.command()
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
    from bookql.db.engine import create_async_db_engine
    from bookql.db.migrate import is_at_head
    from bookql.jobs.kinds import build_worker

    settings = get_settings()
    settings.check_production()
    engine = create_sync_engine(settings)
    check_connection(engine)
    at_head = is_at_head(engine)
    engine.dispose()
    if not at_head:
        raise StartupError("the database schema is behind: run `bookql db upgrade`")
    _setup_logging(settings)

    async def run() -> None:
        engine = create_async_db_engine(settings)
        jobs = build_worker(settings, engine, concurrency=concurrency)
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            jobs.stop(now=signals > 1)

        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, on_signal)
        try:
            await jobs.run(once=once)
        finally:
            await engine.dispose()

    asyncio.run(run())


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The newest jobs: kind, status, attempts, progress and the last error."""
    from bookql.db.engine import create_async_db_engine
    from bookql.jobs.queue import recent_jobs

    settings = get_settings()
    check_connection(create_sync_engine(settings))

    async def run() -> list[str]:
        engine = create_async_db_engine(settings)
        try:
            rows = await recent_jobs(engine, limit)
        finally:
            await engine.dispose()
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

    from bookql.db.engine import create_async_db_engine
    from bookql.jobs.queue import JobQueue

    settings = get_settings()
    check_connection(create_sync_engine(settings))
    days = settings.job_retention_days if older_than_days is None else older_than_days

    async def run() -> str:
        engine = create_async_db_engine(settings)
        try:
            pruned = await JobQueue.for_settings(engine, settings).prune(timedelta(days=days))
        finally:
            await engine.dispose()
        return f"deleted {pruned} finished job(s) older than {days:g} day(s)"

    _echo_outcome(run)


def _echo_outcome(run: Callable[[], Coroutine[Any, Any, str]]) -> None:
    """Print what ``run`` reports; an expected refusal is printed to stderr and exits 1."""
    from bookql.api.errors import BookQLError

    try:
        typer.echo(asyncio.run(run()))
    except BookQLError as exc:
        typer.echo(f"bookql: error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


def _queue(work: Callable[[Settings, AsyncEngine], Awaitable[str]]) -> None:
    """Run one queuing call; an expected refusal (one at a time, bad URL) exits with 1."""
    from bookql.db.engine import create_async_db_engine

    settings = get_settings()
    check_connection(create_sync_engine(settings))

    async def run() -> str:
        engine = create_async_db_engine(settings)
        try:
            return await work(settings, engine)
        finally:
            await engine.dispose()

    _echo_outcome(run)


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

    _queue(queue)


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

    _queue(queue)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the migrations up to REVISION (default: head)."""
    from bookql.db.migrate import upgrade

    settings = get_settings()
    engine = create_sync_engine(settings)
    check_connection(engine)
    upgrade(engine, revision)
    typer.echo(f"{redact(database_url(settings))}: migrated to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from bookql.db.migrate import current_revision, head_revision

    engine = create_sync_engine(get_settings())
    check_connection(engine)
    with engine.connect() as conn:
        current = current_revision(conn)
    typer.echo(f"current: {current or '(empty)'}\nhead:    {head_revision()}")


@app.command()
def seed() -> None:
    """Insert the bundled snapshot's missing books; never overwrites crawled data."""
    from bookql.catalog.seed import seed_catalog
    from bookql.db.engine import create_async_db_engine

    settings = get_settings()
    check_connection(create_sync_engine(settings))

    async def run() -> None:
        engine = create_async_db_engine(settings)
        try:
            result = await seed_catalog(engine)
        finally:
            await engine.dispose()
        typer.echo(
            f"seeded {result.inserted} new books "
            f"({result.total_in_snapshot - result.inserted} already stored)"
        )

    asyncio.run(run())


def _read_password() -> str:
    """From a hidden prompt (typed twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
) -> None:
    """Create a user; the password is read from a prompt or stdin, never from arguments."""
    from bookql.accounts.setup import build_accounts
    from bookql.accounts.tables import Role
    from bookql.db.blocking import BlockingDatabase
    from bookql.db.engine import create_async_db_engine

    settings = get_settings()
    check_connection(create_sync_engine(settings))
    password = _read_password()

    async def run() -> str:
        engine = create_async_db_engine(settings)
        blocking = BlockingDatabase.for_settings(settings)
        try:
            accounts = build_accounts(settings, engine, None, blocking)
            role = Role.ADMIN if admin else Role.USER
            row = await accounts.create_user(username, password, email=email, role=role)
            return f"created {role.value.lower()} {row.username}"
        finally:
            blocking.close()
            await engine.dispose()

    _echo_outcome(run)


@app.command()
def train(
    activate: Annotated[bool, typer.Option("--activate", help="Serve the new version.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model).")] = 42,
) -> None:
    """Train a price model on the current catalogue into the models directory."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bookql.db.engine import create_async_db_engine
    from bookql.ml.features import load_training_set
    from bookql.ml.price_model import train_price_model
    from bookql.ml.store import BrokenVersion, ModelStore

    settings = get_settings()
    check_connection(create_sync_engine(settings))

    async def load() -> tuple[pd.DataFrame, list[str]]:
        engine = create_async_db_engine(settings)
        try:
            return await load_training_set(engine)
        finally:
            await engine.dispose()

    frame, categories = asyncio.run(load())
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("loading", total=1.0)

        def report(what: str, done: float) -> None:
            progress.update(task, description=what, completed=done)

        try:
            trained = train_price_model(frame, categories, seed=seed, progress=report)
        except ValueError as exc:
            typer.echo(f"bookql: error: {exc}", err=True)
            raise typer.Exit(code=1) from None
    store = ModelStore(settings.effective_models_dir)
    model = store.save(trained)
    if activate:
        try:
            store.activate(model.version)
        except BrokenVersion as exc:
            typer.echo(
                f"bookql: error: model {model.version} was saved, not activated: {exc}", err=True
            )
            raise typer.Exit(code=1) from None
    m = trained.metrics
    typer.echo(
        f"model {model.version}{' (active)' if activate else ''}: "
        f"MAE {m['model']['mae']:.2f} GBP vs {m['baseline_mean']['mae']:.2f} (mean price) and "
        f"{m['baseline_category_mean']['mae']:.2f} (category mean); "
        f"{m['interval']['level']:.0%} interval ±{m['interval']['half_width']:.2f}, "
        f"coverage {m['interval']['test_coverage']:.1%}\n  {model.path}"
    )


@models_app.command("list")
def models_list() -> None:
    """The stored model versions, newest first; * marks the active one, ! a damaged one."""
    from bookql.ml.store import ModelStore, StoredModel

    store = ModelStore(get_settings().effective_models_dir)
    alias = store.alias()
    if alias.problem is not None:
        typer.echo(f"bookql: warning: {alias.problem}", err=True)
    versions = store.versions()
    if not versions:
        typer.echo("no models yet: run `bookql train`")
    for model in versions:
        active = model.version == alias.version
        mae = f"MAE {model.info.metrics.model.mae:.2f}" if isinstance(model, StoredModel) else ""
        line = f"{model.version}  {mae}  {model.created_at:%Y-%m-%d %H:%M} UTC"
        if model.problem is None:
            typer.echo(f"{'*' if active else ' '} {line}")
        else:
            typer.echo(f"! {line}{' (active)' if active else ''}  damaged: {model.problem}")


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="A version from `models list`.")],
) -> None:
    """Serve VERSION from now on, once it passes its checks (every worker picks it up)."""
    from bookql.ml.store import BrokenVersion, ModelStore, UnknownVersion

    try:
        ModelStore(get_settings().effective_models_dir).activate(version)
    except UnknownVersion as exc:  # InvalidVersion too: the name was refused unread
        typer.echo(f"bookql: error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except BrokenVersion as exc:
        typer.echo(f"bookql: error: model version {version!r} cannot be served: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"active model: {version}")


@export_app.command("training-data")
def export_training_data(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    file_format: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    batch_size: Annotated[int, typer.Option(min=1, max=50_000, help="Rows per read.")] = 10_000,
    spreadsheet_safe: Annotated[
        bool,
        typer.Option(
            "--spreadsheet-safe",
            help="CSV only: prefix ' to text cells a spreadsheet would run as formulas (OWASP).",
        ),
    ] = False,
) -> None:
    """Every listed book's features and price, as the API's export gives them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from bookql.db.engine import create_async_db_engine
    from bookql.ml.dataset import TrainingData
    from bookql.ml.export_files import FileFormat, stream_file

    try:
        chosen = FileFormat(file_format)
    except ValueError:
        typer.echo("bookql: error: --format must be one of jsonl, csv, parquet", err=True)
        raise typer.Exit(code=2) from None
    if spreadsheet_safe and chosen is not FileFormat.CSV:
        typer.echo("bookql: error: --spreadsheet-safe applies to --format csv only", err=True)
        raise typer.Exit(code=2)
    settings = get_settings()
    check_connection(create_sync_engine(settings))
    partial = output.with_name(f".{output.name}.partial")

    async def run() -> int:
        engine = create_async_db_engine(settings)
        data = TrainingData(engine, limit=1)
        written = 0
        try:
            with Progress(
                "{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
            ) as progress:
                task = progress.add_task("rows", total=await data.count())
                with partial.open("wb") as file:
                    pieces = stream_file(
                        data,
                        chosen,
                        after=0,
                        batch_size=batch_size,
                        spreadsheet_safe=spreadsheet_safe,
                    )
                    async for piece, rows in pieces:
                        file.write(piece)
                        written += rows
                        progress.update(task, completed=written)
        finally:
            await engine.dispose()
        return written

    try:
        rows = asyncio.run(run())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)  # a file of that name is always complete
    typer.echo(f"wrote {rows} rows to {output}")


@app.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL SDL (the content of schema.graphql)."""
    from bookql.api.schema import build_schema, print_sdl

    typer.echo(print_sdl(build_schema()), nl=False)
