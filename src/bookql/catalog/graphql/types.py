"""GraphQL types of the catalogue, built from table rows (``BookTable`` -> ``Book``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import Row

from bookql.api.context import Info
from bookql.api.errors import BadUserInput
from bookql.api.relay import (
    CursorArgument,
    Node,
    PageArgument,
    PageInfo,
    PageRequest,
    encode_cursor,
    page_info_for,
    to_global_id,
)
from bookql.catalog.graphql.counts import (
    DEFAULT_COUNT_LIMIT,
    Count,
    CountAtMost,
    LimitArgument,
    bounded_count,
)
from bookql.catalog.graphql.inputs import BookFilter, BookOrder
from bookql.catalog.graphql.listing import listing_from_arguments
from bookql.catalog.graphql.loaders import HISTORY_CAP
from bookql.catalog.money import from_pence
from bookql.db.keyset import Page

DEFAULT_HISTORY = 10


@strawberry.type(description="What a book cost, and how many were in stock, at one time.")
class PricePoint:
    observed_at: datetime
    price: float = strawberry.field(description="Price as shown on the site (incl. tax), GBP.")
    price_excl_tax: float
    price_incl_tax: float
    tax: float
    availability: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> PricePoint:
        incl = from_pence(row.price_incl_tax_pence)
        return cls(
            observed_at=row.observed_at,
            price=incl,
            price_excl_tax=from_pence(row.price_excl_tax_pence),
            price_incl_tax=incl,
            tax=from_pence(row.tax_pence),
            availability=row.availability,
        )


@strawberry.type(description="A category of the catalogue, as in the site's sidebar.")
class Category(Node):
    name: str
    slug: str = strawberry.field(description="The name, lower case and hyphenated; unique.")
    version: int = strawberry.field(
        description="Grows whenever the name or slug changes, whoever changes them. Send it"
        " back with an update: if the category changed since you read it, the update is"
        " refused (CONFLICT). Compare versions, never compute them."
    )
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Category:
        return cls(
            id=strawberry.ID(to_global_id("Category", row.id)),
            name=row.name,
            slug=row.slug,
            version=row.version,
            pk=row.id,
        )

    @strawberry.field(description="How many books (not removed) the category holds.")
    async def book_count(self, info: Info) -> int:
        return await info.context.catalog.book_count_by_category.load(self.pk)

    @strawberry.field(description="The category's books; batched across categories.")
    async def books(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
        filter: BookFilter | None = None,
        order_by: list[BookOrder] | None = None,
    ) -> BookConnection:
        page = PageRequest.from_args(first, after, last, before)
        listing = await listing_from_arguments(info, filter, order_by, None, category_id=self.pk)
        loaders = info.context.catalog
        result = await loaders.category_books.load((self.pk, listing, page))

        async def count_total() -> int:
            return await loaders.category_book_count.load((self.pk, listing))

        async def count_at_most(limit: int) -> tuple[int, bool]:
            engine = info.context.engine
            async with engine.connect() as conn:
                return await listing.plan(engine.dialect.name).count_at_most(conn, limit)

        return BookConnection.from_page(result, page, count_total, count_at_most)


@strawberry.type(description="A book of the catalogue, keyed by its UPC.")
class Book(Node):
    upc: str
    title: str
    product_type: str
    price: float = strawberry.field(description="Price as shown on the site (incl. tax), GBP.")
    price_excl_tax: float
    price_incl_tax: float
    tax: float
    currency: str
    availability: int = strawberry.field(description="Copies in stock.")
    in_stock: bool
    rating: int = strawberry.field(description="Star rating, 1 to 5.")
    num_reviews: int
    image_url: str
    product_url: str
    first_seen_at: datetime
    last_seen_at: datetime
    removed_at: datetime | None = strawberry.field(
        description="When the book vanished from the site (or was deleted); null while listed."
    )
    version: int = strawberry.field(
        description="Grows whenever the book's content (any field but lastSeenAt, description"
        " included) changes, whoever changes it: an administrator, a crawl, an import. Send it"
        " back with an update: if the book changed since you read it, the update is refused"
        " (CONFLICT). Compare versions, never compute them."
    )
    pk: strawberry.Private[int]
    category_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Book:
        incl = from_pence(row.price_incl_tax_pence)
        return cls(
            id=strawberry.ID(to_global_id("Book", row.upc)),
            upc=row.upc,
            title=row.title,
            product_type=row.product_type,
            price=incl,
            price_excl_tax=from_pence(row.price_excl_tax_pence),
            price_incl_tax=incl,
            tax=from_pence(row.tax_pence),
            currency=row.currency,
            availability=row.availability,
            in_stock=row.availability > 0,
            rating=row.rating,
            num_reviews=row.num_reviews,
            image_url=row.image_url,
            product_url=row.product_url,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            removed_at=row.removed_at,
            version=row.version,
            pk=row.id,
            category_pk=row.category_id,
        )

    @strawberry.field(description="The product description; null when the page has none.")
    async def description(self, info: Info) -> str | None:
        return await info.context.catalog.description_by_book.load(self.pk)

    @strawberry.field
    async def category(self, info: Info) -> Category:
        row = await info.context.catalog.category_by_id.load(self.category_pk)
        if row is None:  # the foreign key makes this impossible short of a race with a delete
            raise LookupError(f"category {self.category_pk} of book {self.upc} is missing")
        return Category.from_row(row)

    @strawberry.field(description=f"Newest first; at most {HISTORY_CAP} points.")
    async def price_history(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description=f"How many points (1 to {HISTORY_CAP}).")
        ] = DEFAULT_HISTORY,
    ) -> list[PricePoint]:
        if not 1 <= first <= HISTORY_CAP:
            raise BadUserInput(f"`first` must be between 1 and {HISTORY_CAP}", argument="first")
        rows = await info.context.catalog.price_history(first).load(self.pk)
        return [PricePoint.from_row(row) for row in rows]


@strawberry.type
class BookEdge:
    cursor: str
    node: Book


@strawberry.type(description="A page of books.")
class BookConnection:
    edges: list[BookEdge]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]
    count_at_most: strawberry.Private[CountAtMost]

    @strawberry.field(description="How many books match, across all pages.")
    async def total_count(self) -> int:
        return await self.count_total()

    @strawberry.field(
        description="How many books match, reading at most `limit` of them; exact when "
        "the count is at most the limit, else the limit as a lower bound."
    )
    async def count(self, limit: LimitArgument = DEFAULT_COUNT_LIMIT) -> Count:
        return await bounded_count(self.count_at_most, limit)

    @classmethod
    def from_page(
        cls,
        result: Page,
        page: PageRequest,
        count_total: Callable[[], Awaitable[int]],
        count_at_most: CountAtMost,
    ) -> BookConnection:
        cursors = [encode_cursor(payload) for payload in result.cursor_payloads]
        return cls(
            edges=[
                BookEdge(cursor=cursor, node=Book.from_row(row))
                for row, cursor in zip(result.rows, cursors, strict=True)
            ],
            page_info=page_info_for(page, result.has_more, cursors),
            count_total=count_total,
            count_at_most=count_at_most,
        )
