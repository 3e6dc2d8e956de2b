"""``stats``: catalogue statistics; each figure computed only when asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, TypeVar

import strawberry

from bookql.catalog import stats
from bookql.catalog.admin import pence
from bookql.catalog.graphql.context import Info
from bookql.catalog.graphql.types import Category
from bookql.catalog.money import from_pence
from bookql.core.errors import BadUserInput

T = TypeVar("T")
DEFAULT_BUCKET_WIDTH = 10.0
_PENNY = Decimal("0.01")


def money_figure(pence: float | None) -> float | None:
    """Prices in GBP; averages rounded to the penny, halves up.

    In decimal: ``round`` on the float rounds 34.385 down, as the 34.38499… it is stored as.
    """
    if pence is None:
        return None
    return float((Decimal(repr(pence)) / 100).quantize(_PENNY, rounding=ROUND_HALF_UP))


@strawberry.type
class RatingCount:
    rating: int
    count: int


@strawberry.type(description="Books priced in [low, high).")
class PriceBucket:
    low: float
    high: float
    count: int


@strawberry.type
class CategoryStats:
    category: Category
    book_count: int
    average_price: float | None
    min_price: float | None
    max_price: float | None
    average_rating: float | None
    total_stock: int


class _Once:
    """Runs each named computation at most once per ``stats`` object."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Future[Any]] = {}

    async def get(self, name: str, compute: Callable[[], Awaitable[T]]) -> T:
        if name not in self._tasks:
            self._tasks[name] = asyncio.ensure_future(compute())
        result: T = await asyncio.shield(self._tasks[name])
        return result


@strawberry.type(
    name="CatalogueStats",
    description="Figures over the listed books; null where an empty catalogue has none.",
)
class CatalogStats:
    once: strawberry.Private[_Once]

    async def _run(self, info: Info, name: str, query: Callable[[Any], Awaitable[T]]) -> T:
        async def compute() -> T:
            async with info.context.engine.connect() as conn:
                return await query(conn)

        return await self.once.get(name, compute)

    async def _figures(self, info: Info) -> stats.Figures:
        return await self._run(info, "figures", stats.catalog_figures)

    @strawberry.field
    async def total_books(self, info: Info) -> int:
        return (await self._figures(info)).book_count

    @strawberry.field
    async def total_categories(self, info: Info) -> int:
        return await self._run(info, "categories", stats.category_count)

    @strawberry.field(description="Copies in stock, summed.")
    async def total_stock(self, info: Info) -> int:
        return (await self._figures(info)).total_stock

    @strawberry.field(description="GBP, rounded to the penny.")
    async def average_price(self, info: Info) -> float | None:
        return money_figure((await self._figures(info)).average_price_pence)

    @strawberry.field(description="GBP; the mean of the middle two prices when the count is even.")
    async def median_price(self, info: Info) -> float | None:
        median = await self._run(info, "median", stats.median_price_pence)
        return None if median is None else median / 100

    @strawberry.field
    async def min_price(self, info: Info) -> float | None:
        return money_figure((await self._figures(info)).min_price_pence)

    @strawberry.field
    async def max_price(self, info: Info) -> float | None:
        return money_figure((await self._figures(info)).max_price_pence)

    @strawberry.field
    async def average_rating(self, info: Info) -> float | None:
        return (await self._figures(info)).average_rating

    @strawberry.field(description="Every rating from 1 to 5, with zero counts too.")
    async def rating_distribution(self, info: Info) -> list[RatingCount]:
        counts = await self._run(info, "ratings", stats.rating_counts)
        return [RatingCount(rating=r, count=c) for r, c in counts.items()]

    @strawberry.field(description="Contiguous buckets from the cheapest book to the dearest.")
    async def price_histogram(
        self,
        info: Info,
        bucket_width: Annotated[
            float, strawberry.argument(description="GBP per bucket (default 10).")
        ] = DEFAULT_BUCKET_WIDTH,
    ) -> list[PriceBucket]:
        width = pence("bucketWidth", bucket_width)
        if width == 0:
            raise BadUserInput("`bucketWidth` must be positive", argument="bucketWidth")
        figures = await self._figures(info)
        if figures.min_price_pence is not None and figures.max_price_pence is not None:
            buckets = figures.max_price_pence // width - figures.min_price_pence // width + 1
            if buckets > stats.MAX_HISTOGRAM_BUCKETS:
                raise BadUserInput(
                    f"`bucketWidth` is too small: at most {stats.MAX_HISTOGRAM_BUCKETS} buckets",
                    argument="bucketWidth",
                )

        async def histogram(conn: Any) -> list[tuple[int, int]]:
            return await stats.price_histogram(conn, width)

        rows = await self._run(info, f"histogram:{width}", histogram)
        return [
            PriceBucket(low=from_pence(b * width), high=from_pence((b + 1) * width), count=c)
            for b, c in rows
        ]

    @strawberry.field(description="Per category, by name; categories with no books included.")
    async def categories(self, info: Info) -> list[CategoryStats]:
        rows = await self._run(info, "by-category", stats.figures_by_category)
        return [
            CategoryStats(
                category=Category.from_row(row),
                book_count=figures.book_count,
                average_price=money_figure(figures.average_price_pence),
                min_price=money_figure(figures.min_price_pence),
                max_price=money_figure(figures.max_price_pence),
                average_rating=figures.average_rating,
                total_stock=figures.total_stock,
            )
            for row, figures in rows
        ]


def new_stats() -> CatalogStats:
    return CatalogStats(once=_Once())
