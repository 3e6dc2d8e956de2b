"""What the price model's resolvers need from a request's context: the catalogue's part
(predictions link to books) and the price service."""

from __future__ import annotations

from typing import Protocol, TypeAlias

import strawberry

from bookql.catalog.graphql.context import CatalogContext
from bookql.ml.service import PriceService


class MlContext(CatalogContext, Protocol):
    request_id: str
    ml: PriceService


Info: TypeAlias = strawberry.Info[MlContext, None]
