"""From a query document to a plan, once per document and operation name.

A document is planned only after it passes the very checks the standard path applies
(size, tokens, parsing, validation with the schema's own rules: depth, aliases, NUL
literals, introspection), so a plan is never used for a request the standard executor
would refuse before execution. ``@skip``/``@include`` may depend on variables, so an
operation keeps one plan per combination of the variables its directives read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    TypeNameMetaFieldDef,
    ValueNode,
    VariableNode,
    Visitor,
    get_operation_ast,
    parse,
    specified_rules,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.validation import ASTValidationRule
from strawberry.extensions import AddValidationRules
from strawberry.schema.schema import validate_document

from bookql.graphql.compiled.plan import (
    Guard,
    PlannedField,
    RootFetch,
    RootField,
    Run,
    Unsupported,
    typename,
)
from bookql.graphql.limits import Limits, QueryLimits, operation_cost

log = logging.getLogger("bookql.compiled")

DOCUMENT_CACHE_SIZE = 1000
VARIANTS_PER_DOCUMENT = 16


class OperationPlan:
    """The root fields of one operation, each a fetch run on the worker thread, and the
    permissions they need."""

    __slots__ = ("guards", "roots")

    def __init__(self, roots: list[tuple[str, RootFetch]], guards: list[Guard]) -> None:
        self.roots = roots
        self.guards = tuple(dict.fromkeys(guards))

    def run(self, run: Run) -> dict[str, Any]:
        return {key: fetch(run) for key, fetch in self.roots}


class Rules:
    """The checks the schema's extensions apply before execution, read from the schema."""

    def __init__(self, schema: Any) -> None:
        self.limits: Limits | None = None
        rules: list[type[ASTValidationRule]] = list(specified_rules)
        for extension in schema.get_extensions():
            if isinstance(extension, QueryLimits):
                self.limits = extension.limits
                rules.append(extension.shape)
            elif isinstance(extension, AddValidationRules):
                rules.extend(extension.validation_rules)
        self.validation_rules = tuple(rules)

    def document(self, query: str) -> DocumentNode | None:
        """The parsed document when the standard path would execute it, else None."""
        limits = self.limits
        if limits is not None and len(query.encode()) > limits.max_bytes:
            return None
        try:
            if limits is not None:
                return parse(query, max_tokens=limits.max_tokens)
            return parse(query)
        except (GraphQLError, RecursionError):  # Strawberry reports either as a parse error
            return None


def _directive_variables(document: DocumentNode) -> tuple[str, ...]:
    """Variables that ``@skip``/``@include`` read: they change which fields are selected."""
    names: list[str] = []

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            if node.name.value not in ("skip", "include"):
                return
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.append(argument.value.name.value)

    visit(document, Directives())
    return tuple(dict.fromkeys(names))


