"""Listings in index order: an index for every single-key order, both directions, with and
without a category, each partial on listed books.

A page of ``books`` or ``Category.books`` is ``WHERE removed_at IS NULL [AND category_id =
?] ORDER BY column [DESC], id LIMIT n``: ties are broken by ``id`` ascending whatever the
column's direction, so ``column DESC, id`` is not the reverse of ``(column, id)`` and needs
an index of its own (walked backwards, each index also serves ``last:`` pages). Site order
(``id``, the default) gets a partial index too: a listing walks it without stepping over
removed books, and so does a search on its way to its ranked candidates. Partial on
``removed_at IS NULL``, the condition of every listing, so that a walk never steps over
removed books and the planner knows the index holds exactly the listed ones. The five
``(column, id)`` indexes of 0001 are replaced by their partial ascending twins;
``ix_books_category_id`` stays whole (the foreign key's look-ups need removed books too).
The sorted columns are never null, so the indexes' default null placement (PostgreSQL:
last ascending, first descending) is the ``ORDER BY``'s own and never stops a walk.

Revision ID: 0015_listing_indexes
Revises: 0014_catalog_data_version
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_listing_indexes"
down_revision: str | None = "0014_catalog_data_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# as bookql.catalog.tables.LISTING_ORDERS: index name's key -> sorted column
ORDERS = {
    "price": "price_incl_tax_pence",
    "rating": "rating",
    "title": "title",
    "availability": "availability",
    "last_seen": "last_seen_at",
}
OLD = {  # 0001's indexes, replaced
    "price": "ix_books_price_id",
    "rating": "ix_books_rating_id",
    "title": "ix_books_title_id",
    "availability": "ix_books_availability_id",
    "last_seen": "ix_books_last_seen_id",
}


def _indexes() -> list[tuple[str, str]]:
    """(name, definition) of every listing index."""
    found = [  # site order, and the walk of a search to its ranked candidates
        (
            "ix_books_listed_id",
            "CREATE INDEX ix_books_listed_id ON books (id) WHERE removed_at IS NULL",
        )
    ]
    for key, column in ORDERS.items():
        for by_category in (False, True):
            for descending in (False, True):
                name = "ix_books_listed_" + ("category_" if by_category else "") + key
                name += "_desc" if descending else "_asc"
                columns = ["category_id"] if by_category else []
                columns += [f"{column} DESC" if descending else column, "id"]
                found.append(
                    (
                        name,
                        f"CREATE INDEX {name} ON books ({', '.join(columns)})"
                        " WHERE removed_at IS NULL",
                    )
                )
    return found


def upgrade() -> None:
    for old in OLD.values():
        op.drop_index(old, table_name="books")
    for _, statement in _indexes():
        op.execute(statement)


def downgrade() -> None:
    for name, _ in _indexes():
        op.drop_index(name, table_name="books")
    for key, old in OLD.items():
        op.create_index(old, "books", [ORDERS[key], "id"])
