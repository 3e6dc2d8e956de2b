"""The served schema never breaks clients silently: breaking changes must update the SDL."""

from __future__ import annotations

from pathlib import Path

from graphql import BreakingChangeType, build_schema, find_breaking_changes

from bookql.api.schema import build_schema as build_served_schema

COMMITTED = Path(__file__).parents[1] / "schema.graphql"


def breaking_changes(old_sdl: str, new_sdl: str) -> list[str]:
    changes = find_breaking_changes(build_schema(old_sdl), build_schema(new_sdl))
    return [f"{change.type.name}: {change.description}" for change in changes]


def test_served_schema_does_not_break_the_committed_one() -> None:
    served = build_served_schema().as_str()
    changes = breaking_changes(COMMITTED.read_text(), served)
    assert not changes, (
        "the served schema breaks clients of the committed schema.graphql; if that is "
        "intended, regenerate it (bookql export-schema > schema.graphql) in the same change:\n"
        + "\n".join(changes)
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
