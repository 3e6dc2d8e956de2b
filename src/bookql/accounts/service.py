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

from bookql.accounts.notices import Notice, NoticeBus
from bookql.accounts.passwords import Passwords
from bookql.accounts.tables import Role, refresh_tokens, sessions, users
from bookql.accounts.throttle import LoginThrottle
from bookql.accounts.tokens import (
    ExpiredToken,
    InvalidToken,
    IssuedToken,
    TokenCodec,
    TokenType,
)
from bookql.accounts.usernames import checked_email, checked_username, normalise_username
from bookql.core.errors import (
    AccessTokenExpired,
    BadUserInput,
    Conflict,
    Forbidden,
    NotFound,
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
            if role is not Role.ADMIN:
                await _lock_admins(conn)
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
                await _lock_admins(conn)
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
        async with async_write_transaction(self.engine) as conn:
            session = self._issue_session(user, now=utcnow())
            await _store_session(conn, session, new=True)
        return session

    async def login(self, username: str, password: str, address: str | None) -> Session:
        name = normalise_username(username)
        async with self.throttle.attempt(name, address) as attempt:
            try:
                session = await self._sign_in(name, password)
            except Unauthenticated:
                attempt.failed()
                raise
            attempt.succeeded()
        return session

    async def _sign_in(self, name: str, password: str) -> Session:
        """argon2 first, with no lock held; then the row locked, the hash that was checked
        still the account's, last login (and a rehash) and the new session in one write."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(users).where(users.c.username == name))
            seen = found.one_or_none()
        if seen is None:
            await self.passwords.verify_unknown_user(password)
            raise Unauthenticated(LOGIN_FAILED)
        if not await self.passwords.verify(seen.password_hash, password):
            raise Unauthenticated(LOGIN_FAILED)
        rehashed = None
        if self.passwords.needs_rehash(seen.password_hash):
            rehashed = await self.passwords.hash(password)
        async with async_write_transaction(self.engine) as conn:
            user = await _locked_user(conn, seen.id)
            if user is None or user.password_hash != seen.password_hash or not user.is_active:
                raise Unauthenticated(LOGIN_FAILED)
            now = utcnow()
            values: dict[str, Any] = {"last_login_at": now}
            if rehashed is not None:
                values["password_hash"] = rehashed
            user = await _update(conn, user.id, **values)
            session = self._issue_session(user, now=now)
            await _store_session(conn, session, new=True)
        return session

    async def refresh(self, token: str) -> Session:
        """Rotate: the presented token dies, a new one of the same family is born.

        Presenting a token that was already rotated means it leaked: the whole family dies.
        Rotation with its successor's insert, and a reuse's revocation, are each one
        transaction on the locked user and token rows, so they run one after the other and a
        detected reuse always finds, and kills, the successor.
        """
        claims = self._decode(token, TokenType.REFRESH)
        session: Session | None = None
        reused = False
        async with async_write_transaction(self.engine) as conn:
            user = await _locked_user(conn, claims.user_id)
            found = await conn.execute(
                select(refresh_tokens).where(refresh_tokens.c.jti == claims.jti).with_for_update()
            )
            stored = found.one_or_none()
            now = utcnow()
            if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
                reused = True
                await _revoke_family(conn, claims.family_id or "", "reused", now)
            else:
                if (
                    user is not None
                    and user.is_active
                    and user.token_version == claims.token_version
                    and stored.user_id == user.id
                ):
                    session = self._issue_session(user, family_id=stored.family_id, now=now)
                    await _store_session(conn, session, new=False)
                await conn.execute(
                    update(refresh_tokens)
                    .where(refresh_tokens.c.jti == claims.jti)
                    .values(
                        revoked_at=now,
                        revoked_reason="rotated",
                        replaced_by=session.refresh.claims.jti if session else None,
                    )
                )
        # raised outside the transaction, so that the revocation commits
        if reused:
            await self._publish(Notice(claims.user_id, session=claims.family_id))
            raise Unauthenticated("refresh token expired, revoked or already used")
        if session is None:
            raise Unauthenticated("refresh token no longer valid")
        return session

    async def logout(self, token: str) -> None:
        """Revoke the presented refresh token's family (this login, on this device)."""
        claims = self._decode(token, TokenType.REFRESH)
        async with async_write_transaction(self.engine) as conn:
            await _locked_user(conn, claims.user_id)
            await _revoke_family(conn, claims.family_id or "", "logout", utcnow())
        await self._publish(Notice(claims.user_id, session=claims.family_id))

    async def change_password(self, viewer: Viewer, current: str, new: str) -> Session:
        """Every other session ends; the caller gets a fresh one.

        argon2 runs before the lock: the write then proceeds only if the row still holds the
        hash that was checked and the token version the caller's token carries.
        """
        self.passwords.check_policy(new)
        seen = await self.user_by_id(viewer.user_id)
        if seen is None or not await self.passwords.verify(seen.password_hash, current):
            raise BadUserInput("the current password is wrong", field="currentPassword")
        if current == new:
            raise BadUserInput("the new password is the current one", field="newPassword")
        password_hash = await self.passwords.hash(new)
        async with async_write_transaction(self.engine) as conn:
            user = await _locked_user(conn, viewer.user_id)
            if (
                user is None
                or not user.is_active
                or user.password_hash != seen.password_hash
                or user.token_version != viewer.token_version
            ):
                raise Unauthenticated("the account changed meanwhile: sign in again")
            user = await _update(
                conn,
                viewer.user_id,
                password_hash=password_hash,
                token_version=users.c.token_version + 1,
            )
            await _revoke_user_tokens(conn, viewer.user_id, "password changed")
            session = self._issue_session(user, now=utcnow())
            await _store_session(conn, session, new=True)
        await self._publish(Notice(user.id, token_version=user.token_version))
        return session

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
        except ExpiredToken:
            if kind is TokenType.ACCESS:
                raise AccessTokenExpired from None
            raise Unauthenticated(f"{kind.value} token expired: sign in again") from None
        except InvalidToken:
            raise Unauthenticated(f"{kind.value} token invalid") from None

    def _issue_session(
        self, user: Row[Any], *, now: datetime, family_id: str | None = None
    ) -> Session:
        """Sign a session's tokens; :func:`_store_session` records it in the caller's
        transaction."""
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


async def _locked_user(conn: AsyncConnection, user_id: int) -> Row[Any] | None:
    """The user row, locked until the transaction ends (SQLite: ``BEGIN IMMEDIATE`` already
    holds the database). Every write to a user or their tokens takes it first, so they queue
    per user in one order and cannot deadlock."""
    found = await conn.execute(select(users).where(users.c.id == user_id).with_for_update())
    return found.one_or_none()


async def _store_session(conn: AsyncConnection, session: Session, *, new: bool) -> None:
    """Record a session's refresh token, and for a new sign-in (not a rotation) the session
    that its access tokens name."""
    claims = session.refresh.claims
    if new:
        await conn.execute(
            sessions.insert().values(
                family_id=claims.family_id, user_id=claims.user_id, created_at=claims.issued_at
            )
        )
    await conn.execute(
        refresh_tokens.insert().values(
            jti=claims.jti,
            user_id=claims.user_id,
            family_id=claims.family_id,
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
        )
    )


async def _update(conn: AsyncConnection, user_id: int, **values: Any) -> Row[Any]:
    result = await conn.execute(
        update(users).where(users.c.id == user_id).values(**values).returning(*users.c)
    )
    row = result.one_or_none()
    if row is None:
        raise NotFound("no such user", field="userId")
    return row


async def _revoke_family(conn: AsyncConnection, family_id: str, reason: str, now: datetime) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.family_id == family_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def _revoke_user_tokens(conn: AsyncConnection, user_id: int, reason: str) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


_ACTIVE_ADMIN = (users.c.role == Role.ADMIN.value) & users.c.is_active.is_(True)


async def _lock_admins(conn: AsyncConnection) -> None:
    """Lock every active administrator's row, in id order, before a change that may remove
    one: two such changes then run one after the other, and the second counts what the
    first left (PostgreSQL rechecks a locked row's condition once its lock is granted)."""
    await conn.execute(
        select(users.c.id).where(_ACTIVE_ADMIN).order_by(users.c.id).with_for_update()
    )


async def _keep_an_admin(conn: AsyncConnection) -> None:
    """Refuse (and so roll back) a change that leaves no active administrator."""
    statement = select(func.count()).select_from(users).where(_ACTIVE_ADMIN)
    if (await conn.execute(statement)).scalar_one() == 0:
        raise Conflict("that would leave no active administrator")
