"""The ``bookql`` Typer app, assembled from one module per command group.

Each module under ``bookql.cli`` has a ``register(app)`` adding its commands and groups;
a new group is a new module named in ``GROUPS`` (its place there is its place in
``bookql --help``, commands before groups). Imports a command needs stay inside it, so that
``bookql --help`` starts quickly.
"""

from __future__ import annotations

import typer

from bookql.cli import database, export, importing, jobs, models, serve, users

app = typer.Typer(
    name="bookql",
    help="The books.toscrape.com catalogue over GraphQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
GROUPS = (serve, database, importing, users, models, export, jobs)
for group in GROUPS:
    group.register(app)
