"""Full-text search over titles and descriptions; binary title order on PostgreSQL.

SQLite: an FTS5 table ``books_fts`` (porter stemming), rowid = book id. PostgreSQL: a
``book_search`` table of weighted tsvectors (title A, description B) with a GIN index.
Triggers keep both in step with ``books`` and ``book_descriptions`` whoever writes them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    """CREATE VIRTUAL TABLE books_fts USING fts5(
        title, description, tokenize = 'porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER books_fts_insert AFTER INSERT ON books BEGIN
        INSERT INTO books_fts (rowid, title, description) VALUES (new.id, new.title, '');
    END""",
    """CREATE TRIGGER books_fts_title AFTER UPDATE OF title ON books BEGIN
        UPDATE books_fts SET title = new.title WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER books_fts_delete AFTER DELETE ON books BEGIN
        DELETE FROM books_fts WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER books_fts_description_insert AFTER INSERT ON book_descriptions BEGIN
        UPDATE books_fts SET description = new.description WHERE rowid = new.book_id;
    END""",
    """CREATE TRIGGER books_fts_description_update AFTER UPDATE ON book_descriptions BEGIN
        UPDATE books_fts SET description = new.description WHERE rowid = new.book_id;
    END""",
    """CREATE TRIGGER books_fts_description_delete AFTER DELETE ON book_descriptions BEGIN
        UPDATE books_fts SET description = '' WHERE rowid = old.book_id;
    END""",
    """INSERT INTO books_fts (rowid, title, description)
        SELECT b.id, b.title, coalesce(d.description, '')
        FROM books b LEFT JOIN book_descriptions d ON d.book_id = b.id""",
]

SQLITE_DOWN = [
    "DROP TRIGGER books_fts_description_delete",
    "DROP TRIGGER books_fts_description_update",
    "DROP TRIGGER books_fts_description_insert",
    "DROP TRIGGER books_fts_delete",
    "DROP TRIGGER books_fts_title",
    "DROP TRIGGER books_fts_insert",
    "DROP TABLE books_fts",
]

POSTGRES_UP = [
    """CREATE TABLE book_search (
        book_id integer PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
        document tsvector NOT NULL)""",
    "CREATE INDEX ix_book_search_document ON book_search USING gin (document)",
    """CREATE FUNCTION bookql_index_book(target integer) RETURNS void LANGUAGE sql AS $$
        INSERT INTO book_search (book_id, document)
        SELECT b.id,
               setweight(to_tsvector('english', b.title), 'A')
               || setweight(to_tsvector('english', coalesce(d.description, '')), 'B')
        FROM books b LEFT JOIN book_descriptions d ON d.book_id = b.id
        WHERE b.id = target
        ON CONFLICT (book_id) DO UPDATE SET document = excluded.document
    $$""",
    """CREATE FUNCTION bookql_books_search_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM bookql_index_book(NEW.id);
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION bookql_descriptions_search_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM bookql_index_book(OLD.book_id);
        ELSE
            PERFORM bookql_index_book(NEW.book_id);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER books_search AFTER INSERT OR UPDATE OF title ON books
        FOR EACH ROW EXECUTE FUNCTION bookql_books_search_trigger()""",
    """CREATE TRIGGER book_descriptions_search
        AFTER INSERT OR UPDATE OR DELETE ON book_descriptions
        FOR EACH ROW EXECUTE FUNCTION bookql_descriptions_search_trigger()""",
    "SELECT bookql_index_book(id) FROM books",
]

POSTGRES_DOWN = [
    "DROP TRIGGER book_descriptions_search ON book_descriptions",
    "DROP TRIGGER books_search ON books",
    "DROP FUNCTION bookql_descriptions_search_trigger()",
    "DROP FUNCTION bookql_books_search_trigger()",
    "DROP FUNCTION bookql_index_book(integer)",
    "DROP TABLE book_search",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("books", "title", type_=sa.Text(collation="C"), existing_nullable=False)
        statements = POSTGRES_UP
    else:
        statements = SQLITE_UP
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
    if postgres:
        op.alter_column("books", "title", type_=sa.Text(), existing_nullable=False)
