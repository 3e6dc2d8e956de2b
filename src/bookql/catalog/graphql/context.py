"""What the catalogue's resolvers need from a request's context: the accounts' part (its
permissions) and the catalogue's DataLoaders."""

from __future__ import annotations

from typing import Protocol, TypeAlias

import strawberry

from bookql.accounts.graphql.context import AccountsContext
from bookql.catalog.graphql.loaders import CatalogLoaders


class CatalogContext(AccountsContext, Protocol):
    catalog: CatalogLoaders


Info: TypeAlias = strawberry.Info[CatalogContext, None]
