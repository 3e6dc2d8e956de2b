"""Accounts over GraphQL, on both databases: sessions, tokens, roles, permissions, throttling."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import argon2
import jwt
import pytest

from bookql.accounts.passwords import Passwords
from bookql.accounts.setup import build_accounts
from bookql.accounts.tables import Role
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import create_async_db_engine
from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes

SECRET = "k" * 64
PASSWORD = "correct horse battery"

AUTH = "accessToken refreshToken tokenType expiresIn user { id username role active }"
REGISTER = f"""mutation($u: String!, $p: String!, $e: String) {{
    register(input: {{username: $u, password: $p, email: $e}}) {{ {AUTH} }} }}"""
LOGIN = f"""mutation($u: String!, $p: String!) {{
    login(input: {{username: $u, password: $p}}) {{ {AUTH} }} }}"""
REFRESH = f"mutation($t: String!) {{ refresh(input: {{refreshToken: $t}}) {{ {AUTH} }} }}"
ME = "{ me { id username role active lastLoginAt } }"


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[GraphQLClient]:
    async with app_client(empty_db.settings(jwt_secret=SECRET)) as http:
        yield GraphQLClient(http)


async def make_admin(database: ScratchDatabase, username: str = "root") -> None:
    settings = database.settings(jwt_secret=SECRET)
    engine = create_async_db_engine(settings)
    blocking = BlockingDatabase.for_settings(settings)
    accounts = build_accounts(settings, engine, None, blocking)
    await accounts.create_user(username, PASSWORD, role=Role.ADMIN)
    blocking.close()
    await engine.dispose()


async def register(client: GraphQLClient, username: str = "alice", **extra: Any) -> dict[str, Any]:
    data = await client.data(REGISTER, {"u": username, "p": PASSWORD, **extra})
    result: dict[str, Any] = data["register"]
    return result


async def login(client: GraphQLClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    return await client.execute(LOGIN, {"u": username, "p": password})


async def test_register_login_and_me(client: GraphQLClient) -> None:
    session = await register(client, "  Alice.Smith ", e="Alice@Example.COM")
    assert session["tokenType"] == "Bearer"
    assert session["expiresIn"] == 900
    assert session["user"]["username"] == "alice.smith"
    assert session["user"]["role"] == "USER"
    me = await client.data(ME, token=session["accessToken"])
    assert me["me"]["username"] == "alice.smith"
    assert me["me"]["lastLoginAt"] is None
    logged_in = await login(client, "ALICE.smith")
    assert "errors" not in logged_in
    me = await client.data(ME, token=logged_in["data"]["login"]["accessToken"])
    assert me["me"]["lastLoginAt"] is not None
    assert (await client.data(ME))["me"] is None  # anonymous


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"u": "al", "p": PASSWORD}, "BAD_USER_INPUT", "username"),
        ({"u": "has space", "p": PASSWORD}, "BAD_USER_INPUT", "username"),
        ({"u": "bob", "p": "short"}, "BAD_USER_INPUT", "password"),
        ({"u": "bob", "p": "x" * 257}, "BAD_USER_INPUT", "password"),
        ({"u": "bob", "p": PASSWORD, "e": "not-an-email"}, "BAD_USER_INPUT", "email"),
        ({"u": "ALICE", "p": PASSWORD}, "CONFLICT", "username"),
        ({"u": "carol", "p": PASSWORD, "e": "alice@example.com"}, "CONFLICT", "email"),
    ],
)
async def test_registration_is_validated(
    client: GraphQLClient, variables: dict[str, str], code: str, field: str
) -> None:
    await register(client, "alice", e="alice@example.com")
    body = await client.execute(REGISTER, variables)
    assert error_codes(body) == [code]
    assert body["errors"][0]["extensions"]["field"] == field


async def test_registration_can_be_closed(empty_db: ScratchDatabase) -> None:
    async with app_client(empty_db.settings(jwt_secret=SECRET, registration_open=False)) as http:
        body = await GraphQLClient(http).execute(REGISTER, {"u": "alice", "p": PASSWORD})
    assert error_codes(body) == ["FORBIDDEN"]


async def test_login_enumerates_nothing(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(client)
    verified: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str, password: str) -> bool:
        verified.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    wrong_password = await login(client, "alice", "wrong password!")
    assert len(verified) == 1
    unknown_user = await login(client, "nobody-here", "wrong password!")
    assert len(verified) == 2  # an unknown user still costs one argon2 verification
    assert verified[1].startswith("$argon2id$")
    assert error_codes(wrong_password) == error_codes(unknown_user) == ["UNAUTHENTICATED"]
    assert wrong_password["errors"][0]["message"] == unknown_user["errors"][0]["message"]


async def test_refresh_rotates_and_reuse_revokes_the_family(client: GraphQLClient) -> None:
    first = await register(client)
    second = (await client.data(REFRESH, {"t": first["refreshToken"]}))["refresh"]
    assert second["refreshToken"] != first["refreshToken"]
    assert (await client.data(ME, token=second["accessToken"]))["me"]["username"] == "alice"
    reused = await client.execute(REFRESH, {"t": first["refreshToken"]})
    assert error_codes(reused) == ["UNAUTHENTICATED"]
    # the leak is contained: the token rotated from it dies too
    assert error_codes(await client.execute(REFRESH, {"t": second["refreshToken"]})) == [
        "UNAUTHENTICATED"
    ]


async def test_tokens_are_not_interchangeable(client: GraphQLClient) -> None:
    session = await register(client)
    as_access = await client.execute(ME, token=session["refreshToken"])
    assert error_codes(as_access) == ["UNAUTHENTICATED"]
    as_refresh = await client.execute(REFRESH, {"t": session["accessToken"]})
    assert error_codes(as_refresh) == ["UNAUTHENTICATED"]


async def test_present_but_invalid_credentials_are_refused(client: GraphQLClient) -> None:
    session = await register(client)
    forged = jwt.encode(
        jwt.decode(session["accessToken"], options={"verify_signature": False}),
        "x" * 64,
        algorithm="HS256",
    )
    for token in (forged, "garbage"):
        body = await client.execute("{ me { id } books(first: 1) { totalCount } }", token=token)
        assert set(error_codes(body)) == {"UNAUTHENTICATED"}
        assert body["data"] is None
    basic = await client.http.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": "Basic YTpi"}
    )
    assert error_codes(basic.json()) == ["UNAUTHENTICATED"]


async def test_logout_revokes_the_refresh_token(client: GraphQLClient) -> None:
    session = await register(client)
    out = await client.data(
        "mutation($t: String!) { logout(input: {refreshToken: $t}) { ok } }",
        {"t": session["refreshToken"]},
    )
    assert out == {"logout": {"ok": True}}
    assert error_codes(await client.execute(REFRESH, {"t": session["refreshToken"]})) == [
        "UNAUTHENTICATED"
    ]


@pytest.mark.slow
async def test_change_password_ends_other_sessions(client: GraphQLClient) -> None:
    session = await register(client)
    change = """mutation($c: String!, $n: String!) {
        changePassword(input: {currentPassword: $c, newPassword: $n}) { auth { accessToken } } }"""
    wrong = await client.execute(
        change, {"c": "not it at all", "n": "a new password"}, token=session["accessToken"]
    )
    assert error_codes(wrong) == ["BAD_USER_INPUT"]
    changed = await client.data(
        change, {"c": PASSWORD, "n": "a new password"}, token=session["accessToken"]
    )
    fresh = changed["changePassword"]["auth"]["accessToken"]
    assert error_codes(await client.execute(ME, token=session["accessToken"])) == [
        "UNAUTHENTICATED"
    ]
    assert error_codes(await client.execute(REFRESH, {"t": session["refreshToken"]})) == [
        "UNAUTHENTICATED"
    ]
    assert (await client.data(ME, token=fresh))["me"]["username"] == "alice"
    assert error_codes(await login(client, "alice")) == ["UNAUTHENTICATED"]
    assert "errors" not in await login(client, "alice", "a new password")
    anonymous = await client.execute(change, {"c": PASSWORD, "n": "whatever12"})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_admin_fields_by_role(client: GraphQLClient, empty_db: ScratchDatabase) -> None:
    await make_admin(empty_db)
    user = await register(client, "bob")
    admin = (await login(client, "root"))["data"]["login"]
    users_query = "{ users(first: 10) { totalCount edges { node { username role } } } }"
    assert error_codes(await client.execute(users_query)) == ["UNAUTHENTICATED"]
    assert error_codes(await client.execute(users_query, token=user["accessToken"])) == [
        "FORBIDDEN"
    ]
    listed = await client.data(users_query, token=admin["accessToken"])
    assert listed["users"]["totalCount"] == 2
    assert [e["node"]["username"] for e in listed["users"]["edges"]] == ["root", "bob"]

    set_role = """mutation($id: ID!, $r: Role!) {
        setUserRole(input: {userId: $id, role: $r}) { user { role } } }"""
    bob_id = user["user"]["id"]
    denied = await client.execute(set_role, {"id": bob_id, "r": "ADMIN"}, token=user["accessToken"])
    assert error_codes(denied) == ["FORBIDDEN"]
    promoted = await client.data(set_role, {"id": bob_id, "r": "ADMIN"}, token=admin["accessToken"])
    assert promoted["setUserRole"]["user"]["role"] == "ADMIN"
    # the role is read on every request: bob's existing token now carries admin rights
    assert (await client.data(users_query, token=user["accessToken"]))["users"]["totalCount"] == 2


async def test_last_admin_cannot_step_down(
    client: GraphQLClient, empty_db: ScratchDatabase
) -> None:
    await make_admin(empty_db)
    admin = (await login(client, "root"))["data"]["login"]
    body = await client.execute(
        "mutation($id: ID!) { setUserRole(input: {userId: $id, role: USER}) { user { role } } }",
        {"id": admin["user"]["id"]},
        token=admin["accessToken"],
    )
    assert error_codes(body) == ["CONFLICT"]
    assert (await client.data(ME, token=admin["accessToken"]))["me"]["role"] == "ADMIN"


async def test_deactivation_invalidates_tokens_at_once(
    client: GraphQLClient, empty_db: ScratchDatabase
) -> None:
    await make_admin(empty_db)
    admin = (await login(client, "root"))["data"]["login"]
    user = await register(client, "mallory")
    deactivate = """mutation($id: ID!, $a: Boolean!) {
        setUserActive(input: {userId: $id, active: $a}) { user { active } } }"""
    done = await client.data(
        deactivate, {"id": user["user"]["id"], "a": False}, token=admin["accessToken"]
    )
    assert done["setUserActive"]["user"]["active"] is False
    assert error_codes(await client.execute(ME, token=user["accessToken"])) == ["UNAUTHENTICATED"]
    assert error_codes(await client.execute(REFRESH, {"t": user["refreshToken"]})) == [
        "UNAUTHENTICATED"
    ]
    assert error_codes(await login(client, "mallory")) == ["UNAUTHENTICATED"]
    await client.data(deactivate, {"id": user["user"]["id"], "a": True}, token=admin["accessToken"])
    assert "errors" not in await login(client, "mallory")
    missing = await client.execute(
        deactivate, {"id": "VXNlcjo5OTk", "a": False}, token=admin["accessToken"]
    )
    assert error_codes(missing) == ["NOT_FOUND"]


async def test_node_applies_the_types_permission(
    client: GraphQLClient, empty_db: ScratchDatabase
) -> None:
    await make_admin(empty_db)
    admin = (await login(client, "root"))["data"]["login"]
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    node = "query($id: ID!) { node(id: $id) { ... on User { username } } }"
    assert (await client.data(node, {"id": alice["user"]["id"]}, token=alice["accessToken"]))[
        "node"
    ] == {"username": "alice"}
    other = await client.execute(node, {"id": bob["user"]["id"]}, token=alice["accessToken"])
    assert other == {"data": {"node": None}}  # as a missing user: no existence oracle
    anonymous = await client.execute(node, {"id": bob["user"]["id"]})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    seen = await client.data(node, {"id": bob["user"]["id"]}, token=admin["accessToken"])
    assert seen["node"] == {"username": "bob"}


async def test_private_catalog(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(jwt_secret=SECRET, public_catalogue=False)
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        query = "{ books(first: 1) { totalCount } categories { name } }"
        anonymous = await client.execute(query)
        assert set(error_codes(anonymous)) == {"UNAUTHENTICATED"}
        assert anonymous["data"] is None
        session = await register(client, "reader")
        assert (await client.data(query, token=session["accessToken"]))["books"][
            "totalCount"
        ] == 1000


async def test_failed_logins_are_throttled(client: GraphQLClient) -> None:
    await register(client)
    for _ in range(5):
        assert error_codes(await login(client, "alice", "wrong password!")) == ["UNAUTHENTICATED"]
    limited = await login(client, "alice", PASSWORD)  # even the right password waits now
    assert error_codes(limited) == ["RATE_LIMITED"]
    assert 0 < limited["errors"][0]["extensions"]["retryAfter"] <= 900


async def test_concurrent_attempts_each_take_a_slot(client: GraphQLClient) -> None:
    await register(client)
    bodies = await asyncio.gather(*(login(client, "alice", f"wrong {i}!!") for i in range(12)))
    codes = sorted(code for body in bodies for code in error_codes(body))
    assert codes == ["RATE_LIMITED"] * 7 + ["UNAUTHENTICATED"] * 5


async def test_aliased_logins_cost_at_most_one_verification(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 aliased ``login`` fields are refused unseen; 20 stop at the first failure."""
    await register(client)
    verified: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str, password: str) -> bool:
        verified.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)

    def aliased(count: int) -> str:
        return (
            "mutation { "
            + " ".join(
                f'a{i}: login(input: {{username: "alice", password: "bad {i}!!"}}) {{ __typename }}'
                for i in range(count)
            )
            + " }"
        )

    hundred = await client.execute(aliased(100))
    assert error_codes(hundred) == ["QUERY_TOO_COMPLEX"]
    assert verified == []
    twenty = await client.execute(aliased(20))
    assert twenty["data"] is None
    assert error_codes(twenty) == ["UNAUTHENTICATED"]
    assert len(verified) == 1
    # that one attempt counted: four more failures are allowed, then the fifth is refused
    codes = [error_codes(await login(client, "alice", "wrong again"))[0] for _ in range(5)]
    assert codes == ["UNAUTHENTICATED"] * 4 + ["RATE_LIMITED"]


