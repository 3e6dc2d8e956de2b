"""The catalogue's root fields: ``book(s)``, ``category``/``categories``, ``stats``."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.permission import BasePermission

from bookql.accounts.graphql.permissions import CanReadCatalog
from bookql.catalog import queries
from bookql.catalog.graphql.context import Info
from bookql.catalog.graphql.inputs import BookFilter, BookOrder
from bookql.catalog.graphql.listing import listing_from_arguments
from bookql.catalog.graphql.stats import CatalogStats, new_stats
from bookql.catalog.graphql.types import Book, BookConnection, BookEdge, Category
from bookql.core.errors import BadUserInput
from bookql.graphql.relay import (
    CursorArgument,
    PageArgument,
    PageRequest,
    expect_global_id,
    load_page,
)

READ: list[type[BasePermission]] = [CanReadCatalog]
SearchArgument = Annotated[
    str | None,
    strawberry.argument(
        description="Words to find in titles and descriptions (all required, stemmed). By"
        " RELEVANCE (the default with a search) the first 1000 matches in site order are"
        " ranked and listed; other orders list every match, and totalCount counts them all."
    ),
]


def _exactly_one(**arguments: Any) -> tuple[str, Any]:
    given = [(name, value) for name, value in arguments.items() if value is not None]
    if len(given) != 1:
        names = " or ".join(f"`{name}`" for name in arguments)
        raise BadUserInput(f"pass exactly one of {names}")
    return given[0]


async def load_book(info: Info, upc: str) -> Book | None:
    row = await info.context.catalog.book_by_upc.load(upc)
    return Book.from_row(row) if row is not None else None


async def load_category(info: Info, key: str) -> Category | None:
    if not key.isdigit():
        return None
    row = await info.context.catalog.category_by_id.load(int(key))
    return Category.from_row(row) if row is not None else None


@strawberry.type
class CatalogQuery:
    @strawberry.field(
        description="One book, by global id or by UPC (exactly one).", permission_classes=READ
    )
    async def book(
        self, info: Info, id: strawberry.ID | None = None, upc: str | None = None
    ) -> Book | None:
        name, value = _exactly_one(id=id, upc=upc)
        key = expect_global_id(value, "Book") if name == "id" else value
        return await load_book(info, key)

    @strawberry.field(
        description="Books still listed, in site order unless `orderBy` (or `search`) says.",
        permission_classes=READ,
    )
    async def books(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
        filter: BookFilter | None = None,
        order_by: list[BookOrder] | None = None,
        search: SearchArgument = None,
    ) -> BookConnection:
        page = PageRequest.from_args(first, after, last, before)
        listing = await listing_from_arguments(info, filter, order_by, search)
        engine = info.context.engine
        plan = listing.plan(engine.dialect.name)
        result = await load_page(
            engine,
            page,
            columns=queries.BOOK_COLUMNS,
            where=plan.where,
            ordering=plan.ordering,
            source=plan.source,
        )

        async def count_total() -> int:
            async with engine.connect() as conn:
                return await plan.count(conn)

        async def count_at_most(limit: int) -> tuple[int, bool]:
            async with engine.connect() as conn:
                return await plan.count_at_most(conn, limit)

        return BookConnection(
            edges=[
                BookEdge(cursor=cursor, node=Book.from_row(row))
                for row, cursor in zip(result.rows, result.cursors, strict=True)
            ],
            page_info=result.page_info,
            count_total=count_total,
            count_at_most=count_at_most,
        )

    @strawberry.field(
        description="One category, by global id or by slug (exactly one).",
        permission_classes=READ,
    )
    async def category(
        self, info: Info, id: strawberry.ID | None = None, slug: str | None = None
    ) -> Category | None:
        name, value = _exactly_one(id=id, slug=slug)
        if name == "id":
            return await load_category(info, expect_global_id(value, "Category"))
        row = await info.context.catalog.category_by_slug.load(value)
        return Category.from_row(row) if row is not None else None

    @strawberry.field(description="Every category, by name.", permission_classes=READ)
    async def categories(self, info: Info) -> list[Category]:
        async with info.context.engine.connect() as conn:
            rows = await queries.all_categories(conn)
        return [Category.from_row(row) for row in rows]

    @strawberry.field(description="Catalogue statistics.", permission_classes=READ)
    async def stats(self) -> CatalogStats:
        return new_stats()
