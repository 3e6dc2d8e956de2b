"""Catalogue tables: SQLModel declarations (``*Table``), and their Core tables (``books``, …)
that the queries use.

Books are keyed by UPC (titles are not unique). Money is integer pence: SQLite has no
exact decimal type. Descriptions live in a side table so that scans and aggregates over
``books`` do not wade through kilobytes of text per row.

``version`` (books and categories) is moved by the database's own triggers (migration 0009)
whenever a row's content changes, whoever writes it: clients send it back to have a stale
edit refused. No write path sets it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

from bookql.db.base import metadata, table_of
from bookql.db.types import UTCDateTime

__all__ = [
    "CRAWL",
    "IMPORT",
    "LISTING_INDEXES",
    "LISTING_ORDERS",
    "BookDescriptionTable",
    "BookTable",
    "CategoryTable",
    "PricePointTable",
    "books",
    "categories",
    "descriptions",
    "metadata",
    "price_points",
]


CRAWL = "crawl"  # crawled, or seeded from the bundled snapshot (which is the crawled site)
IMPORT = "import"  # loaded by `bookql import`
ADMIN = "admin"  # created by an administrator through the API

TITLE_TYPE = Text().with_variant(Text(collation="C"), "postgresql")


LISTING_ORDERS = {
    "price": "price_incl_tax_pence",
    "rating": "rating",
    "title": "title",
    "availability": "availability",
    "last_seen": "last_seen_at",
}
"""The columns a listing sorts by (``BookOrderField``), by the short name of their indexes."""


def _version_column() -> Column[int]:
    return Column(Integer, nullable=False, server_default=text("1"))


class CategoryTable(SQLModel, table=True):
    __tablename__ = "categories"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    slug: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    version: int = Field(default=1, sa_column=_version_column())


class BookTable(SQLModel, table=True):
    __tablename__ = "books"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint(
            "price_excl_tax_pence >= 0 AND price_incl_tax_pence >= 0 AND tax_pence >= 0",
            name="prices_not_negative",
        ),
        CheckConstraint("availability >= 0", name="availability_not_negative"),
        CheckConstraint("num_reviews >= 0", name="num_reviews_not_negative"),
        Index("ix_books_category_id", "category_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    upc: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    # Binary ("C") order on PostgreSQL too, so both databases sort titles the same way.
    title: str = Field(sa_column=Column(TITLE_TYPE, nullable=False))
    product_type: str = Field(sa_column=Column(String(100), nullable=False))
    price_excl_tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    price_incl_tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    availability: int = Field(sa_column=Column(Integer, nullable=False))
    rating: int = Field(sa_column=Column(Integer, nullable=False))
    num_reviews: int = Field(sa_column=Column(Integer, nullable=False))
    image_url: str = Field(sa_column=Column(Text, nullable=False))
    product_url: str = Field(sa_column=Column(Text, nullable=False))
    category_id: int = Field(
        sa_column=Column(Integer, ForeignKey("categories.id", ondelete="RESTRICT"), nullable=False)
    )
    first_seen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    removed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Who owns the book: only ``crawl`` books are retired by a crawl that no longer sees them.
    source: str = Field(
        default=CRAWL,
        sa_column=Column(String(16), nullable=False, server_default=text(f"'{CRAWL}'")),
    )
    version: int = Field(default=1, sa_column=_version_column())


class BookDescriptionTable(SQLModel, table=True):
    __tablename__ = "book_descriptions"

    book_id: int = Field(
        sa_column=Column(Integer, ForeignKey("books.id", ondelete="CASCADE"), primary_key=True)
    )
    description: str = Field(sa_column=Column(Text, nullable=False))


class PricePointTable(SQLModel, table=True):
    """One observation of a book's prices and stock; a new one only when they change."""

    __tablename__ = "price_points"
    __table_args__ = (Index("ix_price_points_book_observed", "book_id", "observed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    book_id: int = Field(
        sa_column=Column(Integer, ForeignKey("books.id", ondelete="CASCADE"), nullable=False)
    )
    observed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    price_excl_tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    price_incl_tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    tax_pence: int = Field(sa_column=Column(Integer, nullable=False))
    availability: int = Field(sa_column=Column(Integer, nullable=False))


categories = table_of(CategoryTable)
books = table_of(BookTable)
descriptions = table_of(BookDescriptionTable)
price_points = table_of(PricePointTable)


def _listing_index(key: str, column: str, *, descending: bool, by_category: bool) -> Index:
    """The index a listing in ``column``'s order walks: a page is its first rows, no sort.

    Ties are broken by ``id`` ascending whatever the column's direction, so a descending
    order needs an index of its own (``column DESC, id``; walked backwards it also serves
    ``last:`` pages of the ascending order); a category's listings lead with
    ``category_id``. Partial on listed books: every listing asks for them, and removed
    books then cost nothing to walk past (migration 0015).
    """
    name = "ix_books_listed_" + ("category_" if by_category else "") + key
    name += "_desc" if descending else "_asc"
    sorted_by = books.c[column].desc() if descending else books.c[column]
    leading = (books.c.category_id,) if by_category else ()
    listed = books.c.removed_at.is_(None)
    return Index(
        name, *leading, sorted_by, books.c.id, postgresql_where=listed, sqlite_where=listed
    )


LISTING_INDEXES = [
    # site order (``id``), the default: its walk, and a search's walk to its candidates
    Index(
        "ix_books_listed_id",
        books.c.id,
        postgresql_where=books.c.removed_at.is_(None),
        sqlite_where=books.c.removed_at.is_(None),
    ),
    *(
        _listing_index(key, column, descending=descending, by_category=by_category)
        for key, column in LISTING_ORDERS.items()
        for by_category in (False, True)
        for descending in (False, True)
    ),
]
