"""Row versions for books and categories, moved by the database on every change of content.

``version`` starts at 1 and grows by one whenever an ``UPDATE`` changes a row's content,
whichever path writes it (admin, crawl, seed, import, a hand-written statement): triggers do
it, so no write path can forget. A book's content is every column but ``id``,
``last_seen_at`` (a re-crawl that finds the book as it was changes nothing a client edits)
and ``version``; its description is content too, so writing ``book_descriptions`` moves the
book's version (a book stored with its description therefore starts at 2: versions are
compared, never computed). A category's content is its name and slug. An update that
changes nothing, such as a crawl's upsert of an unchanged book, leaves the version alone.

PostgreSQL sets ``NEW.version`` in a ``BEFORE UPDATE`` trigger, so ``RETURNING`` sees it,
and moves the books of a statement's descriptions in one ``UPDATE`` per statement (over its
transition tables). SQLite cannot change ``NEW``: an ``AFTER UPDATE OF`` trigger updates the
row again (only ``version``, which fires no trigger; recursive triggers are off), so read
the row after the statement rather than through ``RETURNING``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = {
    "books_version": """CREATE TRIGGER books_version
        AFTER UPDATE OF upc, title, product_type, price_excl_tax_pence, price_incl_tax_pence,
            tax_pence, currency, availability, rating, num_reviews, image_url, product_url,
            category_id, first_seen_at, removed_at ON books
        WHEN old.upc IS NOT new.upc OR old.title IS NOT new.title
            OR old.product_type IS NOT new.product_type
            OR old.price_excl_tax_pence IS NOT new.price_excl_tax_pence
            OR old.price_incl_tax_pence IS NOT new.price_incl_tax_pence
            OR old.tax_pence IS NOT new.tax_pence OR old.currency IS NOT new.currency
            OR old.availability IS NOT new.availability OR old.rating IS NOT new.rating
            OR old.num_reviews IS NOT new.num_reviews OR old.image_url IS NOT new.image_url
            OR old.product_url IS NOT new.product_url
            OR old.category_id IS NOT new.category_id
            OR old.first_seen_at IS NOT new.first_seen_at
            OR old.removed_at IS NOT new.removed_at BEGIN
        UPDATE books SET version = version + 1 WHERE id = new.id;
    END""",
    "categories_version": """CREATE TRIGGER categories_version
        AFTER UPDATE OF name, slug ON categories
        WHEN old.name IS NOT new.name OR old.slug IS NOT new.slug BEGIN
        UPDATE categories SET version = version + 1 WHERE id = new.id;
    END""",
    "book_descriptions_version_insert": """CREATE TRIGGER book_descriptions_version_insert
        AFTER INSERT ON book_descriptions BEGIN
        UPDATE books SET version = version + 1 WHERE id = new.book_id;
    END""",
    "book_descriptions_version_update": """CREATE TRIGGER book_descriptions_version_update
        AFTER UPDATE ON book_descriptions
        WHEN old.description IS NOT new.description BEGIN
        UPDATE books SET version = version + 1 WHERE id = new.book_id;
    END""",
    "book_descriptions_version_delete": """CREATE TRIGGER book_descriptions_version_delete
        AFTER DELETE ON book_descriptions BEGIN
        UPDATE books SET version = version + 1 WHERE id = old.book_id;
    END""",
}

POSTGRES_UP = [
    """CREATE FUNCTION bookql_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.version := OLD.version + 1;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER books_version BEFORE UPDATE ON books
        FOR EACH ROW WHEN (ROW(OLD.upc, OLD.title, OLD.product_type, OLD.price_excl_tax_pence,
            OLD.price_incl_tax_pence, OLD.tax_pence, OLD.currency, OLD.availability,
            OLD.rating, OLD.num_reviews, OLD.image_url, OLD.product_url, OLD.category_id,
            OLD.first_seen_at, OLD.removed_at)
        IS DISTINCT FROM ROW(NEW.upc, NEW.title, NEW.product_type, NEW.price_excl_tax_pence,
            NEW.price_incl_tax_pence, NEW.tax_pence, NEW.currency, NEW.availability,
            NEW.rating, NEW.num_reviews, NEW.image_url, NEW.product_url, NEW.category_id,
            NEW.first_seen_at, NEW.removed_at))
        EXECUTE FUNCTION bookql_next_version()""",
    """CREATE TRIGGER categories_version BEFORE UPDATE ON categories
        FOR EACH ROW WHEN (ROW(OLD.name, OLD.slug) IS DISTINCT FROM ROW(NEW.name, NEW.slug))
        EXECUTE FUNCTION bookql_next_version()""",
    # Per statement, over its transition tables: a seed or a crawl batch writing hundreds of
    # descriptions moves their books' versions in one UPDATE, not one per row.
    """CREATE FUNCTION bookql_description_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
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
    """CREATE TRIGGER book_descriptions_version_insert AFTER INSERT ON book_descriptions
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_description_version()""",
    """CREATE TRIGGER book_descriptions_version_update AFTER UPDATE ON book_descriptions
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_description_version()""",
    """CREATE TRIGGER book_descriptions_version_delete AFTER DELETE ON book_descriptions
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_description_version()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER book_descriptions_version_delete ON book_descriptions",
    "DROP TRIGGER book_descriptions_version_update ON book_descriptions",
    "DROP TRIGGER book_descriptions_version_insert ON book_descriptions",
    "DROP FUNCTION bookql_description_version()",
    "DROP TRIGGER categories_version ON categories",
    "DROP TRIGGER books_version ON books",
    "DROP FUNCTION bookql_next_version()",
]


def upgrade() -> None:
    for table in ("books", "categories"):
        op.add_column(
            table,
            sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
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
    for table in ("categories", "books"):
        # Not batch mode: rebuilding ``books`` on SQLite would drop the other triggers on it.
        op.drop_column(table, "version")
