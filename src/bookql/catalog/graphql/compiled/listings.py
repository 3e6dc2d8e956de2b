"""Pages of books for compiled connections: arguments, listings, keyset pages and counts.

The listing, its plan (source, conditions, ordering), the keyset statements and the cursors
are the very ones the standard resolvers use; only the selected columns differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import FromClause, Row, Select

from bookql.catalog import queries
from bookql.catalog.graphql.counts import MAX_COUNT_LIMIT
from bookql.catalog.graphql.inputs import BookFilter, BookOrder
from bookql.catalog.graphql.listing import listing_of
from bookql.catalog.graphql.loaders import counts_at_most_by_category, counts_by_category
from bookql.catalog.listing import BookListing, ListingPlan
from bookql.catalog.tables import books, categories, descriptions
from bookql.db.cursors import decode_cursor, encode_cursor
from bookql.db.keyset import (
    Ordering,
    Page,
    fetch_page,
    fetch_pages_by_group,
    page_statement,
    trim_page,
)
from bookql.graphql.compiled.plan import Fallback, PlannedField, Run
from bookql.graphql.compiled.rows import Columns
from bookql.graphql.relay import PageInfo, PageRequest, page_info_for


class PageData:
    """One connection page. Its cursors are encoded only when the response shows them (and
    ``pageInfo`` alone needs only the first and the last)."""

    __slots__ = ("_cursors", "at_most", "has_more", "payload", "request", "rows", "total")

    def __init__(
        self,
        rows: Sequence[Row[Any]],
        request: PageRequest,
        has_more: bool,
        payload: Callable[[int], str],
        total: Callable[[], int],
        at_most: Callable[[PlannedField], tuple[int, bool]],
    ) -> None:
        self.rows = rows
        self.request = request
        self.has_more = has_more
        self.payload = payload
        self.total = total
        self.at_most = at_most  # ``count(limit:)`` of a field: (count capped, exact)
        self._cursors: list[str] | None = None

    @property
    def cursors(self) -> list[str]:
        if self._cursors is None:
            self._cursors = [encode_cursor(self.payload(i)) for i in range(len(self.rows))]
        return self._cursors

    @property
    def info(self) -> PageInfo:
        if self._cursors is None and len(self.rows) > 2:  # page_info_for reads the ends only
            ends = [encode_cursor(self.payload(0)), encode_cursor(self.payload(-1))]
        else:
            ends = self.cursors
        return page_info_for(self.request, self.has_more, ends)


def count_limit(run: Run, field: PlannedField) -> int:
    """``count``'s limit; one the resolver refuses goes back to it, for its error."""
    limit = int(run.arguments(field)["limit"])
    if not 0 <= limit <= MAX_COUNT_LIMIT:
        raise Fallback("count limit out of range")
    return limit


def book_source(base: FromClause, columns: Columns) -> FromClause:
    """The FROM of a books statement: the categories and descriptions it reads joined in."""
    source = base
    if columns.uses(categories):
        source = source.join(categories, categories.c.id == books.c.category_id)
    if columns.uses(descriptions):
        source = source.outerjoin(descriptions, descriptions.c.book_id == books.c.id)
    return source


def page_request(arguments: Mapping[str, Any]) -> PageRequest:
    return PageRequest.from_args(
        arguments["first"], arguments["after"], arguments["last"], arguments["before"]
    )


def _book_filter(raw: Mapping[str, Any] | None) -> BookFilter:
    if raw is None:
        return BookFilter()
    return BookFilter(
        category=raw.get("category"),
        price_min=raw.get("priceMin"),
        price_max=raw.get("priceMax"),
        rating_min=raw.get("ratingMin"),
        rating_max=raw.get("ratingMax"),
        in_stock=raw.get("inStock"),
        title_contains=raw.get("titleContains"),
    )


def _book_orders(raw: Sequence[Mapping[str, Any]] | None) -> list[BookOrder] | None:
    if raw is None:
        return None
    return [BookOrder(field=order["field"], direction=order["direction"]) for order in raw]


def books_listing(run: Run, arguments: Mapping[str, Any]) -> BookListing:
    """``books``' listing; a category named in the filter is looked up on this connection."""
    f = _book_filter(arguments["filter"])
    category_id = None
    if f.category is not None:
        found = run.read(queries.categories_by_slug_or_name, [f.category]).get(f.category)
        if found is None:
            raise Fallback("unknown category in the filter")
        category_id = found.id
    return listing_of(f, _book_orders(arguments["orderBy"]), arguments["search"], category_id)


