"""Account operations: register, log in, rotate and revoke tokens, manage users.

Everything here is async and keeps argon2 off the event loop (see ``passwords``). Errors are
the contract's: a wrong password and an unknown user get the same ``UNAUTHENTICATED``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.accounts.models import Role, refresh_tokens, sessions, users
from bookql.accounts.notices import Notice, NoticeBus
from bookql.accounts.passwords import Passwords
from bookql.accounts.throttle import LoginThrottle
from bookql.accounts.tokens import InvalidToken, IssuedToken, TokenCodec, TokenType
from bookql.accounts.usernames import checked_email, checked_username, normalise_username
from bookql.api.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow

LOGIN_FAILED = "invalid username or password"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is calling, as established from a valid access token."""

    user_id: int
    username: str
    role: Role
    session_id: str
    token_version: int

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Session:
    access: IssuedToken
    refresh: IssuedToken
    user: Row[Any]


class Accounts:
    """The accounts service of one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        passwords: Passwords,
        codec: TokenCodec,
        throttle: LoginThrottle,
        *,
        blocking: BlockingDatabase,
        registration_open: bool,
        notices: NoticeBus | None = None,
    ) -> None:
        self.engine = engine
        self.blocking = blocking
        self.passwords = passwords
        self.codec = codec
        self.throttle = throttle
        self.registration_open = registration_open
        self.notices = notices

    def close(self) -> None:
        self.passwords.close()

    # -- users ---------------------------------------------------------------------------

    async def create_user(
        self, username: str, password: str, *, email: str | None = None, role: Role = Role.USER
    ) -> Row[Any]:
        name = checked_username(username)
        address = checked_email(email)
        self.passwords.check_policy(password)
        password_hash = await self.passwords.hash(password)
        try:
            async with async_write_transaction(self.engine) as conn:
                result = await conn.execute(
                    users.insert()
                    .values(
                        username=name,
                        email=address,
                        password_hash=password_hash,
                        role=role.value,
                        is_active=True,
                        token_version=0,
                        created_at=utcnow(),
                    )
                    .returning(*users.c)
                )
                return result.one()
        except IntegrityError:
            taken = "username" if await self._username_taken(name) else "email"
            raise Conflict(f"that {taken} is already taken", field=taken) from None

    async def _username_taken(self, username: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.execute(select(users.c.id).where(users.c.username == username))
            return found.first() is not None

    async def user_by_id(self, user_id: int) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return await _user(conn, user_id)

    def _caller(self, user_id: int, session_id: str) -> Row[Any] | None:
        """What a token check needs of its user and session, read on every signed-in request."""
        with self.blocking.engine.connect() as conn:
            found = conn.execute(_CALLER, {"user_id": user_id, "session": session_id})
            return cast("Row[Any] | None", found.one_or_none())

    async def _publish(self, notice: Notice) -> None:
        """Tell every process (live sockets and streams) that a user or session changed."""
        if self.notices is not None:
            await self.notices.publish(notice)

    async def set_role(self, user_id: int, role: Role) -> Row[Any]:
        async with async_write_transaction(self.engine) as conn:
            row = await _update(conn, user_id, role=role.value)
            await _keep_an_admin(conn)
        await self._publish(Notice(row.id))
        return row

    async def set_active(self, user_id: int, active: bool) -> Row[Any]:
        """Deactivation ends every session at once: tokens check the user on every use."""
        async with async_write_transaction(self.engine) as conn:
            if active:
                row = await _update(conn, user_id, is_active=True)
            else:
                row = await _update(
                    conn, user_id, is_active=False, token_version=users.c.token_version + 1
                )
                await _revoke_user_tokens(conn, user_id, "deactivated")
                await _keep_an_admin(conn)
        await self._publish(Notice(row.id, token_version=row.token_version))
        return row

    # -- sessions ------------------------------------------------------------------------

    async def register(self, username: str, password: str, email: str | None) -> Session:
        if not self.registration_open:
            raise Forbidden("registration is closed: ask an administrator for an account")
        user = await self.create_user(username, password, email=email)
        return await self._start_session(user)

    async def login(self, username: str, password: str, address: str | None) -> Session:
        name = normalise_username(username)
        retry_after = await self.throttle.acquire(name, address)
        if retry_after is not None:
            raise RateLimited(
                f"too many failed logins: try again in {retry_after} s", retry_after=retry_after
            )
        async with self.engine.connect() as conn:
            found = await conn.execute(select(users).where(users.c.username == name))
            user = found.one_or_none()
        if user is None:
            await self.passwords.verify_unknown_user(password)
            raise Unauthenticated(LOGIN_FAILED)
        if not await self.passwords.verify(user.password_hash, password) or not user.is_active:
            raise Unauthenticated(LOGIN_FAILED)
        await self.throttle.succeeded(name, address)
        now = utcnow()
        values: dict[str, Any] = {"last_login_at": now}
        if self.passwords.needs_rehash(user.password_hash):
            values["password_hash"] = await self.passwords.hash(password)
        async with async_write_transaction(self.engine) as conn:
            user = await _update(conn, user.id, **values)
        return await self._start_session(user, now=now)

    async def refresh(self, token: str) -> Session:
        """Rotate: the presented token dies, a new one of the same family is born.

        Presenting a token that was already rotated means it leaked: the whole family dies.
        """
        claims = self._decode(token, TokenType.REFRESH)
        now = utcnow()
        async with async_write_transaction(self.engine) as conn:
            rotated = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.jti == claims.jti,
                    refresh_tokens.c.revoked_at.is_(None),
                    refresh_tokens.c.expires_at > now,
                )
                .values(revoked_at=now, revoked_reason="rotated")
                .returning(refresh_tokens.c.user_id, refresh_tokens.c.family_id)
            )
            live = rotated.one_or_none()
            if live is not None:
                user = await _user(conn, live.user_id)
            else:
                await _revoke_family(conn, claims.family_id or "", "reused")
        if live is None:  # outside the transaction, so that the revocation commits
            await self._publish(Notice(claims.user_id, session=claims.family_id))
            raise Unauthenticated("refresh token expired, revoked or already used")
        if user is None or not user.is_active or user.token_version != claims.token_version:
            raise Unauthenticated("refresh token no longer valid")
        session = await self._start_session(user, family_id=live.family_id, now=now)
        async with async_write_transaction(self.engine) as conn:
            await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.jti == claims.jti)
                .values(replaced_by=session.refresh.claims.jti)
            )
        return session

    async def logout(self, token: str) -> None:
        """Revoke the presented refresh token's family (this login, on this device)."""
        claims = self._decode(token, TokenType.REFRESH)
        async with async_write_transaction(self.engine) as conn:
            await _revoke_family(conn, claims.family_id or "", "logout")
        await self._publish(Notice(claims.user_id, session=claims.family_id))

    async def change_password(self, viewer: Viewer, current: str, new: str) -> Session:
        """Every other session ends; the caller gets a fresh one."""
        self.passwords.check_policy(new)
        user = await self.user_by_id(viewer.user_id)
        if user is None or not await self.passwords.verify(user.password_hash, current):
            raise BadUserInput("the current password is wrong", field="currentPassword")
        if current == new:
            raise BadUserInput("the new password is the current one", field="newPassword")
        password_hash = await self.passwords.hash(new)
        async with async_write_transaction(self.engine) as conn:
            user = await _update(
                conn,
                viewer.user_id,
                password_hash=password_hash,
                token_version=users.c.token_version + 1,
            )
            await _revoke_user_tokens(conn, viewer.user_id, "password changed")
        await self._publish(Notice(user.id, token_version=user.token_version))
        return await self._start_session(user)

    async def authenticate(self, token: str) -> Viewer:
        claims = self._decode(token, TokenType.ACCESS)
        user = await self.blocking.run(self._caller, claims.user_id, claims.family_id)
        if user is None or not user.is_active or user.token_version != claims.token_version:
            raise Unauthenticated("access token no longer valid")
        if not user.session_live:
            raise Unauthenticated("this session has ended: sign in again")
        return Viewer(
            user_id=user.id,
            username=user.username,
            role=Role(user.role),
            session_id=claims.family_id,
            token_version=claims.token_version,
        )

    def _decode(self, token: str, kind: TokenType) -> Any:
        try:
            return self.codec.decode(token, kind)
        except InvalidToken as exc:
            expired = "expired" in str(exc).lower()
            raise Unauthenticated(
                f"{kind.value} token {'expired' if expired else 'invalid'}"
            ) from None

    async def _start_session(
        self, user: Row[Any], *, family_id: str | None = None, now: datetime | None = None
    ) -> Session:
        now = now or utcnow()
        new_session = family_id is None
        family_id = family_id or secrets.token_urlsafe(16)
        access = self.codec.issue(
            TokenType.ACCESS,
            user_id=user.id,
            token_version=user.token_version,
            now=now,
            family_id=family_id,
        )
        refresh = self.codec.issue(
            TokenType.REFRESH,
            user_id=user.id,
            token_version=user.token_version,
            now=now,
            family_id=family_id,
        )
        async with async_write_transaction(self.engine) as conn:
            if new_session:
                await conn.execute(
                    sessions.insert().values(family_id=family_id, user_id=user.id, created_at=now)
                )
            await conn.execute(
                refresh_tokens.insert().values(
                    jti=refresh.claims.jti,
                    user_id=user.id,
                    family_id=family_id,
                    issued_at=now,
                    expires_at=refresh.claims.expires_at,
                )
            )
        return Session(access=access, refresh=refresh, user=user)


