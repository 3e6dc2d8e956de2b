"""Per-request DataLoaders: one statement per kind of look-up, however many books ask."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from strawberry.dataloader import DataLoader

from bookql.catalog import queries
from bookql.catalog.listing import BookListing, ListingPlan
from bookql.catalog.tables import books
from bookql.core.errors import BadUserInput
from bookql.db.cursors import decode_cursor
from bookql.db.keyset import Page, count_by_group_at_most, fetch_page, fetch_pages_by_group
from bookql.graphql.relay import PageRequest

K = TypeVar("K")
V = TypeVar("V")

HISTORY_CAP = 100
CategoryPageKey = tuple[int, BookListing, PageRequest]
CategoryCountKey = tuple[int, BookListing]
CategoryCountAtMostKey = tuple[int, BookListing, int]


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose results survive one waiter being cancelled.

    A key's future is shared by every field that loads it, and graphql-core cancels the
    siblings of a field that failed: awaited bare, the shared future would be cancelled
    with them, and an unrelated field waiting on the same key would fail with it.
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


def _loader(
    engine: AsyncEngine,
    fetch: Callable[[AsyncConnection, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: V,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        async with engine.connect() as conn:
            found = await fetch(conn, keys)
        return [found.get(key, default) for key in keys]

    return SharedLoader(load_fn=load)


class CatalogLoaders:
    """The catalogue's loaders for one request; nothing here outlives it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.book_by_upc: DataLoader[str, Row[Any] | None] = _loader(
            engine, queries.books_by_upcs, None
        )
        self.book_by_id: DataLoader[int, Row[Any] | None] = _loader(
            engine, queries.books_by_ids, None
        )
        self.category_by_id: DataLoader[int, Row[Any] | None] = _loader(
            engine, queries.categories_by_ids, None
        )
        self.category_by_slug: DataLoader[str, Row[Any] | None] = _loader(
            engine, queries.categories_by_slugs, None
        )
        self.category_by_slug_or_name: DataLoader[str, Row[Any] | None] = _loader(
            engine, queries.categories_by_slug_or_name, None
        )
        self.book_count_by_category: DataLoader[int, int] = _loader(
            engine, queries.book_counts_by_category, 0
        )
        self.description_by_book: DataLoader[int, str | None] = _loader(
            engine, queries.descriptions_by_book_ids, None
        )
        self.category_books: DataLoader[CategoryPageKey, Page] = SharedLoader(
            load_fn=self._category_pages
        )
        self.category_book_count: DataLoader[CategoryCountKey, int] = SharedLoader(
            load_fn=self._category_counts
        )
        self.category_book_count_at_most: DataLoader[CategoryCountAtMostKey, tuple[int, bool]] = (
            SharedLoader(load_fn=self._category_counts_at_most)
        )
        self._history: dict[int, DataLoader[int, list[Row[Any]]]] = {}

    def price_history(self, limit: int) -> DataLoader[int, list[Row[Any]]]:
        """Histories of at most ``limit`` points; one loader (and statement) per limit."""
        if limit not in self._history:

            async def fetch(
                conn: AsyncConnection, ids: Sequence[int]
            ) -> Mapping[int, list[Row[Any]]]:
                return await queries.price_history_by_book_ids(conn, ids, limit)

            self._history[limit] = _loader(self._engine, fetch, [])
        return self._history[limit]

    async def _category_pages(self, keys: list[CategoryPageKey]) -> list[Page]:
        """First pages of many categories' books in one statement per (listing, page size).

        The keys' listings differ only in their category, so each is batched under its
        listing without the category, and the category becomes the statement's group.
        """
        pages: dict[CategoryPageKey, Page] = {}
        groups: dict[tuple[BookListing, PageRequest], list[CategoryPageKey]] = defaultdict(list)
        async with self._engine.connect() as conn:
            plans: dict[BookListing, ListingPlan] = {}
            for key in keys:
                category_id, listing, page = key
                shared = replace(listing, category_id=None)
                plan = plans.setdefault(shared, shared.plan(conn.dialect.name))
                if page.cursor is None:
                    groups[(shared, page)].append(key)
                    continue
                after = plan.ordering.parse_cursor_payload(decode_cursor(page.cursor))
                if after is None:
                    raise BadUserInput(f"{page.cursor!r} is not a cursor of this list")
                pages[key] = await fetch_page(
                    conn,
                    columns=queries.BOOK_COLUMNS,
                    where=[*plan.where, books.c.category_id == category_id],
                    ordering=plan.ordering,
                    size=page.size,
                    forward=page.forward,
                    after_values=after,
                    source=plan.source,
                )
            for (shared, page), grouped in groups.items():
                plan = plans[shared]
                found = await fetch_pages_by_group(
                    conn,
                    columns=queries.BOOK_COLUMNS,
                    where=plan.where,
                    group=books.c.category_id,
                    groups=sorted({category_id for category_id, _, _ in grouped}),
                    ordering=plan.ordering,
                    size=page.size,
                    forward=page.forward,
                    source=plan.source,
                )
                for key in grouped:
                    pages[key] = found[key[0]]
        return [pages[key] for key in keys]

    async def _category_counts(self, keys: list[CategoryCountKey]) -> list[int]:
        """Counts of many categories' books, one statement per listing (as in the pages)."""
        counts: dict[CategoryCountKey, int] = {}
        by_listing: dict[BookListing, list[CategoryCountKey]] = defaultdict(list)
        for key in keys:
            by_listing[replace(key[1], category_id=None)].append(key)
        async with self._engine.connect() as conn:
            for shared, grouped in by_listing.items():
                plan = shared.plan(conn.dialect.name)
                category_ids = sorted({category_id for category_id, _ in grouped})
                found = await counts_by_category(conn, plan, category_ids)
                for key in grouped:
                    counts[key] = found.get(key[0], 0)
        return [counts[key] for key in keys]

    async def _category_counts_at_most(
        self, keys: list[CategoryCountAtMostKey]
    ) -> list[tuple[int, bool]]:
        """Bounded counts of many categories' books: one statement per listing and limit."""
        counts: dict[CategoryCountAtMostKey, tuple[int, bool]] = {}
        batches: dict[tuple[BookListing, int], list[CategoryCountAtMostKey]] = defaultdict(list)
        for key in keys:
            batches[(replace(key[1], category_id=None), key[2])].append(key)
        async with self._engine.connect() as conn:
            for (shared, limit), grouped in batches.items():
                plan = shared.plan(conn.dialect.name)
                category_ids = sorted({category_id for category_id, _, _ in grouped})
                found = await counts_at_most_by_category(conn, plan, category_ids, limit)
                for key in grouped:
                    counts[key] = found[key[0]]
        return [counts[key] for key in keys]


