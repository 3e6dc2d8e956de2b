"""The served schema never breaks clients silently.

Breaking changes must update the SDL in the same change. Dangerous ones (a new enum value,
a new optional argument or input field, a changed default) break generated clients without
breaking any query: every one since the released schema shows in this test's output as a
warning, and a new enum value must be named in ``docs/schema-changelog.md``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from graphql import (
    BreakingChangeType,
    DangerousChangeType,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)

from bookql.server.schema import build_schema as build_served_schema

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "schema.graphql"
RELEASED = Path(__file__).parents[1] / "fixtures" / "released-schema.graphql"
CHANGELOG = ROOT / "docs" / "schema-changelog.md"
ENUM_VALUE_ADDED = re.compile(r"Enum value (\w+\.\w+) was added\.")


class DangerousSchemaChange(UserWarning):
    """A change that breaks no query but may break clients generated from the old schema."""


def breaking_changes(old_sdl: str, new_sdl: str) -> list[str]:
    changes = find_breaking_changes(build_schema(old_sdl), build_schema(new_sdl))
    return [f"{change.type.name}: {change.description}" for change in changes]


def dangerous_changes(old_sdl: str, new_sdl: str) -> list[str]:
    changes = find_dangerous_changes(build_schema(old_sdl), build_schema(new_sdl))
    return [f"{change.type.name}: {change.description}" for change in changes]


def undocumented_enum_values(changes: list[str], changelog: str) -> list[str]:
    """``Enum.VALUE`` of each added enum value the changelog does not name."""
    added = [match[1] for change in changes if (match := ENUM_VALUE_ADDED.search(change))]
    return [value for value in added if f"`{value}`" not in changelog]


def test_served_schema_does_not_break_the_committed_one() -> None:
    served = build_served_schema().as_str()
    changes = breaking_changes(COMMITTED.read_text(), served)
    assert not changes, (
        "the served schema breaks clients of the committed schema.graphql; if that is "
        "intended, regenerate it (bookql export-schema > schema.graphql) in the same change:\n"
        + "\n".join(changes)
    )


def test_dangerous_changes_since_the_release_are_shown_and_new_enum_values_documented() -> None:
    served = build_served_schema().as_str()
    changes = dangerous_changes(RELEASED.read_text(), served)
    for change in changes:
        print(f"dangerous schema change since the release: {change}")
        warnings.warn(
            f"{change} (see docs/schema-changelog.md)", DangerousSchemaChange, stacklevel=1
        )
    missing = undocumented_enum_values(changes, CHANGELOG.read_text())
    assert not missing, (
        "new enum values reach generated clients as values they do not know: name each in "
        "docs/schema-changelog.md (as `Enum.VALUE`) with what it means: " + ", ".join(missing)
    )


def test_the_check_catches_breaking_changes() -> None:
    old = "type Query { books(first: Int): [String!]! book(upc: String): String }"
    removed_field = "type Query { books(first: Int): [String!]! }"
    new_required_argument = (
        "type Query { books(first: Int!): [String!]! book(upc: String): String }"
    )
    added_field = (
        "type Query { books(first: Int): [String!]! book(upc: String): String stats: Int }"
    )
    assert breaking_changes(old, removed_field) == [
        f"{BreakingChangeType.FIELD_REMOVED.name}: Field Query.book was removed."
    ]
    assert breaking_changes(old, new_required_argument)
    assert breaking_changes(old, added_field) == []


def test_the_check_catches_dangerous_changes() -> None:
    old = "type Query { runs(first: Int): [Status!]! } enum Status { QUEUED SUCCEEDED }"
    new_value = (
        "type Query { runs(first: Int): [Status!]! } enum Status { QUEUED SUCCEEDED PARTIAL }"
    )
    new_argument = old.replace("(first: Int)", "(first: Int, after: String)")
    added = dangerous_changes(old, new_value)
    assert added == [
        f"{DangerousChangeType.VALUE_ADDED_TO_ENUM.name}: Enum value Status.PARTIAL was added."
    ]
    assert undocumented_enum_values(added, "") == ["Status.PARTIAL"]
    assert undocumented_enum_values(added, "### `Status.PARTIAL`") == []
    [argument] = dangerous_changes(old, new_argument)
    assert argument.startswith(DangerousChangeType.OPTIONAL_ARG_ADDED.name)
    assert undocumented_enum_values([argument], "") == []  # only enum values must be named
    assert dangerous_changes(old, old) == []
