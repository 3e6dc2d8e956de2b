"""``node(id:)``: the type named in the id picks the domain's compiled object, at run time.

Ids arrive as variables as often as literals, so the plan holds a compiled selection for
every type a domain can fetch by key, and chooses when the id is decoded. A type the plans
do not cover falls back (its own permission and loader apply there); a name that is no
type at all is ``null``, as in the standard resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeAlias

from bookql.graphql.compiled.plan import Fallback, PlannedField, RootCompiler, RootFetch, Run
from bookql.graphql.relay import from_global_id

NodeFetch: TypeAlias = Callable[[Run, str], Any]
"""One object of a type by the key in its global id, as JSON (or None when there is none)."""

NodeCompiler: TypeAlias = Callable[[list[PlannedField]], NodeFetch]
"""Compiles a node's selection for one runtime type."""


def node_compiler(
    compilers: Mapping[str, NodeCompiler], type_names: Collection[str]
) -> RootCompiler:
    """The root compiler of ``node`` over the given per-type compilers."""

    def compile_node(field: PlannedField) -> RootFetch:
        fetches = {name: compile(field.selection(name)) for name, compile in compilers.items()}

        def fetch(run: Run) -> Any:
            type_name, key = from_global_id(run.arguments(field)["id"])
            found = fetches.get(type_name)
            if found is not None:
                return found(run, key)
            if type_name in type_names:
                raise Fallback(f"node of type {type_name}")
            return None

        return fetch

    return compile_node
