"""Per-request DataLoaders: one statement per kind of look-up, however many books ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from strawberry.dataloader import DataLoader

from bookql.catalog import queries

K = TypeVar("K")
V = TypeVar("V")

HISTORY_CAP = 100


def _loader(
    engine: AsyncEngine,
    fetch: Callable[[AsyncConnection, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: V,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        async with engine.connect() as conn:
            found = await fetch(conn, keys)
        return [found.get(key, default) for key in keys]

    return DataLoader(load_fn=load)


class CatalogLoaders:
    """The catalogue's loaders for one request; nothing here outlives it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.book_by_upc: DataLoader[str, Row[Any] | None] = _loader(
            engine, queries.books_by_upcs, None
        )
        self.category_by_id: DataLoader[int, Row[Any] | None] = _loader(
            engine, queries.categories_by_ids, None
        )
        self.category_by_slug: DataLoader[str, Row[Any] | None] = _loader(
            engine, queries.categories_by_slugs, None
        )
        self.book_count_by_category: DataLoader[int, int] = _loader(
            engine, queries.book_counts_by_category, 0
        )
        self.description_by_book: DataLoader[int, str | None] = _loader(
            engine, queries.descriptions_by_book_ids, None
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
