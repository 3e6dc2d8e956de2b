"""The catalogue: categories, books keyed by UPC, descriptions, price history.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bookql.db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_categories_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_categories_slug")),
    )
    op.create_table(
        "books",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("upc", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("product_type", sa.String(length=100), nullable=False),
        sa.Column("price_excl_tax_pence", sa.Integer(), nullable=False),
        sa.Column("price_incl_tax_pence", sa.Integer(), nullable=False),
        sa.Column("tax_pence", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("availability", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("num_reviews", sa.Integer(), nullable=False),
        sa.Column("image_url", sa.Text(), nullable=False),
        sa.Column("product_url", sa.Text(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("availability >= 0", name=op.f("ck_books_availability_not_negative")),
        sa.CheckConstraint("num_reviews >= 0", name=op.f("ck_books_num_reviews_not_negative")),
        sa.CheckConstraint(
            "price_excl_tax_pence >= 0 AND price_incl_tax_pence >= 0 AND tax_pence >= 0",
            name=op.f("ck_books_prices_not_negative"),
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_books_rating_range")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_books_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books")),
        sa.UniqueConstraint("upc", name=op.f("uq_books_upc")),
    )
    op.create_index("ix_books_availability_id", "books", ["availability", "id"])
    op.create_index("ix_books_category_id", "books", ["category_id", "id"])
    op.create_index("ix_books_last_seen_id", "books", ["last_seen_at", "id"])
    op.create_index("ix_books_price_id", "books", ["price_incl_tax_pence", "id"])
    op.create_index("ix_books_rating_id", "books", ["rating", "id"])
    op.create_index("ix_books_title_id", "books", ["title", "id"])
    op.create_table(
        "book_descriptions",
        sa.Column("book_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["books.id"],
            name=op.f("fk_book_descriptions_book_id_books"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_book_descriptions")),
    )
    op.create_table(
        "price_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.Integer(), nullable=False),
        sa.Column("observed_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("price_excl_tax_pence", sa.Integer(), nullable=False),
        sa.Column("price_incl_tax_pence", sa.Integer(), nullable=False),
        sa.Column("tax_pence", sa.Integer(), nullable=False),
        sa.Column("availability", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["books.id"],
            name=op.f("fk_price_points_book_id_books"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_points")),
    )
    op.create_index("ix_price_points_book_observed", "price_points", ["book_id", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_price_points_book_observed", table_name="price_points")
    op.drop_table("price_points")
    op.drop_table("book_descriptions")
    op.drop_index("ix_books_title_id", table_name="books")
    op.drop_index("ix_books_rating_id", table_name="books")
    op.drop_index("ix_books_price_id", table_name="books")
    op.drop_index("ix_books_last_seen_id", table_name="books")
    op.drop_index("ix_books_category_id", table_name="books")
    op.drop_index("ix_books_availability_id", table_name="books")
    op.drop_table("books")
    op.drop_table("categories")
