"""Tallies of the listed books, kept by triggers, so statistics and counts read no books.

Four tables (see ``bookql.catalog.tally_tables``) count the books whose ``removed_at`` is
null: per (category, rating) with stock and price sums, per price, per (rating, price) and
per (category, rating, price). Every write to ``books`` moves them in its own transaction,
whoever makes it; a row whose count reaches zero is deleted. The migration fills them from
the books already there.

SQLite: row triggers, each subtracting the old row (if it was listed) and adding the new one
(if it is), with ``INSERT … ON CONFLICT DO UPDATE``; they fire only when a counted column
changes (price, rating, category, listed or not; stock alone moves one row). PostgreSQL:
statement triggers over transition tables (which cannot name columns, so every ``UPDATE``
fires them, and unchanged rows drop out of the delta): a batch of crawled books becomes one
grouped upsert per table, in key order, so concurrent writers lock rows in the same order.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

# ruff: noqa: S608 -- the statements are built from the constant table and column names below

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (key columns with the books column each comes from, extra sums with theirs)
TALLIES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "tally_category_rating": (
        {"category_id": "category_id", "rating": "rating"},
        {"stock": "availability", "price_sum": "price_incl_tax_pence"},
    ),
    "tally_price": ({"price_pence": "price_incl_tax_pence"}, {}),
    "tally_rating_price": ({"rating": "rating", "price_pence": "price_incl_tax_pence"}, {}),
    "tally_category_rating_price": (
        {
            "category_id": "category_id",
            "rating": "rating",
            "price_pence": "price_incl_tax_pence",
        },
        {},
    ),
}
COUNTED = ("price_incl_tax_pence", "rating", "category_id")


def _create_tables() -> None:
    for name, (keys, sums) in TALLIES.items():
        op.create_table(
            name,
            *(sa.Column(key, sa.Integer(), autoincrement=False, nullable=False) for key in keys),
            sa.Column("books", sa.Integer(), nullable=False),
            *(sa.Column(total, sa.BigInteger(), nullable=False) for total in sums),
            sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{name}")),
            sqlite_with_rowid=False,
        )


def _backfill() -> None:
    for name, (keys, sums) in TALLIES.items():
        columns = [*keys, "books", *sums]
        selected = [*keys.values(), "count(*)", *(f"sum({source})" for source in sums.values())]
        group = ", ".join(keys.values())
        op.execute(
            f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(selected)}"
            f" FROM books WHERE removed_at IS NULL GROUP BY {group}"
        )


# -- SQLite: row triggers ----------------------------------------------------------------------


def _sqlite_add(row: str) -> list[str]:
    """Count ``row`` (``new``) if it is listed."""
    statements = []
    for name, (keys, sums) in TALLIES.items():
        columns = [*keys, "books", *sums]
        values = [*(f"{row}.{c}" for c in keys.values()), "1"]
        values += [f"{row}.{c}" for c in sums.values()]
        moves = ", ".join(f"{c} = {c} + excluded.{c}" for c in ["books", *sums])
        statements.append(
            f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(values)}"
            f" WHERE {row}.removed_at IS NULL"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {moves};"
        )
    return statements


def _sqlite_subtract(row: str) -> list[str]:
    """Uncount ``row`` (``old``) if it was listed, deleting rows that reach zero."""
    statements = []
    for name, (keys, sums) in TALLIES.items():
        match = " AND ".join(f"{key} = {row}.{source}" for key, source in keys.items())
        moves = ", ".join(
            ["books = books - 1", *(f"{c} = {c} - {row}.{source}" for c, source in sums.items())]
        )
        statements.append(f"UPDATE {name} SET {moves} WHERE {match} AND {row}.removed_at IS NULL;")
        statements.append(f"DELETE FROM {name} WHERE {match} AND books = 0;")
    return statements


def _sqlite_triggers() -> dict[str, str]:
    moved = " OR ".join(f"old.{c} IS NOT new.{c}" for c in COUNTED)
    kept = " AND ".join(f"old.{c} IS new.{c}" for c in COUNTED)
    stock_keys = " AND ".join(
        f"{key} = new.{source}" for key, source in TALLIES["tally_category_rating"][0].items()
    )
    body = "\n        ".join
    return {
        "books_tallies_insert": f"""CREATE TRIGGER books_tallies_insert AFTER INSERT ON books
        WHEN new.removed_at IS NULL BEGIN
        {body(_sqlite_add("new"))}
    END""",
        "books_tallies_delete": f"""CREATE TRIGGER books_tallies_delete AFTER DELETE ON books
        WHEN old.removed_at IS NULL BEGIN
        {body(_sqlite_subtract("old"))}
    END""",
        "books_tallies_move": f"""CREATE TRIGGER books_tallies_move
        AFTER UPDATE OF {", ".join(COUNTED)}, removed_at ON books
        WHEN (old.removed_at IS NULL OR new.removed_at IS NULL)
            AND ({moved} OR (old.removed_at IS NULL) IS NOT (new.removed_at IS NULL)) BEGIN
        {body(_sqlite_subtract("old"))}
        {body(_sqlite_add("new"))}
    END""",
        # Stock alone (the commonest change a crawl finds) moves one row of one table.
        "books_tallies_stock": f"""CREATE TRIGGER books_tallies_stock
        AFTER UPDATE OF availability ON books
        WHEN old.removed_at IS NULL AND new.removed_at IS NULL
            AND old.availability IS NOT new.availability AND {kept} BEGIN
        UPDATE tally_category_rating SET stock = stock + new.availability - old.availability
            WHERE {stock_keys};
    END""",
    }


# -- PostgreSQL: statement triggers over transition tables --------------------------------------


def _postgres_apply() -> str:
    """One grouped upsert per table in key order, then the rows the batch brought to zero."""
    statements = []
    for name, (keys, sums) in TALLIES.items():
        key_list = ", ".join(keys)
        delta = {"books": "sum(books)", "stock": "sum(stock)"}
        delta["price_sum"] = "sum(books::bigint * price_pence)"
        totals = ["books", *sums]
        moved = " OR ".join(f"{delta[c]} <> 0" for c in totals)
        moves = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in totals)
        match = " AND ".join(f"t.{key} = d.{key}" for key in keys)
        statements.append(
            f"""INSERT INTO {name} AS t ({key_list}, {", ".join(totals)})
        SELECT {key_list}, {", ".join(delta[c] for c in totals)} FROM unnest(deltas)
        GROUP BY {key_list} HAVING {moved} ORDER BY {key_list}
        ON CONFLICT ({key_list}) DO UPDATE SET {moves};
    DELETE FROM {name} t USING unnest(deltas) d
        WHERE d.books < 0 AND {match} AND t.books = 0;"""
        )
    body = "\n    ".join(statements)
    # plpgsql, not sql: its plans are kept for the session, a SQL function's made every call
    return f"""CREATE FUNCTION bookql_apply_tallies(deltas bookql_tally_delta[]) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
    {body}
    END $$"""


def _delta(row: str, sign: str) -> str:
    return (
        f"ROW({row}.category_id, {row}.rating, {row}.price_incl_tax_pence, {sign}1,"
        f" {sign}{row}.availability::bigint)::bookql_tally_delta"
    )


def _counted(row: str) -> str:
    """What a row contributes: if it is unchanged, the row drops out of the delta."""
    columns = ", ".join(f"{row}.{c}" for c in COUNTED)
    return f"ROW({columns}, {row}.availability, {row}.removed_at IS NULL)"


POSTGRES_UP = [
    """CREATE TYPE bookql_tally_delta AS (
        category_id integer, rating integer, price_pence integer, books integer, stock bigint)""",
    _postgres_apply(),
    f"""CREATE FUNCTION bookql_books_tallies() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        deltas bookql_tally_delta[];
    BEGIN
        IF TG_OP = 'INSERT' THEN
            deltas := ARRAY(SELECT {_delta("n", "")} FROM new_rows n
                WHERE n.removed_at IS NULL);
        ELSIF TG_OP = 'DELETE' THEN
            deltas := ARRAY(SELECT {_delta("o", "-")} FROM old_rows o
                WHERE o.removed_at IS NULL);
        ELSE
            deltas := ARRAY(SELECT v.delta
                FROM old_rows o JOIN new_rows n ON n.id = o.id,
                LATERAL (VALUES ({_delta("o", "-")}, o.removed_at IS NULL),
                    ({_delta("n", "")}, n.removed_at IS NULL)) AS v (delta, listed)
                WHERE v.listed AND {_counted("o")} IS DISTINCT FROM {_counted("n")});
        END IF;
        IF cardinality(deltas) > 0 THEN
            PERFORM bookql_apply_tallies(deltas);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION bookql_books_tallies_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM tally_category_rating;
        DELETE FROM tally_price;
        DELETE FROM tally_rating_price;
        DELETE FROM tally_category_rating_price;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER books_tallies_insert AFTER INSERT ON books
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_books_tallies()""",
    """CREATE TRIGGER books_tallies_update AFTER UPDATE ON books
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_books_tallies()""",
    """CREATE TRIGGER books_tallies_delete AFTER DELETE ON books
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_books_tallies()""",
    """CREATE TRIGGER books_tallies_truncate AFTER TRUNCATE ON books
        FOR EACH STATEMENT EXECUTE FUNCTION bookql_books_tallies_truncate()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER books_tallies_truncate ON books",
    "DROP TRIGGER books_tallies_delete ON books",
    "DROP TRIGGER books_tallies_update ON books",
    "DROP TRIGGER books_tallies_insert ON books",
    "DROP FUNCTION bookql_books_tallies_truncate()",
    "DROP FUNCTION bookql_books_tallies()",
    "DROP FUNCTION bookql_apply_tallies(bookql_tally_delta[])",
    "DROP TYPE bookql_tally_delta",
]


def upgrade() -> None:
    _create_tables()
    _backfill()
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)
    else:
        for statement in _sqlite_triggers().values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
    else:
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER {name}")
    for name in reversed(TALLIES):
        op.drop_table(name)
