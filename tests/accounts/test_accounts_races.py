"""Accounts under concurrency, on both databases: every read-modify-write of a user or a
refresh token runs in one transaction on a locked row, so racing requests cannot leave a
live session behind a detected reuse, or an instance without an administrator."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from bookql.accounts.setup import build_accounts
from bookql.accounts.tables import Role, refresh_tokens, users
from bookql.core.errors import Unauthenticated
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import create_async_db_engine
from tests.accounts.test_accounts import LOGIN, PASSWORD, REFRESH, SECRET, make_admin, register
from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes

pytestmark = pytest.mark.slow  # repeated trials of racing requests

TRIALS = 10
RACERS = 8
SET_ROLE = """mutation($id: ID!, $r: Role!) {
    setUserRole(input: {userId: $id, role: $r}) { user { role } } }"""
SET_ACTIVE = """mutation($id: ID!, $a: Boolean!) {
    setUserActive(input: {userId: $id, active: $a}) { user { active } } }"""
CHANGE = """mutation($c: String!, $n: String!) {
    changePassword(input: {currentPassword: $c, newPassword: $n}) { auth { refreshToken } } }"""


async def _live_tokens(database: ScratchDatabase) -> list[Any]:
    engine = create_async_db_engine(database.settings())
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(refresh_tokens).where(refresh_tokens.c.revoked_at.is_(None))
            )
            return list(rows)
    finally:
        await engine.dispose()


async def test_a_detected_reuse_kills_the_winners_successor(empty_db: ScratchDatabase) -> None:
    """Eight refreshes of one token at once: one wins, the others detect reuse, and the
    winner's successor dies with the family every time."""
    async with app_client(empty_db.settings(jwt_secret=SECRET)) as http:
        client = GraphQLClient(http)
        registered = await register(client)
        for trial in range(TRIALS):
            session = (await client.data(LOGIN, {"u": "alice", "p": PASSWORD}))["login"]
            bodies = await asyncio.gather(
                *(client.execute(REFRESH, {"t": session["refreshToken"]}) for _ in range(RACERS))
            )
            won = [body["data"]["refresh"] for body in bodies if not body.get("errors")]
            assert len(won) == 1, f"trial {trial}: {len(won)} refreshes won"
            assert sorted(c for body in bodies for c in error_codes(body)) == [
                "UNAUTHENTICATED"
            ] * (RACERS - 1)
            successor = await client.execute(REFRESH, {"t": won[0]["refreshToken"]})
            assert error_codes(successor) == ["UNAUTHENTICATED"], f"trial {trial}"
    # every family that raced is dead: only registration's own session lives
    live = await _live_tokens(empty_db)
    assert [row.jti for row in live] == [_jti(registered["refreshToken"])]


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def test_two_demotions_cannot_leave_no_admin(empty_db: ScratchDatabase) -> None:
    """The last two administrators demote each other at the same moment: one must lose."""
    await make_admin(empty_db, "root")
    await make_admin(empty_db, "second")
    async with app_client(empty_db.settings(jwt_secret=SECRET)) as http:
        client = GraphQLClient(http)
        for trial in range(TRIALS):
            admins = [
                (await client.data(LOGIN, {"u": name, "p": PASSWORD}))["login"]
                for name in ("root", "second")
            ]
            demote, deactivate = await asyncio.gather(
                client.execute(
                    SET_ROLE,
                    {"id": admins[1]["user"]["id"], "r": "USER"},
                    token=admins[0]["accessToken"],
                ),
                client.execute(
                    SET_ACTIVE,
                    {"id": admins[0]["user"]["id"], "a": False},
                    token=admins[1]["accessToken"],
                )
                if trial % 2
                else client.execute(
                    SET_ROLE,
                    {"id": admins[0]["user"]["id"], "r": "USER"},
                    token=admins[1]["accessToken"],
                ),
            )
            codes = sorted(c for body in (demote, deactivate) for c in error_codes(body))
            assert codes in (["CONFLICT"], ["UNAUTHENTICATED"], ["FORBIDDEN"]), (trial, codes)
            engine = create_async_db_engine(empty_db.settings())
            async with engine.connect() as conn:
                rows = (await conn.execute(select(users))).all()
            await engine.dispose()
            active_admins = [r for r in rows if r.role == Role.ADMIN.value and r.is_active]
            assert len(active_admins) == 1, f"trial {trial}: {len(active_admins)} admins"
            # put things back for the next trial
            survivor = active_admins[0]
            token = (await client.data(LOGIN, {"u": survivor.username, "p": PASSWORD}))["login"]
            for row in rows:
                if row.id == survivor.id:
                    continue
                other = {"id": _user_id(row.id)}
                await client.data(SET_ACTIVE, {**other, "a": True}, token=token["accessToken"])
                await client.data(SET_ROLE, {**other, "r": "ADMIN"}, token=token["accessToken"])


def _user_id(key: int) -> str:
    from strawberry.relay import to_base64

    return to_base64("User", key)


async def test_racing_password_changes_leave_one_password(empty_db: ScratchDatabase) -> None:
    """Two changes with the same current password at once: one wins, the other is refused,
    and exactly one of the two new passwords works, with one live session."""
    async with app_client(empty_db.settings(jwt_secret=SECRET)) as http:
        client = GraphQLClient(http)
        session = await register(client)
        first, second = await asyncio.gather(
            client.execute(
                CHANGE, {"c": PASSWORD, "n": "first new pass"}, token=session["accessToken"]
            ),
            client.execute(
                CHANGE, {"c": PASSWORD, "n": "second new pass"}, token=session["accessToken"]
            ),
        )
        outcomes = [not body.get("errors") for body in (first, second)]
        assert sorted(outcomes) == [False, True], (first, second)
        winner = "first new pass" if outcomes[0] else "second new pass"
        loser = "second new pass" if outcomes[0] else "first new pass"
        assert "errors" not in await client.execute(LOGIN, {"u": "alice", "p": winner})
        assert error_codes(await client.execute(LOGIN, {"u": "alice", "p": loser})) == [
            "UNAUTHENTICATED"
        ]
    live = await _live_tokens(empty_db)
    assert len(live) == 2  # the winner's session and the login just made


async def test_a_password_change_checks_the_callers_token_version(
    empty_db: ScratchDatabase,
) -> None:
    """A change that lands between the caller's token check and the locked write (another
    password change, a deactivation) moves the token version: the write is then refused,
    even with the account's current password, instead of ending a session it never saw."""
    settings = empty_db.settings(jwt_secret=SECRET)
    engine = create_async_db_engine(settings)
    blocking = BlockingDatabase.for_settings(settings)
    accounts = build_accounts(settings, engine, None, blocking)
    try:
        await accounts.create_user("alice", PASSWORD)
        session = await accounts.login("alice", PASSWORD, None)
        viewer = await accounts.authenticate(session.access.token)
        await accounts.change_password(viewer, PASSWORD, "meanwhile elsewhere")
        with pytest.raises(Unauthenticated):
            await accounts.change_password(viewer, "meanwhile elsewhere", "stale caller's pick")
        again = await accounts.login("alice", "meanwhile elsewhere", None)
        assert again.user.username == "alice"
    finally:
        accounts.close()
        blocking.close()
        await engine.dispose()
