"""The catalogue's root fields: ``book``, ``books``, ``category``, ``categories``."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement

from bookql.api.context import Info
from bookql.api.errors import BadUserInput
from bookql.api.relay import PageInfo, PageRequest, decode_cursor, encode_cursor, expect_global_id
from bookql.catalog import queries
from bookql.catalog.graphql.types import Book, BookConnection, BookEdge, Category
from bookql.catalog.models import books
from bookql.db.keyset import Ordering

PageArgument = Annotated[int | None, strawberry.argument(description="Page size, at most 100.")]
CursorArgument = Annotated[str | None, strawberry.argument(description="An edge's cursor.")]


def _listed() -> list[ColumnElement[bool]]:
    return [books.c.removed_at.is_(None)]


async def book_connection(
    info: Info,
    page: PageRequest,
    where: list[ColumnElement[bool]],
    ordering: Ordering,
) -> BookConnection:
    after_values = None
    if page.cursor is not None:
        after_values = ordering.parse_cursor_payload(decode_cursor(page.cursor))
        if after_values is None:
            raise BadUserInput(f"{page.cursor!r} is not a cursor of this list", argument="cursor")
    engine = info.context.engine
    async with engine.connect() as conn:
        result = await queries.fetch_book_page(
            conn,
            where=where,
            ordering=ordering,
            size=page.size,
            forward=page.forward,
            after_values=after_values,
        )
    edges = [
        BookEdge(cursor=encode_cursor(cursor), node=Book.from_row(row))
        for row, cursor in zip(result.rows, result.cursors, strict=True)
    ]
    has_more, came_from_cursor = result.has_more, page.cursor is not None
    page_info = PageInfo(
        has_next_page=has_more if page.forward else came_from_cursor,
        has_previous_page=came_from_cursor if page.forward else has_more,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )

    async def count_total() -> int:
        async with engine.connect() as conn:
            return await queries.count_books(conn, where)

    return BookConnection(edges=edges, page_info=page_info, count_total=count_total)


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
    @strawberry.field(description="One book, by global id or by UPC (exactly one).")
    async def book(
        self, info: Info, id: strawberry.ID | None = None, upc: str | None = None
    ) -> Book | None:
        name, value = _exactly_one(id=id, upc=upc)
        key = expect_global_id(value, "Book") if name == "id" else value
        return await load_book(info, key)

    @strawberry.field(description="Books still listed on the site, in site order.")
    async def books(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
    ) -> BookConnection:
        page = PageRequest.from_args(first, after, last, before)
        return await book_connection(info, page, _listed(), queries.SITE_ORDER)

    @strawberry.field(description="One category, by global id or by slug (exactly one).")
    async def category(
        self, info: Info, id: strawberry.ID | None = None, slug: str | None = None
    ) -> Category | None:
        name, value = _exactly_one(id=id, slug=slug)
        if name == "id":
            return await load_category(info, expect_global_id(value, "Category"))
        row = await info.context.catalog.category_by_slug.load(value)
        return Category.from_row(row) if row is not None else None

    @strawberry.field(description="Every category, by name.")
    async def categories(self, info: Info) -> list[Category]:
        async with info.context.engine.connect() as conn:
            rows = await queries.all_categories(conn)
        return [Category.from_row(row) for row in rows]
