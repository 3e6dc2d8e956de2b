"""Counts of listed books read from the tallies, for the filters the tallies are keyed by.

A listing filtered by nothing but category, price range and rating range is counted by
summing the tally rows its bounds cover (``bookql.catalog.tally_tables``): at most five
rows without a price range; with one, the distinct prices in range of each rating asked
for, walked in the primary key. Other filters (title, stock, search) count the books.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.tally_tables import (
    tally_category_rating,
    tally_category_rating_price,
    tally_price,
    tally_rating_price,
)

RATINGS = range(1, 6)


@dataclass(frozen=True, slots=True)
class TallyFilter:
    """The bounds of a listing that the tallies can count (every one optional)."""

    category_id: int | None = None
    price_min_pence: int | None = None
    price_max_pence: int | None = None
    rating_min: int | None = None
    rating_max: int | None = None

    def _table(self, by_category: bool) -> Table:
        """The smallest tally keyed by every column the bounds name."""
        priced = self.price_min_pence is not None or self.price_max_pence is not None
        rated = self.rating_min is not None or self.rating_max is not None
        if not priced:
            return tally_category_rating
        if by_category or self.category_id is not None:
            return tally_category_rating_price
        return tally_rating_price if rated else tally_price

    def _where(self, table: Table) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.category_id is not None:
            clauses.append(table.c.category_id == self.category_id)
        if "rating" in table.c:
            low, high = self.rating_min or RATINGS.start, self.rating_max or RATINGS.stop - 1
            if (low, high) != (RATINGS.start, RATINGS.stop - 1) or "price_pence" in table.c:
                # a list, not a range: one walk of the price key per rating
                clauses.append(table.c.rating.in_(list(range(low, high + 1))))
        if self.price_min_pence is not None:
            clauses.append(table.c.price_pence >= self.price_min_pence)
        if self.price_max_pence is not None:
            clauses.append(table.c.price_pence <= self.price_max_pence)
        return clauses

    def count_statement(self) -> Select[Any]:
        table = self._table(by_category=False)
        return select(func.coalesce(func.sum(table.c.books), 0)).where(*self._where(table))

    async def count(self, conn: AsyncConnection) -> int:
        return int((await conn.execute(self.count_statement())).scalar_one())

    def by_category_statement(self, category_ids: Sequence[int]) -> Select[Any]:
        table = self._table(by_category=True)
        category = table.c.category_id
        return (
            select(category, func.sum(table.c.books))
            .where(*self._where(table), category.in_(category_ids))
            .group_by(category)
        )

    async def counts_by_category(
        self, conn: AsyncConnection, category_ids: Sequence[int]
    ) -> dict[int, int]:
        """Counts of the given categories (this filter has none of its own); those with no
        matching book are missing."""
        statement = self.by_category_statement(category_ids)
        return {int(c): int(n) for c, n in await conn.execute(statement) if n}
