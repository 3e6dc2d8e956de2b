"""Protection from abusive queries: size, tokens, depth, aliases, cost and time (and text no
column can store, and variables nested too deeply).

Depth and aliases are validation rules (they need no variables). Cost needs the variables,
so it is checked when execution starts: every object a query may return counts once for
each time an enclosing page or list may repeat it, so ``first: 100`` three levels deep
costs a million, not three hundred. Introspection fields are free: GraphiQL needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension

from bookql.core.config import Settings
from bookql.core.errors import ErrorCode
from bookql.graphql.nesting import variables_message, variables_too_deep
from bookql.graphql.relay import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

LIST_ESTIMATE = 50  # a plain list (categories, stats rows) is assumed this long


# NUL (PostgreSQL's text cannot hold it) and lone surrogates (JSON can spell "\ud800", but no
# encoding can store it): a driver would refuse either, so they are refused up front.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def has_unstorable_text(value: Any) -> bool:
    """Whether any text in ``value`` holds a character no column can store (walked with a
    stack, not recursion: nesting is bounded elsewhere, but a walk must not fail on it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _unstorable_refused() -> GraphQLError:
    return GraphQLError(
        "text must not contain NUL characters or lone surrogates",
        extensions={"code": ErrorCode.BAD_USER_INPUT.value},
    )


def too_complex(message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(
        message, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value, **extensions}
    )


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_tokens: int
    max_depth: int
    max_aliases: int
    max_cost: int
    max_json_depth: int = 32

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings set: the schema and the persisted-query store share them."""
        return cls(
            max_bytes=settings.max_query_bytes,
            max_tokens=settings.max_query_tokens,
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_query_aliases,
            max_cost=settings.max_query_cost,
            max_json_depth=settings.max_json_depth,
        )


def _fields(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[tuple[FieldNode, str | None]]:
    """The fields of a selection set with fragments expanded, each with its type condition."""
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection, None
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition.name.value if selection.type_condition else None
            for field, inner in _fields(selection.selection_set, fragments, seen):
                yield field, inner or condition
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                condition = fragment.type_condition.name.value
                for field, inner in _fields(fragment.selection_set, fragments, seen | {name}):
                    yield field, inner or condition


def _depth(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> int:
    deepest = 0
    for field, _ in _fields(selection_set, fragments):
        if field.name.value.startswith("__"):
            continue
        deepest = max(deepest, 1 + _depth(field.selection_set, fragments))
    return deepest


def _aliases(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> int:
    return sum(
        (1 if field.alias else 0) + _aliases(field.selection_set, fragments)
        for field, _ in _fields(selection_set, fragments)
    )


def shape_rule(limits: Limits) -> type[ValidationRule]:
    """A validation rule refusing operations deeper or more aliased than the limits, and
    string literals that spell NUL with an escape (``"\\u0000"``). Validation results are
    cached by document, so none of this is paid twice for the same query."""

    class OperationShape(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = _depth(node.selection_set, self.fragments)
            if depth > limits.max_depth:
                self.report_error(
                    too_complex(
                        f"the query is {depth} levels deep; the limit is {limits.max_depth}",
                        depth=depth,
                        limit=limits.max_depth,
                    )
                )
            aliases = _aliases(node.selection_set, self.fragments)
            if aliases > limits.max_aliases:
                self.report_error(
                    too_complex(
                        f"the query uses {aliases} aliases; the limit is {limits.max_aliases}",
                        aliases=aliases,
                        limit=limits.max_aliases,
                    )
                )

        def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
            if has_unstorable_text(node.value):
                self.report_error(_unstorable_refused())

    return OperationShape


class _Cost:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _argument(self, field: FieldNode, name: str, field_def: Any) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                arg_def = field_def.args.get(name)
                if arg_def is None:
                    return None
                return value_from_ast(argument.value, arg_def.type, self.variables)
        arg_def = field_def.args.get(name)
        return arg_def.default_value if arg_def is not None else None

    def _size(self, field: FieldNode, field_def: Any) -> int:
        """How many times the field's children may repeat."""
        named = get_named_type(field_def.type)
        if "first" in field_def.args or "last" in field_def.args:
            sizes = [self._argument(field, name, field_def) for name in ("first", "last")]
            given = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)]
            if given:  # a page never holds more; a bigger size is the resolver's to refuse
                return max(1, min(max(given), MAX_PAGE_SIZE))
            if named.name.endswith("Connection"):
                return DEFAULT_PAGE_SIZE
        if is_list_type(get_nullable_type(field_def.type)):
            return LIST_ESTIMATE
        return 1

    def cost(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType, repeat: int
    ) -> int:
        total = 0
        for field, condition in _fields(selection_set, self.fragments):
            name = field.name.value
            if name.startswith("__"):
                continue
            owner = self.schema.get_type(condition) if condition else parent
            if not isinstance(owner, GraphQLObjectType) and not hasattr(owner, "fields"):
                continue
            field_def = owner.fields.get(name)  # type: ignore[union-attr]
            if field_def is None:
                continue
            named = get_named_type(field_def.type)
            if not is_composite_type(named):
                continue
            in_connection = parent.name.endswith("Connection") and name == "edges"
            children = repeat if in_connection else repeat * self._size(field, field_def)
            total += children + self.cost(field.selection_set, named, children)
        return total


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> int:
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _Cost(schema, fragments, variables).cost(operation.selection_set, root, 1)


class QueryLimits(SchemaExtension):
    """Size and token limits before parsing, the shape rule, and the cost before execution."""

    def __init__(self, limits: Limits, shape: type[ValidationRule]) -> None:
        self.limits = limits
        self.shape = shape  # one class for the schema's life: the validation cache keys on it

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query or ""
        if len(query.encode()) > self.limits.max_bytes:
            raise too_complex(
                f"the query is longer than {self.limits.max_bytes} bytes",
                limit=self.limits.max_bytes,
            )
        context.parse_options["max_tokens"] = self.limits.max_tokens
        context.validation_rules = (*context.validation_rules, self.shape)
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        # Before graphql-core coerces the variables; here rather than in on_operation,
        # whose errors Strawberry's streaming transports (SSE, multipart) do not catch.
        if variables_too_deep(context.variables, self.limits.max_json_depth):
            raise GraphQLError(
                variables_message(self.limits.max_json_depth),
                extensions={
                    "code": ErrorCode.BAD_USER_INPUT.value,
                    "limit": self.limits.max_json_depth,
                },
            )
        if has_unstorable_text(context.variables):
            raise _unstorable_refused()
        document = context.graphql_document
        if document is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            wanted = context.operation_name
            operation = next(
                (o for o in operations if wanted is None or (o.name and o.name.value == wanted)),
                None,
            )
            if operation is not None:
                cost = operation_cost(
                    context.schema._schema, operation, fragments, context.variables or {}
                )
                if cost > self.limits.max_cost:
                    raise too_complex(
                        f"the query may return {cost} objects; the limit is {self.limits.max_cost}",
                        cost=cost,
                        limit=self.limits.max_cost,
                    )
        yield
