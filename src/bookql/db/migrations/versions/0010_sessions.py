"""Sessions: one row per login (refresh-token family), so logout refuses its access tokens.

Existing families become sessions; a family that logout or reuse revoked is a revoked one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bookql.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", bookql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", bookql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("family_id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user", "sessions", ["user_id"])
    op.execute(
        "INSERT INTO sessions (family_id, user_id, created_at)"
        " SELECT family_id, MIN(user_id), MIN(issued_at) FROM refresh_tokens GROUP BY family_id"
    )
    op.execute(
        "UPDATE sessions SET"
        " revoked_at = (SELECT MAX(t.revoked_at) FROM refresh_tokens t"
        " WHERE t.family_id = sessions.family_id AND t.revoked_reason IN ('logout', 'reused')),"
        " revoked_reason = (SELECT MAX(t.revoked_reason) FROM refresh_tokens t"
        " WHERE t.family_id = sessions.family_id AND t.revoked_reason IN ('logout', 'reused'))"
        " WHERE EXISTS (SELECT 1 FROM refresh_tokens t"
        " WHERE t.family_id = sessions.family_id AND t.revoked_reason IN ('logout', 'reused'))"
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_user", table_name="sessions")
    op.drop_table("sessions")
