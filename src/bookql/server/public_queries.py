"""Which documents read only public catalogue data, the same for every anonymous caller.

Only such a query may be cached by HTTP (``bookql.server.http_cache``): its answer depends on
nothing but the document, its variables, the server's build and the catalogue, whose data
version the database keeps. Everything else (accounts, crawl runs, models, predictions,
introspection, mutations, subscriptions) is per-user or changes without that version.

The check is by type: every field selected must belong to a catalogue type, and a root field
to the catalogue's reads. ``node`` is public only for a ``Book`` or ``Category`` id, which a
variable may hold: the ids to check are returned, and looked at for each request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    get_named_type,
    parse,
    visit,
)

from bookql.core.errors import BadUserInput
from bookql.graphql.relay import from_global_id

PUBLIC_ROOT_FIELDS = frozenset({"book", "books", "category", "categories", "stats", "node"})
PUBLIC_TYPES = frozenset(
    {
        "Book",
        "BookConnection",
        "BookEdge",
        "PageInfo",
        "PricePoint",
        "Category",
        "CatalogueStats",
        "CategoryStats",
        "RatingCount",
        "PriceBucket",
        "Node",
    }
)
PUBLIC_NODE_TYPES = frozenset({"Book", "Category"})
DOCUMENT_CACHE_SIZE = 1000


@dataclass(frozen=True)
class PublicShape:
    """A public document's ``node`` ids: literal ids, and the variables that hold others."""

    node_ids: tuple[str, ...] = ()
    node_variables: tuple[str, ...] = ()

    def allows(self, variables: Mapping[str, Any] | None) -> bool:
        """Whether every ``node`` of this request names a book or a category."""
        given = variables or {}
        ids = [*self.node_ids, *(given.get(name) for name in self.node_variables)]
        return all(isinstance(value, str) and _public_node(value) for value in ids)


def _public_node(global_id: str) -> bool:
    try:
        type_name, _ = from_global_id(global_id)
    except BadUserInput:  # an undecodable id is an error, not a public answer
        return False
    return type_name in PUBLIC_NODE_TYPES


class _Walk(Visitor):
    """Marks the document private at the first field outside the catalogue."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.public = True
        self.node_ids: list[str] = []
        self.node_variables: list[str] = []

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> Any:
        if node.operation is not OperationType.QUERY:
            self.public = False
            return self.BREAK
        return None

    def enter_field(self, node: FieldNode, *_: Any) -> Any:
        name = node.name.value
        if name == "__typename":
            return None
        parent = self.type_info.get_parent_type()
        parent_name = get_named_type(parent).name if parent is not None else None
        if parent_name == "Query":
            public = name in PUBLIC_ROOT_FIELDS and self._note_node(node)
        else:
            public = parent_name in PUBLIC_TYPES and self.type_info.get_field_def() is not None
        if not public:
            self.public = False
            return self.BREAK
        return None

    def _note_node(self, node: FieldNode) -> bool:
        if node.name.value != "node":
            return True
        argument = next((a for a in node.arguments or () if a.name.value == "id"), None)
        if argument is None:
            return False
        if isinstance(argument.value, StringValueNode):
            self.node_ids.append(argument.value.value)
            return True
        if isinstance(argument.value, VariableNode):
            self.node_variables.append(argument.value.name.value)
            return True
        return False


def public_shape(schema: GraphQLSchema, document: DocumentNode) -> PublicShape | None:
    """The document's shape if it only reads the public catalogue, else None."""
    type_info = TypeInfo(schema)
    walk = _Walk(type_info)
    visit(document, TypeInfoVisitor(type_info, walk))
    if not walk.public:
        return None
    return PublicShape(tuple(walk.node_ids), tuple(walk.node_variables))


class PublicQueries:
    """``public_shape`` of query texts, parsed within the token limit and remembered."""

    def __init__(self, schema: GraphQLSchema, max_tokens: int) -> None:
        self._schema = schema
        self._max_tokens = max_tokens
        self.shape_of = lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(self._shape_of)

    def _shape_of(self, query: str) -> PublicShape | None:
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except GraphQLError:
            return None
        return public_shape(self._schema, document)