async def counts_at_most_by_category(
    conn: AsyncConnection, plan: ListingPlan, category_ids: Sequence[int], limit: int
) -> dict[int, tuple[int, bool]]:
    """``count(limit:)`` of a listing (planned without its category) in each category:
    ``(count capped at limit, exact)``, from the tallies when they can answer, else reading
    at most ``limit + 1`` books of each category."""
    if plan.tally is not None:
        counts = await plan.tally.counts_by_category(conn, category_ids)
    else:
        counts = await count_by_group_at_most(
            conn,
            where=plan.where,
            group=books.c.category_id,
            groups=category_ids,
            tie_break=books.c.id,
            limit=limit,
            source=plan.counted,
        )
    found = {category_id: counts.get(category_id, 0) for category_id in category_ids}
    return {key: (min(count, limit), count <= limit) for key, count in found.items()}


async def counts_by_category(
    conn: AsyncConnection, plan: ListingPlan, category_ids: Sequence[int]
) -> dict[int, int]:
    """How many books of a listing (planned without its category) each category holds;
    categories with none are missing. From the tallies when they can answer."""
    if plan.tally is not None:
        return await plan.tally.counts_by_category(conn, category_ids)
    statement = (
        select(books.c.category_id, func.count())
        .select_from(plan.counted)
        .where(*plan.where, books.c.category_id.in_(category_ids))
        .group_by(books.c.category_id)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(statement)}
