"""Crawl runs: one row per crawl, with its progress and what it changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bookql.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crawl_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.Column("start_url", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("created_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("new_books", sa.Integer(), nullable=False),
        sa.Column("updated_books", sa.Integer(), nullable=False),
        sa.Column("unchanged_books", sa.Integer(), nullable=False),
        sa.Column("removed_books", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_crawl_runs_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crawl_runs")),
        sa.UniqueConstraint("active_slot", name=op.f("uq_crawl_runs_active_slot")),
    )
    op.create_index("ix_crawl_runs_created", "crawl_runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_crawl_runs_created", table_name="crawl_runs")
    op.drop_table("crawl_runs")
