"""Tallies of the listed books, kept by the database's triggers (migration 0013).

Four small tables count the books that are not removed, each keyed so that one figure of
``stats`` or one ``totalCount`` reads a handful of its rows instead of the books:

- ``tally_category_rating``: books, copies in stock and the sum of prices per (category,
  rating): totals, averages, the rating distribution, per-category figures (≤ 5 rows a
  category).
- ``tally_price``: books per exact price: min and max (the first and last row), the median
  (cumulative counts), histograms of any bucket width, counts by price range (one row per
  distinct price, a few thousand at most for a bookshop).
- ``tally_rating_price``: books per (rating, price): counts by price and rating range.
- ``tally_category_rating_price``: books per (category, rating, price): counts by category
  with a price range, and a category's min and max price by index probe.

A row whose count reaches zero is deleted, so a row exists only where books do. No write
path maintains them: whoever writes ``books`` (seed, crawl, admin, import, a hand-written
statement), the triggers move the tallies in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, PrimaryKeyConstraint, Table

from bookql.db.base import metadata

__all__ = [
    "tally_category_rating",
    "tally_category_rating_price",
    "tally_price",
    "tally_rating_price",
]


def _count() -> Column[int]:
    return Column("books", Integer, nullable=False)


tally_category_rating = Table(
    "tally_category_rating",
    metadata,
    Column("category_id", Integer, nullable=False),
    Column("rating", Integer, nullable=False),
    _count(),
    Column("stock", BigInteger, nullable=False),
    Column("price_sum", BigInteger, nullable=False),
    PrimaryKeyConstraint("category_id", "rating"),
    sqlite_with_rowid=False,
)

tally_price = Table(
    "tally_price",
    metadata,
    Column("price_pence", Integer, nullable=False),
    _count(),
    PrimaryKeyConstraint("price_pence"),
    sqlite_with_rowid=False,
)

tally_rating_price = Table(
    "tally_rating_price",
    metadata,
    Column("rating", Integer, nullable=False),
    Column("price_pence", Integer, nullable=False),
    _count(),
    PrimaryKeyConstraint("rating", "price_pence"),
    sqlite_with_rowid=False,
)

tally_category_rating_price = Table(
    "tally_category_rating_price",
    metadata,
    Column("category_id", Integer, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("price_pence", Integer, nullable=False),
    _count(),
    PrimaryKeyConstraint("category_id", "rating", "price_pence"),
    sqlite_with_rowid=False,
)
