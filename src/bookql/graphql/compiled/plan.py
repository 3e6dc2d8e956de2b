"""What a compiled plan is made of: planned fields, a request's run, and the two refusals.

A plan never guesses. While planning, anything it does not cover raises ``Unsupported`` and
the whole operation stays with Strawberry's executor; while running, anything that would
make the standard executor report an error raises (``Fallback`` or the domain's own
``BookQLError``) and that request is answered by the standard executor instead, so errors,
their paths and partial data always come from the reference implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import (
    Any,
    Concatenate,
    ParamSpec,
    Protocol,
    TypeAlias,
    TypeVar,
    cast,
)

from graphql import FieldNode, GraphQLError, GraphQLField, GraphQLObjectType
from graphql.execution.collect_fields import FieldDetails
from graphql.execution.values import VariableValues, get_argument_values
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.graphql.compiled.reads import SyncReads, complete

P = ParamSpec("P")
T = TypeVar("T")


class Unsupported(Exception):
    """Planning met something the plan does not cover: the standard executor serves it."""


class Fallback(Exception):
    """Running met something only the standard executor answers right (an error, say)."""


@dataclass(frozen=True, eq=False)
class PlannedField:
    """One response key of a selection: the field, its nodes, and how to get its arguments.

    ``selection(type_name)`` is the field's own selection set for one runtime object type,
    collected as graphql-core collects it (fragments, type conditions, ``@skip``/``@include``).
    """

    key: str
    name: str
    parent: GraphQLObjectType
    definition: GraphQLField
    details: tuple[FieldDetails, ...]
    collector: SelectionCollector
    static_arguments: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def node(self) -> FieldNode:
        return self.details[0].node

    def selection(self, type_name: str) -> list[PlannedField]:
        return self.collector.subfields(self, type_name)

    def arguments(self, variables: VariableValues) -> Mapping[str, Any]:
        """The coerced arguments: computed once when they hold no variable, else per run."""
        if self.static_arguments is not None:
            return self.static_arguments
        try:
            return get_argument_values(self.definition, self.node, variables)
        except GraphQLError as error:
            raise Fallback(error.message) from None


class SelectionCollector(Protocol):
    """Collects the fields of selection sets (the planner's ``Collector``)."""

    def subfields(self, field: PlannedField, type_name: str) -> list[PlannedField]: ...


class Run:
    """One request running a plan on a worker thread: its connection and its variables."""

    __slots__ = ("conn", "dialect", "reads", "variables")

    def __init__(self, conn: Connection, variables: VariableValues) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.variables = variables
        self.reads = cast("AsyncConnection", SyncReads(conn))

    def arguments(self, field: PlannedField) -> Mapping[str, Any]:
        return field.arguments(self.variables)

    def read(
        self,
        query: Callable[Concatenate[AsyncConnection, P], Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """A domain's read, written for the async engine, done on this run's connection."""
        return complete(query(self.reads, *args, **kwargs))


RootFetch: TypeAlias = Callable[[Run], Any]
"""Computes one root field's JSON value on the worker thread."""

RootCompiler: TypeAlias = Callable[[PlannedField], RootFetch]
"""Turns a planned root field into its fetch, or raises ``Unsupported``."""

Guard: TypeAlias = Callable[[Any], Awaitable[None]]
"""A root field's permission, given the caller's auth as the server passes it to
``CompiledQueries.execute``: raises the domain's error to refuse the caller."""


@dataclass(frozen=True)
class RootField:
    """A root field the plans cover: how to compile it and who may read it."""

    compile: RootCompiler
    guard: Guard


def typename(type_name: str) -> Callable[[Any], str]:
    """``__typename`` of an object type: a constant."""
    return lambda _source: type_name