def category_books_listing(arguments: Mapping[str, Any]) -> BookListing:
    """``Category.books``' listing, without the category (it is the group of the batch)."""
    f = _book_filter(arguments["filter"])
    if f.category is not None:
        raise Fallback("a category's books narrowed by category")
    return listing_of(f, _book_orders(arguments["orderBy"]), None, None)


def _after(ordering: Ordering, cursor: str | None) -> list[Any] | None:
    if cursor is None:
        return None
    values = ordering.parse_cursor_payload(decode_cursor(cursor))
    if values is None:
        raise Fallback("a cursor of another list")
    return values


def _grouped_page_data(
    page: PageRequest,
    result: Page,
    total: Callable[[], int],
    at_most: Callable[[PlannedField], tuple[int, bool]],
) -> PageData:
    payload = result.cursor_payloads.__getitem__
    return PageData(result.rows, page, result.has_more, payload, total, at_most)


class BooksPages:
    """Pages of ``books`` for one selection: the statements of first pages are kept (by
    listing and size), so a repeated query only binds and runs its statement."""

    MAX_STATEMENTS = 64

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self._statements: dict[tuple[BookListing, str, int, bool], tuple[ListingPlan, Select[Any]]]
        self._statements = {}

    def page(self, run: Run, listing: BookListing, page: PageRequest) -> PageData:
        plan, statement = self._statement(run.dialect, listing, page)
        rows, has_more = trim_page(
            run.conn.execute(statement).all(), page.size, forward=page.forward
        )
        width, ordering = len(self.columns.columns), plan.ordering

        def payload(index: int) -> str:
            return ordering.cursor_payload(tuple(rows[index])[width:])

        return PageData(
            rows,
            page,
            has_more,
            payload,
            lambda: run.read(plan.count),
            lambda field: run.read(plan.count_at_most, count_limit(run, field)),
        )

    def _statement(
        self, dialect: str, listing: BookListing, page: PageRequest
    ) -> tuple[ListingPlan, Select[Any]]:
        key = (listing, dialect, page.size, page.forward)
        found = self._statements.get(key) if page.cursor is None else None
        if found is not None:
            return found
        plan = listing.plan(dialect)
        statement = page_statement(
            columns=self.columns.selected,
            where=plan.where,
            ordering=plan.ordering,
            size=page.size,
            forward=page.forward,
            after_values=_after(plan.ordering, page.cursor),
            source=book_source(plan.source, self.columns),
        )
        if page.cursor is None and len(self._statements) < self.MAX_STATEMENTS:
            self._statements[key] = (plan, statement)
        return plan, statement


def category_pages(
    run: Run,
    columns: Columns,
    listing: BookListing,
    page: PageRequest,
    category_ids: Sequence[int],
) -> list[PageData]:
    """A page of each category's books: first pages in one statement for all (as the
    standard DataLoader batches them), pages after a cursor one statement each."""
    plan = listing.plan(run.dialect)
    source = book_source(plan.source, columns)
    if page.cursor is None:
        found = run.read(
            fetch_pages_by_group,
            columns=columns.selected,
            where=plan.where,
            group=books.c.category_id,
            groups=sorted(category_ids),
            ordering=plan.ordering,
            size=page.size,
            forward=page.forward,
            source=source,
        )
    else:
        after = _after(plan.ordering, page.cursor)
        found = {
            category_id: run.read(
                fetch_page,
                columns=columns.selected,
                where=[*plan.where, books.c.category_id == category_id],
                ordering=plan.ordering,
                size=page.size,
                forward=page.forward,
                after_values=after,
                source=source,
            )
            for category_id in category_ids
        }
    counts: dict[int, int] | None = None

    def total(category_id: int) -> int:
        nonlocal counts
        if counts is None:  # one statement for every category, when the first asks
            counts = run.read(counts_by_category, plan, sorted(category_ids))
        return counts.get(category_id, 0)

    bounded: dict[int, dict[int, tuple[int, bool]]] = {}

    def at_most(category_id: int, field: PlannedField) -> tuple[int, bool]:
        limit = count_limit(run, field)
        if limit not in bounded:  # one statement for every category, per limit
            bounded[limit] = run.read(counts_at_most_by_category, plan, sorted(category_ids), limit)
        return bounded[limit][category_id]

    return [
        _grouped_page_data(
            page,
            found[category_id],
            partial(total, category_id),
            partial(at_most, category_id),
        )
        for category_id in category_ids
    ]
