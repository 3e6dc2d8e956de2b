"""GraphQL types of the catalogue, built from table rows (``BookTable`` -> ``Book``).

Each stored field is declared once, with its column (``fields.stored``); see
``docs/adding-a-field.md``. Fields with resolvers read through the DataLoaders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import Row

from bookql.catalog.graphql.context import Info
from bookql.catalog.graphql.counts import (
    DEFAULT_COUNT_LIMIT,
    Count,
    CountAtMost,
    LimitArgument,
    bounded_count,
)
from bookql.catalog.graphql.fields import MONEY, POSITIVE, GlobalId, private, row_values, stored
from bookql.catalog.graphql.inputs import BookFilter, BookOrder
from bookql.catalog.graphql.listing import listing_from_arguments
from bookql.catalog.graphql.loaders import HISTORY_CAP
from bookql.catalog.tables import books, categories, price_points
from bookql.core.errors import BadUserInput
from bookql.db.cursors import encode_cursor
from bookql.db.keyset import Page
from bookql.graphql.relay import (
    CursorArgument,
    Node,
    PageArgument,
    PageInfo,
    PageRequest,
    page_info_for,
)

DEFAULT_HISTORY = 10


@strawberry.type(description="What a book cost, and how many were in stock, at one time.")
class PricePoint:
    observed_at: datetime = stored(price_points.c.observed_at)
    price: float = stored(
        price_points.c.price_incl_tax_pence,
        MONEY,
        description="Price as shown on the site (incl. tax), GBP.",
    )
    price_excl_tax: float = stored(price_points.c.price_excl_tax_pence, MONEY)
    price_incl_tax: float = stored(price_points.c.price_incl_tax_pence, MONEY)
    tax: float = stored(price_points.c.tax_pence, MONEY)
    availability: int = stored(price_points.c.availability)

    @classmethod
    def from_row(cls, row: Row[Any]) -> PricePoint:
        return cls(**row_values(cls, row))


@strawberry.type(description="A category of the catalogue, as in the site's sidebar.")
class Category(Node):
    id: strawberry.ID = stored(categories.c.id, GlobalId("Category"))
    name: str = stored(categories.c.name)
    slug: str = stored(
        categories.c.slug, description="The name, lower case and hyphenated; unique."
    )
    version: int = stored(
        categories.c.version,
        description="Grows whenever the name or slug changes, whoever changes them. Send it"
        " back with an update: if the category changed since you read it, the update is"
        " refused (CONFLICT). Compare versions, never compute them.",
    )
    pk: strawberry.Private[int] = private(categories.c.id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Category:
        return cls(**row_values(cls, row))

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
            return await loaders.category_book_count_at_most.load((self.pk, listing, limit))

        return BookConnection.from_page(result, page, count_total, count_at_most)


@strawberry.type(description="A book of the catalogue, keyed by its UPC.")
class Book(Node):
    id: strawberry.ID = stored(books.c.upc, GlobalId("Book"))
    upc: str = stored(books.c.upc)
    title: str = stored(books.c.title)
    product_type: str = stored(books.c.product_type)
    price: float = stored(
        books.c.price_incl_tax_pence,
        MONEY,
        description="Price as shown on the site (incl. tax), GBP.",
    )
    price_excl_tax: float = stored(books.c.price_excl_tax_pence, MONEY)
    price_incl_tax: float = stored(books.c.price_incl_tax_pence, MONEY)
    tax: float = stored(books.c.tax_pence, MONEY)
    currency: str = stored(books.c.currency)
    availability: int = stored(books.c.availability, description="Copies in stock.")
    in_stock: bool = stored(books.c.availability, POSITIVE)
    rating: int = stored(books.c.rating, description="Star rating, 1 to 5.")
    num_reviews: int = stored(books.c.num_reviews)
    image_url: str = stored(books.c.image_url)
    product_url: str = stored(books.c.product_url)
    first_seen_at: datetime = stored(books.c.first_seen_at)
    last_seen_at: datetime = stored(books.c.last_seen_at)
    removed_at: datetime | None = stored(
        books.c.removed_at,
        description="When the book vanished from the site (or was deleted); null while listed.",
    )
    version: int = stored(
        books.c.version,
        description="Grows whenever the book's content (any field but lastSeenAt, description"
        " included) changes, whoever changes it: an administrator, a crawl, an import. Send it"
        " back with an update: if the book changed since you read it, the update is refused"
        " (CONFLICT). Compare versions, never compute them.",
    )
    pk: strawberry.Private[int] = private(books.c.id)
    category_pk: strawberry.Private[int] = private(books.c.category_id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Book:
        return cls(**row_values(cls, row))

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