_CALLER_COLUMNS = ("id", "username", "role", "is_active", "token_version")
_SESSION_LIVE = (
    exists()
    .where(
        sessions.c.family_id == bindparam("session"),
        sessions.c.user_id == users.c.id,
        sessions.c.revoked_at.is_(None),
    )
    .label("session_live")
)
_CALLER = select(*(users.c[name] for name in _CALLER_COLUMNS), _SESSION_LIVE).where(
    users.c.id == bindparam("user_id")
)


async def _user(conn: AsyncConnection, user_id: int) -> Row[Any] | None:
    found = await conn.execute(select(users).where(users.c.id == user_id))
    return found.one_or_none()


async def _update(conn: AsyncConnection, user_id: int, **values: Any) -> Row[Any]:
    result = await conn.execute(
        update(users).where(users.c.id == user_id).values(**values).returning(*users.c)
    )
    row = result.one_or_none()
    if row is None:
        raise NotFound("no such user", field="userId")
    return row


async def _revoke_family(conn: AsyncConnection, family_id: str, reason: str) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.family_id == family_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


async def _revoke_user_tokens(conn: AsyncConnection, user_id: int, reason: str) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


async def _keep_an_admin(conn: AsyncConnection) -> None:
    """Refuse (and so roll back) a change that leaves no active administrator."""
    statement = (
        select(func.count())
        .select_from(users)
        .where(users.c.role == Role.ADMIN.value, users.c.is_active.is_(True))
    )
    if (await conn.execute(statement)).scalar_one() == 0:
        raise Conflict("that would leave no active administrator")
