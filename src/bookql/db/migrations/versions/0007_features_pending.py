"""Books whose stored features need computing, kept by the same triggers that invalidate them.

Before a stream, the export used to find books without features with an anti-join over the
whole catalogue (0.7 s at a million books, on every stream). Now every trigger that deletes a
book's features also records the book in ``book_features_pending``, a new book is recorded
on insert, and the export computes exactly the pending books: an empty table means there is
nothing to do, which costs one index probe. No foreign key: a trigger firing while its book
is being deleted must not fail, and the export drops pending ids whose book is gone. The
triggers of 0006 stay as they are; these fire beside them, on the same changes. (SQLite's
triggers skip a pending book with ``WHERE NOT EXISTS``, not ``INSERT OR IGNORE``: an outer
upsert's conflict handling overrides the trigger's own.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SQLITE_TRIGGERS = {
    "book_features_pending_inputs": """CREATE TRIGGER book_features_pending_inputs
        AFTER UPDATE OF title, rating, availability ON books
        WHEN old.title IS NOT new.title OR old.rating IS NOT new.rating
            OR old.availability IS NOT new.availability BEGIN
        INSERT INTO book_features_pending (book_id) SELECT new.id
            WHERE NOT EXISTS (SELECT 1 FROM book_features_pending WHERE book_id = new.id);
    END""",
    "book_features_pending_new_book": """CREATE TRIGGER book_features_pending_new_book
        AFTER INSERT ON books BEGIN
        INSERT INTO book_features_pending (book_id) SELECT new.id
            WHERE NOT EXISTS (SELECT 1 FROM book_features_pending WHERE book_id = new.id);
    END""",
    "book_features_pending_description_insert": """CREATE TRIGGER
        book_features_pending_description_insert AFTER INSERT ON book_descriptions BEGIN
        INSERT INTO book_features_pending (book_id) SELECT new.book_id
            WHERE NOT EXISTS (SELECT 1 FROM book_features_pending WHERE book_id = new.book_id);
    END""",
    "book_features_pending_description_update": """CREATE TRIGGER
        book_features_pending_description_update AFTER UPDATE ON book_descriptions
        WHEN old.description IS NOT new.description BEGIN
        INSERT INTO book_features_pending (book_id) SELECT new.book_id
            WHERE NOT EXISTS (SELECT 1 FROM book_features_pending WHERE book_id = new.book_id);
    END""",
    "book_features_pending_description_delete": """CREATE TRIGGER
        book_features_pending_description_delete AFTER DELETE ON book_descriptions BEGIN
        INSERT INTO book_features_pending (book_id) SELECT old.book_id
            WHERE NOT EXISTS (SELECT 1 FROM book_features_pending WHERE book_id = old.book_id);
    END""",
}

POSTGRES_UP = [
    """CREATE FUNCTION bookql_book_features_pending() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'books' THEN
            INSERT INTO book_features_pending VALUES (NEW.id) ON CONFLICT DO NOTHING;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO book_features_pending VALUES (OLD.book_id) ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO book_features_pending VALUES (NEW.book_id) ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER book_features_pending_inputs
        AFTER UPDATE OF title, rating, availability ON books
        FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title
            OR OLD.rating IS DISTINCT FROM NEW.rating
            OR OLD.availability IS DISTINCT FROM NEW.availability)
        EXECUTE FUNCTION bookql_book_features_pending()""",
    """CREATE TRIGGER book_features_pending_new_book AFTER INSERT ON books
        FOR EACH ROW EXECUTE FUNCTION bookql_book_features_pending()""",
    """CREATE TRIGGER book_features_pending_description_write
        AFTER INSERT OR DELETE ON book_descriptions
        FOR EACH ROW EXECUTE FUNCTION bookql_book_features_pending()""",
    """CREATE TRIGGER book_features_pending_description_update
        AFTER UPDATE ON book_descriptions
        FOR EACH ROW WHEN (OLD.description IS DISTINCT FROM NEW.description)
        EXECUTE FUNCTION bookql_book_features_pending()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER book_features_pending_description_update ON book_descriptions",
    "DROP TRIGGER book_features_pending_description_write ON book_descriptions",
    "DROP TRIGGER book_features_pending_new_book ON books",
    "DROP TRIGGER book_features_pending_inputs ON books",
    "DROP FUNCTION bookql_book_features_pending()",
]


def upgrade() -> None:
    op.create_table(
        "book_features_pending",
        sa.Column("book_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_book_features_pending")),
    )
    op.execute(
        "INSERT INTO book_features_pending (book_id) SELECT id FROM books"
        " WHERE NOT EXISTS (SELECT 1 FROM book_features f WHERE f.book_id = books.id)"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_UP if postgres else SQLITE_TRIGGERS.values():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("book_features_pending")
