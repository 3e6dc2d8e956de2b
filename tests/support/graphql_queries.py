"""Hypothesis strategies for random, valid catalogue operations, built from the schema itself.

Fields and argument types come from the served schema (so a field added later is generated
too); values come from pools of real keys (UPCs, slugs, cursors, global ids) so that most
operations find data, with now and then a value the resolvers refuse. Operations use
aliases, named and inline fragments, variables, ``@include``/``@skip`` and ``__typename``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    is_composite_type,
)
from hypothesis import strategies as st

CATALOG_ROOTS = ("book", "books", "category", "categories", "stats", "node")
MAX_DEPTH = 4  # object levels below the root


@dataclass(frozen=True)
class Pools:
    """Real keys of the catalogue under test, for arguments that should find something."""

    upcs: list[str]
    book_ids: list[str]
    category_ids: list[str]
    slugs: list[str]
    names: list[str]
    cursors: list[str]
    category_cursors: list[str]


@dataclass
class Enum:
    """An enum value: bare in a literal, a string in variables."""

    name: str


@dataclass
class Operation:
    """A generated request: the document, its variables and how it is sent."""

    query: str
    variables: dict[str, Any]
    operation_name: str | None
    method: str
    accept: str | None

    def json_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"query": self.query, "variables": self.variables}
        if self.operation_name is not None:
            body["operationName"] = self.operation_name
        return body


@dataclass
class Document:
    """What an operation accumulates while its selections are drawn."""

    draw: st.DrawFn
    schema: GraphQLSchema
    pools: Pools
    faults: int
    fragments: dict[str, str] = field(default_factory=dict)
    variables: dict[str, tuple[str, Any]] = field(default_factory=dict)
    names: int = 0

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(0, one_in - 1)) == 0

    def fault(self) -> bool:
        """Whether this argument gets a value the resolvers refuse (at most ``faults`` do)."""
        if self.faults and self.chance(2):
            self.faults -= 1
            return True
        return False


def literal(value: Any, type_: GraphQLInputType) -> str:
    """A value as a GraphQL literal of ``type_``."""
    if value is None:
        return "null"
    if isinstance(type_, GraphQLNonNull):
        return literal(value, type_.of_type)
    if isinstance(type_, GraphQLList):
        return "[" + ", ".join(literal(item, type_.of_type) for item in value) + "]"
    if isinstance(type_, GraphQLInputObjectType):
        fields = type_.fields
        return "{" + ", ".join(f"{k}: {literal(v, fields[k].type)}" for k, v in value.items()) + "}"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def variable_value(value: Any) -> Any:
    """A value as JSON variables carry it."""
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, list):
        return [variable_value(item) for item in value]
    if isinstance(value, dict):
        return {key: variable_value(item) for key, item in value.items()}
    return value


def _book_filter(doc: Document, of_category: bool) -> dict[str, Any]:
    """A filter; naming a category only for ``books`` (a category's books refuse one)."""
    draw, pools = doc.draw, doc.pools
    chosen: dict[str, Any] = {}
    if not of_category and doc.chance(4):
        chosen["category"] = draw(st.sampled_from([*pools.slugs[:8], *pools.names[:8]]))
    if doc.chance(3):
        chosen["priceMin"] = draw(st.sampled_from([10, 12.5, 20.0, 35.99]))
    if doc.chance(3):
        chosen["priceMax"] = draw(st.sampled_from([40, 45.5, 55.99, 60.0]))
    if doc.chance(3):
        chosen["ratingMin"] = draw(st.integers(1, 3))
    if doc.chance(4):
        chosen["ratingMax"] = draw(st.integers(3, 5))
    if doc.chance(4):
        chosen["inStock"] = draw(st.booleans())
    if doc.chance(4):
        chosen["titleContains"] = draw(st.sampled_from(["the", "a", "Love", "%", "_s", "zzz"]))
    if doc.fault():
        chosen.update(
            draw(
                st.sampled_from(
                    [
                        {"category": "no such category"},
                        {"priceMin": 50.0, "priceMax": 10.0},
                        {"ratingMin": 7},
                        {"priceMin": 10.001},
                        {"priceMax": -1.0},
                    ]
                )
            )
        )
    return chosen


def _book_orders(doc: Document, searching: bool) -> list[dict[str, Any]]:
    fields = ["PRICE", "RATING", "TITLE", "AVAILABILITY", "LAST_SEEN_AT"]
    if searching or doc.fault():
        fields.append("RELEVANCE")
    chosen = doc.draw(st.lists(st.sampled_from(fields), max_size=2, unique=True))
    directions = st.sampled_from([Enum("ASC"), Enum("DESC")])
    return [{"field": Enum(name), "direction": doc.draw(directions)} for name in chosen]


def _page_size(doc: Document, depth: int) -> int:
    if doc.fault():
        return doc.draw(st.sampled_from([-1, 101]))
    sizes = [0, 1, 2, 3, 5, 10, 100] if depth == 0 else [0, 1, 2, 3]
    return doc.draw(st.sampled_from(sizes))


def _cursor(doc: Document, pool: list[str]) -> str:
    if doc.fault():
        return doc.draw(st.sampled_from(["not a cursor", "WyJzaXRlIiwgMV0", "WyJvdGhlciIsMV0"]))
    return doc.draw(st.sampled_from(pool))


def _page_arguments(doc: Document, depth: int, cursors: list[str] | None) -> dict[str, Any]:
    """``first``/``after`` mostly, ``last``/``before`` sometimes, both ways only when faulty;
    a cursor only where the site order makes it one of this list."""
    chosen: dict[str, Any] = {}
    backward = doc.chance(4)
    if not doc.chance(5):
        chosen["last" if backward else "first"] = _page_size(doc, depth)
    if cursors is not None and doc.chance(4):
        chosen["before" if backward else "after"] = _cursor(doc, cursors)
    if doc.fault():
        chosen.update({"first": 1, "last": 1})
    return chosen


def _id(doc: Document, kind: str) -> str:
    pools = doc.pools
    if doc.fault():
        return doc.draw(st.sampled_from(["!!!", "Qm9vaw", "Ym9vaw"]))
    found = {
        "book": pools.book_ids,
        "category": pools.category_ids,
        "node": [
            *pools.book_ids[:6],
            *pools.category_ids[:6],
            "Q2F0ZWdvcnk6eA",  # Category:x
            "Rm9vOjE",  # Foo:1, no such type
            "Qm9vazpub3BlIG5vcGU",  # Book:nope nope
        ],
    }[kind]
    return doc.draw(st.sampled_from(found))


def _arguments(doc: Document, parent: str, name: str, depth: int) -> dict[str, Any]:
    """Argument values for one field, by what the field is (the schema gives the types)."""
    draw, pools = doc.draw, doc.pools
    if (parent, name) in (("Query", "books"), ("Category", "books")):
        chosen: dict[str, Any] = {}
        if doc.chance(3):
            chosen["filter"] = _book_filter(doc, of_category=parent == "Category")
        searching = parent == "Query" and doc.chance(4)
        if searching:
            words = ["love", "murder mystery", "history of", "zzzz", "Dark"]
            if doc.fault():
                words = ["the", "of the", "x" * 600]
            chosen["search"] = draw(st.sampled_from(words))
        ordered = doc.chance(3)
        if ordered:
            chosen["orderBy"] = _book_orders(doc, searching)
        in_site_order = not searching and not ordered
        cursors = pools.cursors if parent == "Query" else pools.category_cursors
        return {**_page_arguments(doc, depth, cursors if in_site_order else None), **chosen}
    if (parent, name) == ("Query", "book"):
        if doc.chance(2):
            upcs = [*pools.upcs[:10], "not-a-upc"]
            return {"upc": draw(st.sampled_from(upcs))} if not doc.fault() else {}
        return {"id": _id(doc, "book")}
    if (parent, name) == ("Query", "category"):
        if doc.chance(2):
            return {"slug": draw(st.sampled_from([*pools.slugs[:10], "no-such-slug"]))}
        by_id: dict[str, Any] = {"id": _id(doc, "category")}
        if doc.fault():
            by_id["slug"] = pools.slugs[0]
        return by_id
    if (parent, name) == ("Query", "node"):
        return {"id": _id(doc, "node")}
    if (parent, name) == ("Book", "priceHistory"):
        if doc.fault():
            return {"first": draw(st.sampled_from([0, 101]))}
        return {} if doc.chance(2) else {"first": draw(st.integers(1, 3))}
    if (parent, name) == ("BookConnection", "count"):
        if doc.fault():
            return {"limit": draw(st.sampled_from([-1, 100_001]))}
        return {} if doc.chance(2) else {"limit": draw(st.sampled_from([0, 1, 3, 100_000]))}
    if (parent, name) == ("CatalogueStats", "priceHistogram"):
        if doc.fault():
            return {"bucketWidth": draw(st.sampled_from([0.0, 0.001, 0.01, -5.0]))}
        return {} if doc.chance(2) else {"bucketWidth": draw(st.sampled_from([2.5, 5, 10, 50]))}
    return {}


def _render_arguments(doc: Document, gql_field: GraphQLField, values: dict[str, Any]) -> str:
    """``(name: literal, other: $variable)``; a variable gets a wrong value now and then."""
    parts = []
    for name, value in values.items():
        type_ = gql_field.args[name].type
        if doc.chance(3):
            variable = doc.fresh("v")
            sent = variable_value(value)
            if doc.fault():
                sent = "not the type" if not isinstance(value, str) else 12
            doc.variables[variable] = (str(type_), sent)
            parts.append(f"{name}: ${variable}")
        else:
            parts.append(f"{name}: {literal(value, type_)}")
    return f"({', '.join(parts)})" if parts else ""


def _directive(doc: Document) -> str:
    if not doc.chance(6):
        return ""
    name = doc.draw(st.sampled_from(["include", "skip"]))
    if doc.chance(2):
        return f" @{name}(if: {'true' if doc.draw(st.booleans()) else 'false'})"
    variable = doc.fresh("d")
    doc.variables[variable] = ("Boolean!", doc.draw(st.booleans()))
    return f" @{name}(if: ${variable})"


def _fields_of(type_: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> list[str]:
    names = list(type_.fields)
    if depth >= MAX_DEPTH:
        names = [n for n in names if not is_composite_type(get_named_type(type_.fields[n].type))]
    return names


def _field(
    doc: Document, parent: GraphQLObjectType | GraphQLInterfaceType, name: str, depth: int
) -> str:
    gql_field = parent.fields[name]
    values = _arguments(doc, parent.name, name, depth)
    arguments = _render_arguments(doc, gql_field, values)
    alias = ""
    if arguments or doc.chance(5):
        alias = f"{doc.fresh('a')}: "  # fields with arguments never collide when merged
    text = f"{alias}{name}{arguments}{_directive(doc)}"
    named = get_named_type(gql_field.type)
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        text += " " + selection(doc, named, depth + 1)
    return text


def selection(doc: Document, type_: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> str:
    """A selection set on ``type_``: some of its fields, perhaps in fragments."""
    draw = doc.draw
    names = _fields_of(type_, depth)
    limit = 3 if depth >= 2 else 5
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=limit, unique=True))
    parts = [_field(doc, type_, name, depth) for name in chosen]
    if doc.chance(4):
        parts.insert(draw(st.integers(0, len(parts))), "__typename")
    if isinstance(type_, GraphQLInterfaceType):
        for implementation in ("Book", "Category"):
            if doc.chance(2):
                parts.append(_inline(doc, implementation, depth))
    elif len(parts) > 1 and doc.chance(4):
        cut = draw(st.integers(1, len(parts) - 1))
        parts = [*parts[:cut], _wrapped(doc, type_.name, parts[cut:])]
    return "{ " + " ".join(parts) + " }"


def _inline(doc: Document, type_name: str, depth: int) -> str:
    type_ = doc.schema.get_type(type_name)
    assert isinstance(type_, GraphQLObjectType)
    return f"... on {type_name}{_directive(doc)} {selection(doc, type_, depth)}"


def _wrapped(doc: Document, type_name: str, parts: list[str]) -> str:
    """Fields moved into an inline fragment or a named one (defined once, by name)."""
    body = "{ " + " ".join(parts) + " }"
    if doc.chance(2):
        condition = f" on {type_name}" if doc.chance(2) else ""
        return f"...{condition}{_directive(doc)} {body}"
    name = doc.fresh("F")
    doc.fragments[name] = f"fragment {name} on {type_name} {body}"
    return f"...{name}{_directive(doc)}"


@st.composite
def operations(draw: st.DrawFn, schema: GraphQLSchema, pools: Pools) -> Operation:
    """A catalogue query: one to three root fields, sent by POST (or now and then GET)."""
    faults = 1 if draw(st.integers(0, 4)) == 0 else 0
    doc = Document(draw=draw, schema=schema, pools=pools, faults=faults)
    query_type = schema.query_type
    assert query_type is not None
    roots = draw(st.lists(st.sampled_from(CATALOG_ROOTS), min_size=1, max_size=3, unique=True))
    parts = [_field(doc, query_type, name, 0) for name in roots]
    if doc.chance(5):
        parts.append("__typename")
    body = "{ " + " ".join(parts) + " }"
    name = doc.fresh("Q") if doc.chance(3) else None
    header = ""
    if name is not None or doc.variables:
        declared = ", ".join(f"${v}: {t}" for v, (t, _) in doc.variables.items())
        header = "query" + (f" {name}" if name else "") + (f"({declared})" if declared else "")
        header += " "
    definitions = [header + body, *doc.fragments.values()]
    operation_name = name if name is not None and doc.chance(2) else None
    if operation_name is not None and doc.chance(4):
        definitions.append(f"query {doc.fresh('Other')} {{ __typename }}")
    method = "GET" if doc.chance(10) else "POST"
    accept = draw(st.sampled_from([None, "application/graphql-response+json"]))
    return Operation(
        query="\n".join(definitions),
        variables={v: value for v, (_, value) in doc.variables.items()},
        operation_name=operation_name,
        method=method,
        accept=accept,
    )
