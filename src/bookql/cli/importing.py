"""``bookql import PATH``: bulk-load books from JSON Lines (docs/importing.md)."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, cast

import typer

from bookql.catalog.importing import (
    Existing,
    ImportFailed,
    ImportOptions,
    ImportSummary,
    OnError,
    Progress,
    import_catalog,
    read_lines,
)
from bookql.cli.common import migrated_settings
from bookql.db.engine import create_sync_engine

REPORTED_ERRORS = 20  # bad lines printed one by one; the rest are counted


def register(app: typer.Typer) -> None:
    app.command("import")(import_catalog_command)


@contextmanager
def _open(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """The file's bytes and its size (for the progress bar), ``-`` being stdin."""
    if path == "-":
        yield sys.stdin.buffer, None
        return
    file = Path(path)
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint="PATH")
    if file.suffix == ".gz":
        with gzip.open(file, "rb") as unzipped:
            yield cast(IO[bytes], unzipped), None
        return
    with file.open("rb") as raw:
        yield raw, file.stat().st_size


@contextmanager
def _progress_bar(total: int | None) -> Iterator[Progress | None]:
    """A bar on stderr when it is a terminal; nothing when it is not (logs, pipes, CI)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=total)

        def advance(done: int) -> None:
            # Once every line is read, PostgreSQL applies them all (SQLite the last batch).
            finished = total is not None and done >= total
            bar.update(task, completed=done, description="storing" if finished else "reading")

        yield advance


def _summary_line(summary: ImportSummary) -> str:
    parts = [
        f"inserted {summary.inserted}",
        f"updated {summary.updated}",
        f"unchanged {summary.unchanged}",
    ]
    if summary.kept:
        parts.append(f"skipped {summary.kept} known books")
    if summary.superseded:
        parts.append(f"{summary.superseded} lines superseded by a later line of the same UPC")
    parts.append(f"{len(summary.rejected)} bad lines skipped")
    return ", ".join(parts)


def _report_bad_lines(summary: ImportSummary) -> None:
    for error in summary.rejected[:REPORTED_ERRORS]:
        typer.echo(f"line {error.line}: {error.reason}", err=True)
    if len(summary.rejected) > REPORTED_ERRORS:
        typer.echo(f"… and {len(summary.rejected) - REPORTED_ERRORS} more bad lines", err=True)


def import_catalog_command(
    path: Annotated[str, typer.Argument(help="A JSON Lines file (.gz too), or - for stdin.")],
    existing: Annotated[
        str,
        typer.Option(help="Books already stored (by UPC): update them, or skip them."),
    ] = "update",
    on_error: Annotated[
        str, typer.Option(help="A bad line: fail the import, or skip the line.")
    ] = "fail",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Lines per committed batch (SQLite only).")
    ] = ImportOptions.batch_size,
    from_line: Annotated[
        int, typer.Option(min=1, help="Start at this line (resume a SQLite import).")
    ] = 1,
) -> None:
    """Bulk-load books from JSON Lines in the bundled snapshot's record format."""
    if existing not in ("update", "skip"):
        raise typer.BadParameter("update or skip", param_hint="--existing")
    if on_error not in ("skip", "fail"):
        raise typer.BadParameter("skip or fail", param_hint="--on-error")
    chosen_existing: Existing = "update" if existing == "update" else "skip"
    chosen_on_error: OnError = "fail" if on_error == "fail" else "skip"
    options = ImportOptions(chosen_existing, chosen_on_error, batch_size, from_line)
    settings = migrated_settings()
    engine = create_sync_engine(settings)
    try:
        with _open(path) as (stream, size), _progress_bar(size) as progress:
            lines = read_lines(stream, options.from_line, progress)
            summary = import_catalog(engine, lines, options)
    except ImportFailed as failed:
        _report_bad_lines(failed.summary)
        typer.echo(f"import failed: {failed}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    _report_bad_lines(summary)
    typer.echo(_summary_line(summary))
