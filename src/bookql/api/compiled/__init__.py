"""The compiled query path: validated query documents become plans, run in one thread hop.

``planner`` turns a document and operation into a plan once (cached), ``executor`` runs
it for a request with the standard path's per-request checks, ``node`` dispatches
``node(id:)`` by type, and ``rows`` builds response objects from rows. The domains compile
their own fields; ``compiled_queries`` assembles them. Whatever a plan does not cover is
left to Strawberry's executor, the reference.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLInterfaceType

from bookql.accounts.auth import RequestAuth
from bookql.accounts.graphql.permissions import require_catalog_reader
from bookql.api.compiled.executor import CompiledQueries
from bookql.api.compiled.node import node_compiler
from bookql.api.compiled.plan import RootField
from bookql.catalog.graphql.compiled import NODES, ROOTS
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase

__all__ = ["CompiledQueries", "compiled_queries", "compiled_roots"]


def compiled_roots(schema: Any, settings: Settings) -> dict[str, RootField]:
    """The root fields plans cover: the catalogue's, and ``node`` of its types."""

    async def catalog(auth: RequestAuth) -> None:
        await require_catalog_reader(auth, settings)

    roots = {name: RootField(compile, catalog) for name, compile in ROOTS.items()}
    node_type = schema._schema.get_type("Node")
    assert isinstance(node_type, GraphQLInterfaceType)
    node_types = {t.name for t in schema._schema.get_possible_types(node_type)}
    roots["node"] = RootField(node_compiler(NODES, node_types), catalog)
    return roots


def compiled_queries(
    schema: Any, settings: Settings, blocking: BlockingDatabase
) -> CompiledQueries:
    return CompiledQueries(
        schema,
        compiled_roots(schema, settings),
        blocking,
        timeout_seconds=settings.request_timeout_seconds,
    )
