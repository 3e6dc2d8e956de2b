"""``bookql train`` and ``bookql models``: price model versions, made and chosen."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from bookql.cli.common import async_engine, fail, migrated_settings
from bookql.core.config import get_settings

if TYPE_CHECKING:  # pandas loads only when a command needs it: `bookql --help` stays quick
    import pandas as pd

models_app = typer.Typer(help="Price model versions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.add_typer(models_app, name="models")


def train(
    activate: Annotated[bool, typer.Option("--activate", help="Serve the new version.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same model).")] = 42,
) -> None:
    """Train a price model on the current catalogue into the models directory."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bookql.ml.features import load_training_set
    from bookql.ml.price_model import train_price_model
    from bookql.ml.store import BrokenVersion, ModelStore

    settings = migrated_settings()

    async def load() -> tuple[pd.DataFrame, list[str]]:
        async with async_engine(settings) as engine:
            return await load_training_set(engine)

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
            raise fail(str(exc)) from None
    store = ModelStore(settings.effective_models_dir)
    model = store.save(trained)
    if activate:
        try:
            store.activate(model.version)
        except BrokenVersion as exc:
            raise fail(f"model {model.version} was saved, not activated: {exc}") from None
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
        raise fail(str(exc)) from None
    except BrokenVersion as exc:
        raise fail(f"model version {version!r} cannot be served: {exc}") from None
    typer.echo(f"active model: {version}")
