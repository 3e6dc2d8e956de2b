"""docker-compose.yml stays true to the code: its commands exist, its settings are real.

No Docker daemon runs here, so the file is checked for what drifts silently: a renamed
command or option, or a ``BOOKQL_`` variable the settings would ignore.
"""

from __future__ import annotations

import re
import shlex
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bookql.cli.app import app
from bookql.core.config import Settings

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _bookql_commands() -> list[list[str]]:
    """Every ``bookql …`` the services run, shell loops included."""
    found = []
    for service in _services().values():
        command = service.get("command") or []
        if command[:1] == ["bookql"]:
            found.append(command[1:])
        elif command[:2] == ["sh", "-c"]:
            for match in re.finditer(r"bookql ([a-z -]+?)(?= \|\||;|$)", command[2]):
                found.append(shlex.split(match[1]))
    return found


def test_the_production_shape_is_all_there() -> None:
    services = _services()
    assert {"postgres", "redis", "migrate", "api", "worker", "scheduler"} <= services.keys()
    assert "--workers" in services["api"]["command"]
    assert services["worker"]["command"] == ["bookql", "worker"]
    images = {name: service.get("image") for name, service in services.items()}
    assert images["api"] == images["worker"] == images["scheduler"] == images["migrate"]


@pytest.mark.parametrize("command", _bookql_commands(), ids=" ".join)
def test_every_command_exists(command: list[str]) -> None:
    names = list(takewhile(lambda part: not part.startswith("-"), command))
    options = [part.split("=")[0] for part in command if part.startswith("--")]
    result = CliRunner().invoke(app, [*names, "--help"])
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output, f"{' '.join(names)} has no {option}"


def test_every_setting_is_one_the_code_reads() -> None:
    fields = {f"BOOKQL_{name.upper()}" for name in Settings.model_fields}
    used = {
        name
        for service in _services().values()
        for name in service.get("environment") or {}
        if name.startswith("BOOKQL_")
    }
    assert used and used <= fields, used - fields
