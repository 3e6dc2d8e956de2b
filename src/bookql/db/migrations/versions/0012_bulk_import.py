"""PostgreSQL: the catalogue's row triggers stand aside for a bulk import, which does their work
set-wise.

``bookql import`` sets ``bookql.bulk_import`` to ``on`` for its own transaction only
(``SET LOCAL``), then writes the search documents, feature invalidations, pending features
and row versions of the rows it stores in a few set-wise statements (catalog/importing.py),
equal to what these triggers would have written (a test compares them with the crawler's
path). Every other writer, and every trigger added later, still fires row by row. The
functions are those of 0003, 0006, 0007 and 0009 with the one early return added. SQLite
is unchanged: its triggers are cheap enough in batches, and cannot read a session setting.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AFTER_GATE = "IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;"
BEFORE_GATE = "IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NEW; END IF;"

GATED = [
    """CREATE OR REPLACE FUNCTION bookql_books_search_trigger() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;
            PERFORM bookql_index_book(NEW.id);
            RETURN NULL;
        END $$""",
    """CREATE OR REPLACE FUNCTION bookql_descriptions_search_trigger() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;
            IF TG_OP = 'DELETE' THEN
                PERFORM bookql_index_book(OLD.book_id);
            ELSE
                PERFORM bookql_index_book(NEW.book_id);
            END IF;
            RETURN NULL;
        END $$""",
    """CREATE OR REPLACE FUNCTION bookql_book_features_stale() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;
            IF TG_TABLE_NAME = 'books' THEN
                DELETE FROM book_features WHERE book_id = NEW.id;
            ELSIF TG_OP = 'DELETE' THEN
                DELETE FROM book_features WHERE book_id = OLD.book_id;
            ELSE
                DELETE FROM book_features WHERE book_id = NEW.book_id;
            END IF;
            RETURN NULL;
        END $$""",
    """CREATE OR REPLACE FUNCTION bookql_book_features_pending() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;
            IF TG_TABLE_NAME = 'books' THEN
                INSERT INTO book_features_pending VALUES (NEW.id) ON CONFLICT DO NOTHING;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO book_features_pending VALUES (OLD.book_id) ON CONFLICT DO NOTHING;
            ELSE
                INSERT INTO book_features_pending VALUES (NEW.book_id) ON CONFLICT DO NOTHING;
            END IF;
            RETURN NULL;
        END $$""",
    """CREATE OR REPLACE FUNCTION bookql_next_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NEW; END IF;
            NEW.version := OLD.version + 1;
            RETURN NEW;
        END $$""",
    """CREATE OR REPLACE FUNCTION bookql_description_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('bookql.bulk_import', true) = 'on' THEN RETURN NULL; END IF;
            IF TG_OP = 'INSERT' THEN
                UPDATE books SET version = version + 1
                    FROM new_rows WHERE books.id = new_rows.book_id;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE books SET version = version + 1
                    FROM old_rows WHERE books.id = old_rows.book_id;
            ELSE
                UPDATE books SET version = version + 1
                    FROM old_rows JOIN new_rows USING (book_id)
                    WHERE books.id = new_rows.book_id
                        AND old_rows.description IS DISTINCT FROM new_rows.description;
            END IF;
            RETURN NULL;
        END $$""",
]
# The functions as 0003, 0006, 0007 and 0009 left them.
UNGATED = [function.replace(AFTER_GATE, "").replace(BEFORE_GATE, "") for function in GATED]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in GATED:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in UNGATED:
            op.execute(statement)
