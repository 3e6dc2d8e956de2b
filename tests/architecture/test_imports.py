"""Every module of bookql imports alone, in an interpreter where nothing of bookql is loaded.

An import that works only because another module happened to be imported first (a circular
import hides that way) fails here, naming the module. ``import_alone`` forks one warm child
per module, so this takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bookql

# Not modules to import: the ``python -m bookql`` entry point runs the command line, and
# alembic's env.py runs migrations (alembic executes it, inside a migration context).
SCRIPTS = {"bookql.__main__", "bookql.db.migrations.env"}


def bookql_modules() -> list[str]:
    package = Path(bookql.__file__).parent
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return [name for name in names if name not in SCRIPTS]


def test_the_module_list_is_whole() -> None:
    modules = bookql_modules()
    assert {"bookql", "bookql.server.app", "bookql.catalog.graphql.compiled"} <= set(modules)
    assert len(modules) > 100


@pytest.mark.slow
def test_every_module_imports_alone(tmp_path: Path) -> None:
    result = tmp_path / "failures.json"
    script = Path(__file__).with_name("import_alone.py")
    done = subprocess.run(
        [sys.executable, str(script), str(result), *bookql_modules()],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failures: dict[str, str] = json.loads(result.read_text())
    assert not failures, "\n".join(
        f"{name} does not import alone:\n{report}" for name, report in sorted(failures.items())
    )
