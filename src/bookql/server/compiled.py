"""The compiled query path, assembled: the domains' root fields on the toolkit's engine.

The engine is ``bookql.graphql.compiled`` (planner, executor, node dispatch, rows); the
catalogue compiles its own fields (``bookql.catalog.graphql.compiled``). Here they meet,
with the catalogue's permission as the guard of its roots.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLInterfaceType

from bookql.accounts.auth import RequestAuth
from bookql.accounts.graphql.permissions import require_catalog_reader
from bookql.catalog.graphql.compiled import NODES, ROOTS
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase
from bookql.graphql.compiled.executor import CompiledQueries
from bookql.graphql.compiled.node import node_compiler
from bookql.graphql.compiled.plan import RootField


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
