"""Stored model features of every book, for the bulk export; triggers mark them stale.

``book_features`` holds what the one feature function computes from a book (everything but
the category, which is read through ``books.category_id`` so a rename needs no recompute).
A row is deleted, by trigger, whenever an input changes (title, rating, availability, the
description); the export recomputes missing rows with the same Python function before it
streams. Whoever writes the catalogue (seed, crawl, admin, a hand-written UPDATE), the
stored features can be missing but never wrong.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = [
    """CREATE TRIGGER book_features_inputs AFTER UPDATE OF title, rating, availability
        ON books WHEN old.title IS NOT new.title OR old.rating IS NOT new.rating
            OR old.availability IS NOT new.availability BEGIN
        DELETE FROM book_features WHERE book_id = new.id;
    END""",
    """CREATE TRIGGER book_features_description_insert AFTER INSERT ON book_descriptions BEGIN
        DELETE FROM book_features WHERE book_id = new.book_id;
    END""",
    """CREATE TRIGGER book_features_description_update AFTER UPDATE ON book_descriptions
        WHEN old.description IS NOT new.description BEGIN
        DELETE FROM book_features WHERE book_id = new.book_id;
    END""",
    """CREATE TRIGGER book_features_description_delete AFTER DELETE ON book_descriptions BEGIN
        DELETE FROM book_features WHERE book_id = old.book_id;
    END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER book_features_description_delete",
    "DROP TRIGGER book_features_description_update",
    "DROP TRIGGER book_features_description_insert",
    "DROP TRIGGER book_features_inputs",
]

POSTGRES_TRIGGERS = [
    """CREATE FUNCTION bookql_book_features_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'books' THEN
            DELETE FROM book_features WHERE book_id = NEW.id;
        ELSIF TG_OP = 'DELETE' THEN
            DELETE FROM book_features WHERE book_id = OLD.book_id;
        ELSE
            DELETE FROM book_features WHERE book_id = NEW.book_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER book_features_inputs AFTER UPDATE OF title, rating, availability ON books
        FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title
            OR OLD.rating IS DISTINCT FROM NEW.rating
            OR OLD.availability IS DISTINCT FROM NEW.availability)
        EXECUTE FUNCTION bookql_book_features_stale()""",
    """CREATE TRIGGER book_features_description_write
        AFTER INSERT OR DELETE ON book_descriptions
        FOR EACH ROW EXECUTE FUNCTION bookql_book_features_stale()""",
    """CREATE TRIGGER book_features_description_update AFTER UPDATE ON book_descriptions
        FOR EACH ROW WHEN (OLD.description IS DISTINCT FROM NEW.description)
        EXECUTE FUNCTION bookql_book_features_stale()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER book_features_description_update ON book_descriptions",
    "DROP TRIGGER book_features_description_write ON book_descriptions",
    "DROP TRIGGER book_features_inputs ON books",
    "DROP FUNCTION bookql_book_features_stale()",
]


def upgrade() -> None:
    op.create_table(
        "book_features",
        sa.Column("book_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("availability", sa.Integer(), nullable=False),
        sa.Column("title_length", sa.Integer(), nullable=False),
        sa.Column("title_words", sa.Integer(), nullable=False),
        sa.Column("has_subtitle", sa.Integer(), nullable=False),
        sa.Column("in_series", sa.Integer(), nullable=False),
        sa.Column("series_number", sa.Float(), nullable=False),
        sa.Column("has_description", sa.Integer(), nullable=False),
        sa.Column("description_length", sa.Integer(), nullable=False),
        sa.Column("description_words", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["books.id"],
            name=op.f("fk_book_features_book_id_books"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_book_features")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("book_features")
