"""GraphQL types of the accounts domain (``UserTable`` rows -> ``User``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from bookql.accounts.service import Session
from bookql.accounts.tables import Role as RoleValue
from bookql.graphql.relay import Node, PageInfo, to_global_id

Role = strawberry.enum(RoleValue, name="Role", description="What a user may do.")


@strawberry.type(description="A person who signs in.")
class User(Node):
    username: str
    email: str | None
    role: Role  # type: ignore[valid-type]
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row[Any]) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", row.id)),
            username=row.username,
            email=row.email,
            role=RoleValue(row.role),
            active=row.is_active,
            created_at=row.created_at,
            last_login_at=row.last_login_at,
            pk=row.id,
        )


@strawberry.type(description="Tokens for a session: send the access token as a Bearer token.")
class AuthPayload:
    access_token: str
    refresh_token: str = strawberry.field(
        description="Single use: `refresh` returns a new one; using an old one ends the session."
    )
    token_type: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User

    @classmethod
    def from_session(cls, session: Session) -> AuthPayload:
        lifetime = session.access.claims.expires_at - session.access.claims.issued_at
        return cls(
            access_token=session.access.token,
            refresh_token=session.refresh.token,
            token_type="Bearer",  # noqa: S106 - the scheme's name, not a secret
            expires_in=int(lifetime.total_seconds()),
            user=User.from_row(session.user),
        )


@strawberry.type
class LogoutPayload:
    ok: bool


@strawberry.type(description="The password changed; every other session ended.")
class ChangePasswordPayload:
    auth: AuthPayload


@strawberry.type
class UserPayload:
    user: User


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class RegisterInput:
    username: str
    password: str
    email: str | None = None


@strawberry.input
class LoginInput:
    username: str
    password: str


@strawberry.input
class RefreshInput:
    refresh_token: str


@strawberry.input
class LogoutInput:
    refresh_token: str


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.input
class SetUserRoleInput:
    user_id: strawberry.ID
    role: Role  # type: ignore[valid-type]


@strawberry.input
class SetUserActiveInput:
    user_id: strawberry.ID
    active: bool
