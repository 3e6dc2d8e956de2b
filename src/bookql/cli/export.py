"""``bookql export`` (bulk data to files) and ``bookql export-schema`` (the GraphQL SDL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bookql.cli.common import async_engine, fail, migrated_settings

export_app = typer.Typer(help="Bulk data to files.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("export-schema")(export_schema)
    app.add_typer(export_app, name="export")


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

    from bookql.ml.dataset import TrainingData
    from bookql.ml.export_files import FileFormat, stream_file

    try:
        chosen = FileFormat(file_format)
    except ValueError:
        raise fail("--format must be one of jsonl, csv, parquet", code=2) from None
    if spreadsheet_safe and chosen is not FileFormat.CSV:
        raise fail("--spreadsheet-safe applies to --format csv only", code=2)
    settings = migrated_settings()
    partial = output.with_name(f".{output.name}.partial")

    async def run() -> int:
        written = 0
        async with async_engine(settings) as engine:
            data = TrainingData(engine, limit=1)
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
        return written

    try:
        rows = asyncio.run(run())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)  # a file of that name is always complete
    typer.echo(f"wrote {rows} rows to {output}")


def export_schema() -> None:
    """Print the GraphQL SDL (the content of schema.graphql)."""
    from bookql.server.schema import build_schema, print_sdl

    typer.echo(print_sdl(build_schema()), nl=False)
