"""Queued jobs: crawls and trainings run by workers that claim them, with leases and retries.

Crawl runs queued from the API name their job. Trainings used to run on a thread of the
server that asked for them; one still TRAINING now has no job that would ever finish it, so
it is failed here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import bookql.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("progress_message", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_due", "jobs", ["status", "run_after", "id"])
    op.create_index("ix_jobs_lease", "jobs", ["status", "lease_expires_at"])
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_crawl_runs_job_id_jobs"), "jobs", ["job_id"], ["id"], ondelete="SET NULL"
        )
    model_trainings = sa.table(
        "model_trainings",
        sa.column("status", sa.String),
        sa.column("message", sa.Text),
        sa.column("finished_at", bookql.db.types.UTCDateTime(timezone=True)),
    )
    op.execute(
        model_trainings.update()
        .where(model_trainings.c.status == "TRAINING")
        .values(
            status="FAILED",
            message="interrupted by the upgrade to queued jobs",
            finished_at=datetime.now(UTC),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_constraint(op.f("fk_crawl_runs_job_id_jobs"), type_="foreignkey")
        batch.drop_column("job_id")
    op.drop_index("ix_jobs_lease", table_name="jobs")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
