"""The one schema: every domain's root fields, plus ``node`` and the shared extensions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from bookql.accounts.graphql.permissions import check_catalogue_access
from bookql.accounts.graphql.schema import AccountsMutation, AccountsQuery, load_user_node
from bookql.accounts.graphql.types import User
from bookql.api.context import Info
from bookql.api.errors import ErrorCodes
from bookql.api.relay import Node, from_global_id
from bookql.catalog.graphql.mutations import CatalogMutation
from bookql.catalog.graphql.schema import CatalogQuery, load_book, load_category
from bookql.catalog.graphql.types import Book, Category

DOCUMENT_CACHE_SIZE = 1000


NodeLoader = Callable[[Info, str], Awaitable[Any]]


def _catalogue(load: NodeLoader) -> NodeLoader:
    """``node`` for a catalogue type applies the catalogue's own permission first."""

    async def checked(info: Info, key: str) -> Any:
        await check_catalogue_access(info)
        return await load(info, key)

    return checked


NODE_LOADERS: dict[str, NodeLoader] = {
    "Book": _catalogue(load_book),
    "Category": _catalogue(load_category),
    "User": load_user_node,
}


@strawberry.type
class Query(CatalogQuery, AccountsQuery):
    @strawberry.field(description="Any object by its global id; null when there is none.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, key = from_global_id(id)
        loader = NODE_LOADERS.get(type_name)
        if loader is None:
            return None
        node: Node | None = await loader(info, key)
        return node


@strawberry.type
class Mutation(CatalogMutation, AccountsMutation):
    pass


class BookQLSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Silent: expected errors are the client's business, and ``ErrorCodes`` logs the rest."""


def build_schema() -> strawberry.Schema:
    return BookQLSchema(
        query=Query,
        mutation=Mutation,
        types=[Book, Category, User],
        extensions=[
            ErrorCodes,  # first: it tags what the extensions after it report
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        ],
        config=StrawberryConfig(auto_camel_case=True),
    )


def print_sdl(schema: strawberry.Schema) -> str:
    """The SDL as committed in ``schema.graphql``: printed, with one trailing newline."""
    return schema.as_str().rstrip("\n") + "\n"
