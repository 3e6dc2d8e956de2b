"""The catalogue's part of the compiled query path: its root fields and node types.

Catalogue knowledge stays here (columns, statements, how ``Book`` and ``Category`` fields
map to row values, global ids, money); the engine in ``bookql.graphql.compiled``
plans and runs them (``bookql.server.compiled`` puts them together).
"""

from bookql.catalog.graphql.compiled.roots import NODES, ROOTS

__all__ = ["NODES", "ROOTS"]
