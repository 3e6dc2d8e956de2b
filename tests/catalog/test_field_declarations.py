"""Every field of the types the compiled path serves has a compiled reader.

A field the compiled path cannot read does not fail: every query selecting it is silently
answered by the standard executor instead, several times slower. So this walks the schema
from the root fields the catalogue compiles, through every object type they reach, and
plans a query selecting each field in turn: each must be planned, unless it is listed below
as left to the standard executor on purpose. Stored fields get their readers from their
declarations (``bookql.catalog.graphql.fields.stored``); the others are written in
``bookql.catalog.graphql.compiled``.
"""

from __future__ import annotations

from collections import deque

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.values import VariableValues, get_variable_values

from bookql.catalog.graphql.compiled import ROOTS
from bookql.catalog.graphql.fields import stored_fields
from bookql.catalog.graphql.types import Book, Category, PricePoint
from bookql.catalog.queries import BOOK_COLUMNS
from bookql.core.config import Settings
from bookql.graphql.compiled.planner import Planner
from bookql.server.compiled import compiled_roots
from bookql.server.schema import build_schema

SERVED_BY_THE_STANDARD_EXECUTOR: dict[str, str] = {}
"""``Type.field`` the compiled path leaves to the standard executor on purpose, and why."""

SCALAR_LITERALS = {"Int": "1", "Float": "1.0", "String": '"x"', "ID": '"x"', "Boolean": "true"}


@pytest.fixture(scope="module")
def planner() -> Planner:
    settings = Settings()
    schema = build_schema(settings)
    return Planner(schema, compiled_roots(schema, settings))


def literal(type_: GraphQLInputType) -> str:
    """Some valid value of an input type, for the arguments a query must give."""
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType):
        return SCALAR_LITERALS[named.name]
    if isinstance(named, GraphQLEnumType):
        return str(next(iter(named.values)))
    assert isinstance(named, GraphQLInputObjectType)
    required = [
        f"{name}: {literal(field.type)}"
        for name, field in named.fields.items()
        if is_non_null_type(field.type) and field.default_value is None
    ]
    return "{" + ", ".join(required) + "}"


def call(name: str, field: GraphQLField) -> str:
    """The field as a query selects it, with its required arguments."""
    required = [
        f"{argument}: {literal(definition.type)}"
        for argument, definition in field.args.items()
        if isinstance(definition.type, GraphQLNonNull) and definition.default_value is None
    ]
    return f"{name}({', '.join(required)})" if required else name


def query(path: list[str], leaf: str) -> str:
    """``{ a { b { leaf } } }`` for the path ``[a, b]``."""
    selection = leaf
    for step in reversed(path):
        selection = f"{step} {{ {selection} }}"
    return f"{{ {selection} }}"


def served_types(planner: Planner) -> dict[str, tuple[GraphQLObjectType, list[str]]]:
    """Each object type the compiled roots reach, with the shortest path to it."""
    query_type = planner.schema.query_type
    assert query_type is not None
    found: dict[str, tuple[GraphQLObjectType, list[str]]] = {}
    queue = deque(
        (query_type.fields[name], [call(name, query_type.fields[name])]) for name in ROOTS
    )
    while queue:
        field, path = queue.popleft()
        named = get_named_type(field.type)
        if not is_object_type(named):
            assert not hasattr(named, "fields") or isinstance(named, GraphQLInputObjectType), (
                f"{named} is abstract: teach this test which types it serves"
            )
            continue
        assert isinstance(named, GraphQLObjectType)
        if named.name in found:
            continue
        found[named.name] = (named, path)
        for name, child in named.fields.items():
            queue.append((child, [*path, call(name, child)]))
    return found


def no_variables(planner: Planner) -> VariableValues:
    coerced = get_variable_values(planner.schema, (), {})
    assert isinstance(coerced, VariableValues)
    return coerced


def is_planned(planner: Planner, text: str) -> bool:
    document = planner.document(text, None)
    assert document is not None, f"the test's own query is refused: {text}"
    return document.variant(no_variables(planner)) is not None


def test_every_field_the_compiled_path_serves_has_a_reader(planner: Planner) -> None:
    types = served_types(planner)
    assert {"Book", "Category", "PricePoint", "BookConnection", "CatalogueStats"} <= set(types)
    missing, stale = [], []
    for type_name, (object_type, path) in types.items():
        for name, field in object_type.fields.items():
            leaf = call(name, field)
            if is_object_type(get_named_type(field.type)):
                leaf += " { __typename }"
            planned = is_planned(planner, query(path, leaf))
            listed = f"{type_name}.{name}" in SERVED_BY_THE_STANDARD_EXECUTOR
            if not planned and not listed:
                missing.append(f"{type_name}.{name}  ({query(path, leaf)})")
            if planned and listed:
                stale.append(f"{type_name}.{name}")
    assert not missing, (
        "these fields have no compiled reader, so every query selecting one silently falls "
        "back to the standard executor:\n  "
        + "\n  ".join(missing)
        + "\nDeclare a stored field with `stored(column)` on its type "
        "(bookql/catalog/graphql/types.py), write its reader in bookql/catalog/graphql/compiled/, "
        "or list it in SERVED_BY_THE_STANDARD_EXECUTOR here with the reason."
    )
    assert not stale, f"compiled now, drop from SERVED_BY_THE_STANDARD_EXECUTOR: {stale}"


@pytest.mark.parametrize("cls", [Book, Category, PricePoint], ids=lambda cls: cls.__name__)
def test_stored_fields_are_nullable_where_their_columns_are(cls: type) -> None:
    """A nullable column behind a non-null field would fail every query meeting a null."""
    schema = build_schema(Settings())._schema
    object_type = schema.get_type(cls.__name__)
    assert isinstance(object_type, GraphQLObjectType)
    declared = stored_fields(cls)
    assert declared, f"{cls.__name__} declares no stored field"
    for name, field in declared.items():
        graphql_field = object_type.fields[name]
        if field.column.nullable:
            assert not is_non_null_type(graphql_field.type), (
                f"{cls.__name__}.{name} reads the nullable column {field.column} but is "
                "declared non-null: annotate it `... | None`"
            )


def test_book_rows_hold_every_column_a_book_reads() -> None:
    columns = set(BOOK_COLUMNS)
    assert all(field.column in columns for field in stored_fields(Book).values())
