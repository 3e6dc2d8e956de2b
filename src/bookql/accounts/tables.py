"""Account tables: users, their sessions and the refresh tokens issued to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bookql.db.base import table_of
from bookql.db.types import UTCDateTime


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


class UserTable(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('USER', 'ADMIN')", name="role_known"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    email: str | None = Field(default=None, sa_column=Column(String(320), unique=True))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    is_active: bool = Field(sa_column=Column(Boolean, nullable=False))
    # Bumped whenever every token issued so far must stop working (password change, deactivation).
    token_version: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_login_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class RefreshTokenTable(SQLModel, table=True):
    """One issued refresh token; a family is every token rotated from one login."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family", "family_id"),
        Index("ix_refresh_tokens_user", "user_id"),
    )

    jti: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    family_id: str = Field(sa_column=Column(String(64), nullable=False))
    issued_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_reason: str | None = Field(default=None, sa_column=Column(String(32)))
    replaced_by: str | None = Field(default=None, sa_column=Column(String(64)))


class SessionTable(SQLModel, table=True):
    """One login: its refresh-token family, named by every token issued to it (``fam``)."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id"),)

    family_id: str = Field(sa_column=Column(String(64), primary_key=True))
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # Set by logout and by refresh-token reuse: the session's access tokens die with it.
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_reason: str | None = Field(default=None, sa_column=Column(String(32)))


users = table_of(UserTable)
refresh_tokens = table_of(RefreshTokenTable)
sessions = table_of(SessionTable)
