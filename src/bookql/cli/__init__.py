"""The ``bookql`` command line (typer)."""

from __future__ import annotations

import sys

from bookql.cli.app import app
from bookql.core.errors import StartupError


def main() -> None:
    """Entry point: configuration and startup problems end in one line, not a traceback."""
    try:
        app()
    except StartupError as exc:
        print(f"bookql: error: {exc}", file=sys.stderr)
        sys.exit(2)
