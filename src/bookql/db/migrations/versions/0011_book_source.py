"""Books know where they came from: ``source`` is ``crawl`` or ``import``.

A complete crawl marks removed the books it did not see; only books the crawler owns (crawled
or seeded from the bundled snapshot, which is the crawled site) may be retired that way,
never a catalogue loaded by ``bookql import``. Existing books were crawled, seeded or
created by an administrator: they keep today's behaviour as ``crawl``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "books",
        sa.Column("source", sa.String(length=16), server_default="crawl", nullable=False),
    )


def downgrade() -> None:
    # Not batch mode: rebuilding ``books`` on SQLite would drop the triggers on it.
    op.drop_column("books", "source")
