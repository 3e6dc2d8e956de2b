"""From GraphQL arguments (``filter``, ``orderBy``, ``search``) to a ``BookListing``."""

from __future__ import annotations

from bookql.catalog.admin import pence
from bookql.catalog.graphql.context import Info
from bookql.catalog.graphql.inputs import BookFilter, BookOrder
from bookql.catalog.listing import BookListing, BookOrderField, OrderDirection
from bookql.core.errors import BadUserInput

MAX_SEARCH_LENGTH = 500


async def listing_from_arguments(
    info: Info,
    filter: BookFilter | None,
    order_by: list[BookOrder] | None,
    search: str | None,
    *,
    category_id: int | None = None,
) -> BookListing:
    f = filter or BookFilter()
    if f.category is not None:
        if category_id is not None:
            raise BadUserInput("`filter.category` cannot narrow a category's own books")
        row = await info.context.catalog.category_by_slug_or_name.load(f.category)
        if row is None:
            raise BadUserInput(
                f"no category {f.category!r} (give a slug or a name)", field="category"
            )
        category_id = row.id
    return listing_of(f, order_by, search, category_id)


def listing_of(
    f: BookFilter, order_by: list[BookOrder] | None, search: str | None, category_id: int | None
) -> BookListing:
    """The listing of arguments whose category, if any, is already resolved to its id."""
    if search is not None and len(search) > MAX_SEARCH_LENGTH:
        raise BadUserInput(f"`search` is longer than {MAX_SEARCH_LENGTH} characters")
    return BookListing(
        category_id=category_id,
        price_min_pence=pence("priceMin", f.price_min) if f.price_min is not None else None,
        price_max_pence=pence("priceMax", f.price_max) if f.price_max is not None else None,
        rating_min=f.rating_min,
        rating_max=f.rating_max,
        in_stock=f.in_stock,
        title_contains=f.title_contains,
        search=search,
        order=tuple((BookOrderField(o.field), OrderDirection(o.direction)) for o in order_by or ()),
    )