def _size_variables(document: DocumentNode) -> tuple[str, ...]:
    """Variables that give a page size (``first``/``last``): the cost limit counts them."""
    names: list[str] = []

    class Sizes(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            if node.name.value in ("first", "last"):
                names.extend(_variables_in(node.value))

    visit(document, Sizes())
    return tuple(dict.fromkeys(names))


def _variables_in(value: ValueNode) -> list[str]:
    if isinstance(value, VariableNode):
        return [value.name.value]
    if isinstance(value, ListValueNode):
        return [name for item in value.values for name in _variables_in(item)]
    if isinstance(value, ObjectValueNode):
        return [name for item in value.fields for name in _variables_in(item.value)]
    return []


class Collector:
    """Field collection for one set of directive variables, as graphql-core does it."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.variables = variables

    def root(self, query_type: GraphQLObjectType) -> list[PlannedField]:
        collected = collect_fields(
            self.schema, self.fragments, self.variables, query_type, self.operation
        )
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        return self._planned(query_type, collected.grouped_field_set)

    def subfields(self, field: PlannedField, type_name: str) -> list[PlannedField]:
        runtime = self.schema.get_type(type_name)
        if not isinstance(runtime, GraphQLObjectType):
            raise Unsupported(f"{type_name} is not an object type")
        collected = collect_subfields(
            self.schema,
            self.fragments,
            self.variables,
            self.operation,
            runtime,
            list(field.details),
        )
        if collected.new_defer_usages:
            raise Unsupported("@defer")
        return self._planned(runtime, collected.grouped_field_set)

    def _planned(self, parent: GraphQLObjectType, grouped: GroupedFieldSet) -> list[PlannedField]:
        return [self._field(parent, key, details) for key, details in grouped.items()]

    def _field(
        self, parent: GraphQLObjectType, key: str, details: list[FieldDetails]
    ) -> PlannedField:
        node: FieldNode = details[0].node
        name = node.name.value
        if name == "__typename":
            definition = TypeNameMetaFieldDef
        elif name.startswith("__"):
            raise Unsupported("introspection")
        else:
            definition = parent.fields[name]
        static: Mapping[str, Any] | None = None
        if not any(_variables_in(argument.value) for argument in node.arguments or ()):
            static = get_argument_values(definition, node, self.variables)
        return PlannedField(
            key=key,
            name=name,
            parent=parent,
            definition=definition,
            details=tuple(details),
            collector=self,
            static_arguments=static,
        )


class DocumentPlan:
    """A validated query operation and its plans, one per set of directive variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        compile_root: Callable[[PlannedField], tuple[RootFetch, Guard]],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.fragment_definitions = {name: f.definition for name, f in fragments.items()}
        self.name = operation.name.value if operation.name else None
        self.variable_definitions = operation.variable_definitions or ()
        definitions = DocumentNode(definitions=(operation, *self.fragment_definitions.values()))
        self.directive_variables = _directive_variables(definitions)
        self._compile_root = compile_root
        self._variants: dict[tuple[Any, ...], OperationPlan | None] = {}
        self.size_variables = _size_variables(definitions)
        self._costs: dict[tuple[Any, ...], int] = {}

    def cost(self, raw_variables: dict[str, Any]) -> int:
        """The cost the standard path's limit checks, with the request's own variables.

        Only page sizes given by variables change it, so it is kept by their values.
        """
        key = tuple(raw_variables.get(name) for name in self.size_variables)
        try:
            return self._costs[key]
        except KeyError:
            cost = operation_cost(
                self.schema, self.operation, self.fragment_definitions, raw_variables
            )
            if len(self._costs) < VARIANTS_PER_DOCUMENT:
                self._costs[key] = cost
            return cost
        except TypeError:  # a value no key can hold (valid variables never are)
            return operation_cost(
                self.schema, self.operation, self.fragment_definitions, raw_variables
            )

    def variant(self, variables: VariableValues) -> OperationPlan | None:
        """The plan for these variables' directives; None when the plan does not cover it."""
        key = tuple(variables.coerced.get(name) for name in self.directive_variables)
        if key in self._variants:
            return self._variants[key]
        plan = self._build(variables)
        if len(self._variants) < VARIANTS_PER_DOCUMENT:
            self._variants[key] = plan
        return plan

    def _build(self, variables: VariableValues) -> OperationPlan | None:
        query_type = self.schema.query_type
        assert query_type is not None
        collector = Collector(self.schema, self.operation, self.fragments, variables)
        roots: list[tuple[str, RootFetch]] = []
        guards: list[Guard] = []
        try:
            for field in collector.root(query_type):
                if field.name == "__typename":
                    roots.append((field.key, typename(query_type.name)))
                    continue
                fetch, guard = self._compile_root(field)
                roots.append((field.key, fetch))
                guards.append(guard)
        except (Unsupported, GraphQLError):
            return None
        except Exception:
            log.warning("planning failed; the standard executor answers", exc_info=True)
            return None
        return OperationPlan(roots, guards)


class Planner:
    """Plans for query documents, cached by document and operation name (bounded, LRU)."""

    def __init__(
        self, schema: Any, roots: Mapping[str, RootField], cache_size: int = DOCUMENT_CACHE_SIZE
    ) -> None:
        self.schema: GraphQLSchema = schema._schema
        self.rules = Rules(schema)
        self.roots = roots
        self.cache_size = cache_size
        self._documents: OrderedDict[tuple[str, str | None], DocumentPlan | None] = OrderedDict()

    def document(self, query: str, operation_name: str | None) -> DocumentPlan | None:
        key = (query, operation_name)
        documents = self._documents
        if key in documents:
            documents.move_to_end(key)
            return documents[key]
        planned = self._plan(query, operation_name)
        documents[key] = planned
        if len(documents) > self.cache_size:
            documents.popitem(last=False)
        return planned

    def _plan(self, query: str, operation_name: str | None) -> DocumentPlan | None:
        document = self.rules.document(query)
        if document is None:
            return None
        # None for several operations and no name, or a name naming none: request errors
        # (GraphQL's GetOperation), which the standard path answers
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        try:
            if validate_document(self.schema, document, self.rules.validation_rules):
                return None
        except RecursionError:
            return None
        fragments = _fragments(document.definitions)
        if fragments is None:
            return None
        return DocumentPlan(self.schema, operation, fragments, self._compile_root)

    def _compile_root(self, field: PlannedField) -> tuple[RootFetch, Guard]:
        root = self.roots.get(field.name)
        if root is None:
            raise Unsupported(f"root field {field.name}")
        return root.compile(field), root.guard


def _fragments(definitions: Iterable[Any]) -> dict[str, FragmentDetails] | None:
    """Fragments by name; None for fragments with variables (experimental, not planned)."""
    fragments: dict[str, FragmentDetails] = {}
    for definition in definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                return None
            fragments[definition.name.value] = FragmentDetails(definition)
    return fragments
