"""The catalogue's data version: moved by the database in the transaction of every write.

HTTP caching (``bookql.server.http_cache``) puts it in each public answer's ``ETag``, and answers
``304`` only while it is unchanged, so every change a public query can see must move it:
any ``INSERT``, ``UPDATE`` or ``DELETE`` of ``books`` (``lastSeenAt`` included),
``categories``, ``book_descriptions`` and ``price_points``, whoever writes (admin, crawl, seed,
import, removals, a hand-written statement). Triggers do it, so no write path can forget.

One counter row would serialise writers: each would hold its lock from its first write to
its commit. The version is instead the sum of ``SLOTS`` counters, and each writing
transaction bumps one of them, once, at commit: PostgreSQL's triggers are deferred
constraint triggers, so the slot's lock is taken last and held only while the transaction
commits, never while it works; the slot is the transaction id's (``pg_current_xact_id() %
SLOTS``), so two commits queue only when their ids fall in the same slot (one chance in 64),
and as a transaction locks a single slot after all its other locks, the counters cannot
deadlock. The sum only grows, and a reader's one ``SELECT sum`` sees exactly the writes
committed before its snapshot: equal sums mean equal data. (A maximum of per-transaction
sequence values would not: a transaction that took an earlier value and committed later
would leave the maximum unchanged.) ``TRUNCATE`` bumps at once (no deferred trigger
exists for it). SQLite already runs one writer at a time: its triggers bump slot 0 on each
row. Unlike the triggers 0012 gates, these do not stand aside for ``bookql import``: an
import must move the version too (its rows' deferred events return at once after the first).

Slot 0 starts at a random offset, so a database created anew does not replay the versions,
and the tags, of the one it replaces.

Revision ID: 0014_catalog_data_version
Revises: 0013
Create Date: 2026-12-04
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_catalog_data_version"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 64  # as written in POSTGRES_FUNCTION
TABLES = ("books", "categories", "book_descriptions", "price_points")
BUMP_SLOT_ZERO = "UPDATE catalog_data_version SET bumps = bumps + 1 WHERE slot = 0;"

# Once per transaction: the first of its deferred row events bumps, the others see the mark.
POSTGRES_FUNCTION = """CREATE FUNCTION bookql_catalog_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        xid text := pg_current_xact_id()::text;
    BEGIN
        IF current_setting('bookql.catalog_bumped', true) IS DISTINCT FROM xid THEN
            PERFORM set_config('bookql.catalog_bumped', xid, true);
            UPDATE catalog_data_version SET bumps = bumps + 1
                WHERE slot = xid::bigint % 64;
        END IF;
        RETURN NULL;
    END $$"""


def _sqlite_triggers() -> dict[str, str]:
    return {
        f"{table}_data_version_{event.lower()}": (
            f"CREATE TRIGGER {table}_data_version_{event.lower()} AFTER {event} ON {table}"
            f" BEGIN {BUMP_SLOT_ZERO} END"
        )
        for table in TABLES
        for event in ("INSERT", "UPDATE", "DELETE")
    }


def upgrade() -> None:
    slots = op.create_table(
        "catalog_data_version",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bumps", sa.BigInteger(), nullable=False),
    )
    start = secrets.randbelow(2**40)
    op.bulk_insert(
        slots, [{"slot": slot, "bumps": start if slot == 0 else 0} for slot in range(SLOTS)]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for table in TABLES:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {table}_data_version"
                f" AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " DEFERRABLE INITIALLY DEFERRED"
                " FOR EACH ROW EXECUTE FUNCTION bookql_catalog_changed()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_data_version_truncate AFTER TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION bookql_catalog_changed()"
            )
    else:
        for statement in _sqlite_triggers().values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_data_version_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_data_version ON {table}")
        op.execute("DROP FUNCTION bookql_catalog_changed()")
    else:
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("catalog_data_version")
