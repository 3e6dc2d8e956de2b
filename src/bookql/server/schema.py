"""The one schema: every domain's root fields, plus ``node`` and the shared extensions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from bookql.accounts.graphql.permissions import require_catalog_reader
from bookql.accounts.graphql.schema import AccountsMutation, AccountsQuery, load_user_node
from bookql.accounts.graphql.types import User
from bookql.catalog.graphql.mutations import CatalogMutation
from bookql.catalog.graphql.schema import CatalogQuery, load_book, load_category
from bookql.catalog.graphql.types import Book, Category
from bookql.core.config import Settings
from bookql.core.errors import ErrorCode
from bookql.crawls.graphql.schema import (
    CrawlsMutation,
    CrawlsQuery,
    CrawlsSubscription,
    load_crawl_run_node,
)
from bookql.crawls.graphql.types import CrawlRun
from bookql.graphql.errors import ErrorCodes
from bookql.graphql.limits import Limits, QueryLimits, shape_rule
from bookql.graphql.metrics import OperationMetrics, record_operation
from bookql.graphql.operation_choice import OneOperation
from bookql.graphql.relay import Node, from_global_id
from bookql.ml.graphql.schema import (
    MlMutation,
    MlQuery,
    MlSubscription,
    load_model_node,
    load_prediction_node,
)
from bookql.ml.graphql.types import ModelVersion, PricePrediction
from bookql.server.context import Info

DOCUMENT_CACHE_SIZE = 1000


# Each domain's loader takes its own Info: strawberry.Info is invariant in its context, and
# the server's Context fits every domain's declaration (checked in bookql.server.context).
NodeLoader = Callable[[Any, str], Awaitable[Any]]


def _catalog(load: NodeLoader) -> NodeLoader:
    """``node`` for a catalogue type applies the catalogue's own permission first."""

    async def checked(info: Info, key: str) -> Any:
        await require_catalog_reader(info.context.auth, info.context.settings)
        return await load(info, key)

    return checked


NODE_LOADERS: dict[str, NodeLoader] = {
    "Book": _catalog(load_book),
    "Category": _catalog(load_category),
    "User": load_user_node,
    "CrawlRun": load_crawl_run_node,
    "ModelVersion": load_model_node,
    "PricePrediction": load_prediction_node,
}


@strawberry.type
class Query(CatalogQuery, AccountsQuery, CrawlsQuery, MlQuery):
    @strawberry.field(description="Any object by its global id; null when the caller may see none.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, key = from_global_id(id)
        loader = NODE_LOADERS.get(type_name)
        if loader is None:
            return None
        node: Node | None = await loader(info, key)
        return node


@strawberry.type
class Mutation(CatalogMutation, AccountsMutation, CrawlsMutation, MlMutation):
    pass


@strawberry.type
class Subscription(CrawlsSubscription, MlSubscription):
    pass


class BookQLSchema(strawberry.Schema):
    timeout_seconds: float = 30.0

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Silent: expected errors are the client's business, and ``ErrorCodes`` logs the rest."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Every operation within the time limit, or a ``TIMEOUT`` error and nothing else."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await super().execute(*args, **kwargs)
        except TimeoutError:  # cancelled inside the extensions: counted here instead
            record_operation(kwargs.get("operation_name"), "unknown", ["TIMEOUT"], None)
            error = GraphQLError(
                f"the operation took longer than {self.timeout_seconds:g} s",
                extensions={"code": ErrorCode.TIMEOUT.value},
            )
            return ExecutionResult(data=None, errors=[error])


def build_schema(settings: Settings | None = None) -> BookQLSchema:
    settings = settings or Settings()
    limits = Limits.of(settings)
    shape = shape_rule(limits)
    extensions: list[Any] = [
        OperationMetrics,  # outermost: it counts what ErrorCodes has coded
        ErrorCodes,  # it tags what the extensions after it report
        OneOperation,
        lambda: QueryLimits(limits, shape),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    schema = BookQLSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Book, Category, User, CrawlRun, ModelVersion, PricePrediction],
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True, disable_field_suggestions=settings.is_production
        ),
    )
    schema.timeout_seconds = settings.request_timeout_seconds
    return schema


def print_sdl(schema: strawberry.Schema) -> str:
    """The SDL as committed in ``schema.graphql``: printed, with one trailing newline."""
    return schema.as_str().rstrip("\n") + "\n"
