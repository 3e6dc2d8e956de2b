"""The documentation a newcomer reads: a short README, links that lead somewhere, every setting
in the configuration table, and only ``bookql`` commands and options that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from bookql.cli.app import app
from bookql.core.config import Settings

REPO = Path(__file__).parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 150

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
SETTING = re.compile(r"`(BOOKQL_[A-Z0-9_]+)`")


def prose(text: str) -> str:
    """The text without code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's ids for the headings of ``page``: lower case, punctuation dropped, spaces to
    hyphens, and ``-1``, ``-2``… for repeats."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_commands_are_make_targets() -> None:
    readme = README.read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"no `{target}` target"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        found = linked.exists() and (
            not anchor or (linked.suffix == ".md" and anchor in anchors(linked))
        )
        if not found:
            broken.append(target)
    assert not broken, f"{page.name} links to nothing: {broken}"


def test_every_setting_is_in_the_configuration_table() -> None:
    lines = CONFIGURATION.read_text().splitlines()
    first_cells = [line.split("|")[1] for line in lines if line.startswith("|")]
    documented = {name for cell in first_cells for name in SETTING.findall(cell)}
    settings = {f"BOOKQL_{name.upper()}" for name in Settings.model_fields}
    assert not settings - documented, "undocumented settings: " + ", ".join(
        sorted(settings - documented)
    )
    assert not documented - settings, "documented settings bookql does not read: " + ", ".join(
        sorted(documented - settings)
    )


def shell_commands(text: str) -> list[list[str]]:
    """Each ``bookql …`` invocation in the fenced blocks, as words, comments dropped."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            for part in re.split(r"\||&&", line.split("#", 1)[0]):
                words = part.split()
                if words and words[0] in ("bookql", ".venv/bin/bookql"):
                    commands.append(words[1:])
    return commands


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command ``words`` name, and the words after its name."""
    command = typer.main.get_command(app)
    while words and isinstance(command, TyperGroup) and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_quoted_commands_exist(page: Path) -> None:
    wrong = []
    for words in shell_commands(page.read_text()):
        command, rest = resolve(words)
        if isinstance(command, TyperGroup):
            wrong.append(" ".join(["bookql", *words]))
            continue
        options = {opt for param in command.params for opt in param.opts}
        for word in rest:
            option = word.strip("[]").split("=", 1)[0]
            if option.startswith("-") and option not in options:
                wrong.append(f"{' '.join(['bookql', *words])}: {option}")
    assert not wrong, f"{page.name} quotes commands bookql does not have: {wrong}"
