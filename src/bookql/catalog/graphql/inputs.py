"""GraphQL inputs of the catalogue: filters, orders, and the admin writes' inputs."""

from __future__ import annotations

import strawberry

from bookql.catalog.listing import BookOrderField as BookOrderFieldValue
from bookql.catalog.listing import OrderDirection as OrderDirectionValue

BookOrderField = strawberry.enum(
    BookOrderFieldValue,
    name="BookOrderField",
    description="What books can be ordered by; RELEVANCE needs `search`.",
)
OrderDirection = strawberry.enum(OrderDirectionValue, name="OrderDirection")


@strawberry.input(description="Every given condition must hold.")
class BookFilter:
    category: str | None = strawberry.field(
        default=None, description="A category's slug or name; an unknown one is an error."
    )
    price_min: float | None = strawberry.field(default=None, description="GBP, inclusive.")
    price_max: float | None = strawberry.field(default=None, description="GBP, inclusive.")
    rating_min: int | None = None
    rating_max: int | None = None
    in_stock: bool | None = None
    title_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the title."
    )


@strawberry.input
class BookOrder:
    field: BookOrderField  # type: ignore[valid-type]
    direction: OrderDirection  # type: ignore[valid-type]
