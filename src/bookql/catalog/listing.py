"""What a list of books asks for (filter, order, search) as one hashable value.

The same ``BookListing`` drives ``books``, ``Category.books`` and their counts, and it is the
key under which nested connections are batched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, FromClause, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.catalog.search import Search, build_search
from bookql.catalog.tables import books
from bookql.catalog.tallies import TallyFilter
from bookql.core.errors import BadUserInput
from bookql.db.keyset import Ordering, SortColumn


class BookOrderField(StrEnum):
    PRICE = "PRICE"
    RATING = "RATING"
    TITLE = "TITLE"
    AVAILABILITY = "AVAILABILITY"
    LAST_SEEN_AT = "LAST_SEEN_AT"
    RELEVANCE = "RELEVANCE"


class OrderDirection(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


ORDER_COLUMNS: dict[BookOrderField, ColumnElement[Any]] = {
    BookOrderField.PRICE: books.c.price_incl_tax_pence,
    BookOrderField.RATING: books.c.rating,
    BookOrderField.TITLE: books.c.title,
    BookOrderField.AVAILABILITY: books.c.availability,
    BookOrderField.LAST_SEEN_AT: books.c.last_seen_at,
}


@dataclass(frozen=True, slots=True)
class BookListing:
    """A validated listing: every bound in exact units, the order without duplicates."""

    category_id: int | None = None
    price_min_pence: int | None = None
    price_max_pence: int | None = None
    rating_min: int | None = None
    rating_max: int | None = None
    in_stock: bool | None = None
    title_contains: str | None = None
    search: str | None = None
    order: tuple[tuple[BookOrderField, OrderDirection], ...] = ()

    def __post_init__(self) -> None:
        low, high = self.price_min_pence, self.price_max_pence
        if low is not None and high is not None and low > high:
            raise BadUserInput("`priceMin` is above `priceMax`", field="priceMin")
        for name, value in (("ratingMin", self.rating_min), ("ratingMax", self.rating_max)):
            if value is not None and not 1 <= value <= 5:
                raise BadUserInput(f"`{name}` must be between 1 and 5", field=name)
        if (
            self.rating_min is not None
            and self.rating_max is not None
            and self.rating_min > self.rating_max
        ):
            raise BadUserInput("`ratingMin` is above `ratingMax`", field="ratingMin")
        fields = [field for field, _ in self.order]
        if len(set(fields)) != len(fields):
            raise BadUserInput("`orderBy` names a field twice", argument="orderBy")
        if BookOrderField.RELEVANCE in fields and self.search is None:
            raise BadUserInput("ordering by RELEVANCE needs `search`", argument="orderBy")

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [books.c.removed_at.is_(None)]
        if self.category_id is not None:
            clauses.append(books.c.category_id == self.category_id)
        if self.price_min_pence is not None:
            clauses.append(books.c.price_incl_tax_pence >= self.price_min_pence)
        if self.price_max_pence is not None:
            clauses.append(books.c.price_incl_tax_pence <= self.price_max_pence)
        if self.rating_min is not None:
            clauses.append(books.c.rating >= self.rating_min)
        if self.rating_max is not None:
            clauses.append(books.c.rating <= self.rating_max)
        if self.in_stock is not None:
            clauses.append(books.c.availability > 0 if self.in_stock else books.c.availability == 0)
        if self.title_contains:
            clauses.append(_contains(books.c.title, self.title_contains))
        return clauses

    def plan(self, dialect: str) -> ListingPlan:
        search = build_search(dialect, self.search) if self.search is not None else None
        where = self.where()
        order = self.order or (
            ((BookOrderField.RELEVANCE, OrderDirection.DESC),) if search is not None else ()
        )
        by_relevance = any(field is BookOrderField.RELEVANCE for field, _ in order)
        count_source: FromClause = search.join_onto(books) if search is not None else books
        source, relevance = count_source, None
        if search is not None and by_relevance:
            ranked = search.ranked(where)
            source = books.join(ranked, ranked.c.book_id == books.c.id)
            relevance = ranked.c.relevance
        columns = [
            SortColumn(
                relevance
                if field is BookOrderField.RELEVANCE and relevance is not None
                else ORDER_COLUMNS[field],
                descending=direction is OrderDirection.DESC,
            )
            for field, direction in order
        ]
        name = ",".join(f"{field.value}:{direction.value}" for field, direction in order) or "site"
        if search is not None and by_relevance:
            # a relevance is only comparable within one search: tie the cursor to its words
            words = " ".join(search.words)
            name += ":" + hashlib.sha256(words.encode()).hexdigest()[:12]
        ordering = Ordering(name, (*columns, SortColumn(books.c.id)))
        return ListingPlan(
            source=source,
            where=where,
            ordering=ordering,
            search=search,
            tally=self.tally_filter(),
            count_source=count_source,
        )

    def tally_filter(self) -> TallyFilter | None:
        """The listing's bounds, if the tallies can count it: no title, stock or search."""
        if self.in_stock is not None or self.title_contains or self.search is not None:
            return None
        return TallyFilter(
            category_id=self.category_id,
            price_min_pence=self.price_min_pence,
            price_max_pence=self.price_max_pence,
            rating_min=self.rating_min,
            rating_max=self.rating_max,
        )


@dataclass(frozen=True)
class ListingPlan:
    source: FromClause
    where: list[ColumnElement[bool]]
    ordering: Ordering
    search: Search | None
    tally: TallyFilter | None = None
    count_source: FromClause | None = None
    """What counts read when it differs from ``source``: a relevance order's pages read the
    search's ranked candidates (``Search.ranked``), its counts every match."""

    @property
    def counted(self) -> FromClause:
        """What counts read: every book of the listing, whatever its pages show."""
        return self.source if self.count_source is None else self.count_source

    async def count(self, conn: AsyncConnection) -> int:
        """Exact: from the tallies when they can answer, else by counting the rows."""
        if self.tally is not None:
            return await self.tally.count(conn)
        statement = select(func.count()).select_from(self.counted).where(*self.where)
        return int((await conn.execute(statement)).scalar_one())

    async def count_at_most(self, conn: AsyncConnection, limit: int) -> tuple[int, bool]:
        """``(min(count, limit), count <= limit)``, reading at most ``limit + 1`` books."""
        if self.tally is not None:
            count = await self.tally.count(conn)
        else:
            matching = select(books.c.id).select_from(self.counted).where(*self.where)
            bounded = matching.limit(limit + 1).subquery()
            statement = select(func.count()).select_from(bounded)
            count = int((await conn.execute(statement)).scalar_one())
        return min(count, limit), count <= limit


def _contains(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring, with LIKE's wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")