async def test_a_success_clears_the_username_count(client: GraphQLClient) -> None:
    await register(client)
    for _ in range(4):
        await login(client, "alice", "wrong password!")
    assert "errors" not in await login(client, "alice")
    for _ in range(4):
        assert error_codes(await login(client, "alice", "wrong password!")) == ["UNAUTHENTICATED"]


async def test_per_address_limit_spans_usernames(empty_db: ScratchDatabase) -> None:
    settings = empty_db.settings(jwt_secret=SECRET, login_max_failures_per_address=3)
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        codes = [
            error_codes(await login(client, f"user{i}", "wrong password!"))[0] for i in range(5)
        ]
    assert codes == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"] * 2


async def test_correct_logins_in_flight_are_never_refused(empty_db: ScratchDatabase) -> None:
    """Correct logins in flight hold the address's slots; the ones that find them full wait
    for them instead of being refused, since only failures count."""
    settings = empty_db.settings(jwt_secret=SECRET, login_max_failures_per_address=2)
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        for number in range(4):
            await register(client, f"user{number}")
        bodies = await asyncio.gather(*(login(client, f"user{i}", PASSWORD) for i in range(4)))
        assert [error_codes(body) for body in bodies] == [[]] * 4


async def test_throttling_is_shared_through_redis(
    empty_db: ScratchDatabase, redis_url: str
) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    settings = empty_db.settings(jwt_secret=SECRET, redis_url=redis_url)
    async with app_client(settings) as first, app_client(settings) as second:
        workers = [GraphQLClient(first), GraphQLClient(second)]
        await register(workers[0])
        codes = [
            error_codes(await login(workers[i % 2], "alice", "wrong password!"))[0]
            for i in range(7)
        ]
    assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"] * 2


async def test_throttling_survives_redis_going_away(empty_db: ScratchDatabase) -> None:
    settings = empty_db.settings(jwt_secret=SECRET, redis_url="redis://127.0.0.1:1/0")
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        await register(client)
        codes = [error_codes(await login(client, "alice", "wrong password!"))[0] for _ in range(6)]
        assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"]


async def test_password_is_rehashed_when_parameters_change(empty_db: ScratchDatabase) -> None:
    from sqlalchemy import select

    from bookql.accounts.tables import users

    async with app_client(empty_db.settings(jwt_secret=SECRET)) as http:
        await register(GraphQLClient(http))
    stronger = empty_db.settings(jwt_secret=SECRET, argon2_time_cost=3)
    async with app_client(stronger) as http:
        assert "errors" not in await login(GraphQLClient(http), "alice")
    engine = create_async_db_engine(stronger)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
    await engine.dispose()
    assert ",t=3," in stored


async def test_hashing_runs_off_the_event_loop_and_is_bounded(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "argon2_time_cost": 2,
            "argon2_memory_kib": 19_456,
            "argon2_parallelism": 1,
            "password_hash_concurrency": 2,
        }
    )
    passwords = Passwords(settings)
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    niceness: set[int] = set()
    running = 0
    peak = 0
    lock = threading.Lock()
    real_hash = argon2.PasswordHasher.hash

    def instrumented(self: argon2.PasswordHasher, password: str, **kwargs: Any) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.get_ident())
            niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        try:
            return real_hash(self, password, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(argon2.PasswordHasher, "hash", instrumented)
    hashes = await asyncio.gather(*(passwords.hash(f"password {i}") for i in range(6)))
    assert len(set(hashes)) == 6
    assert loop_thread not in threads
    assert peak == 2
    assert niceness == {os.getpriority(os.PRIO_PROCESS, 0) + 10}  # yields the CPU to the loop
    passwords.close()


def test_websocket_connection_init_checks_credentials(empty_db: ScratchDatabase) -> None:
    from starlette.testclient import TestClient

    from bookql.server.app import create_app

    app = create_app(empty_db.settings(jwt_secret=SECRET))
    with TestClient(app) as http:
        session = http.post(
            "/graphql", json={"query": REGISTER, "variables": {"u": "wsuser", "p": PASSWORD}}
        ).json()["data"]["register"]
        for payload, accepted in (
            ({}, True),
            ({"Authorization": f"Bearer {session['accessToken']}"}, True),
            ({"Authorization": "Bearer forged.token.value"}, False),
            ({"Authorization": f"Bearer {session['refreshToken']}"}, False),
        ):
            with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                ws.send_json({"type": "connection_init", "payload": payload})
                if accepted:
                    assert ws.receive_json() == {"type": "connection_ack"}
                else:
                    closed = ws.receive()
                    assert closed["type"] == "websocket.close"
                    assert closed["code"] == 4403
