"""Sockets and streams act as their users are now, on both databases (issue 15, items 1 and 8).

A role change, a deactivation, a password change or a logout reaches sockets opened before
it: a demoted administrator cannot use an old socket to promote themself back; a session that
ended closes its sockets with 4403 and stops its streams mid-batch (WebSocket, SSE, the file
export); logout refuses the session's access tokens over HTTP at once. Also: WebSocket
credentials in every form clients send them (issue 18, item 5).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from redis import Redis
from sqlalchemy import text, update

from bookql.accounts.notices import LISTENER
from bookql.accounts.tables import users
from bookql.db.engine import create_sync_engine, write_transaction
from bookql.db.migrate import upgrade
from tests.accounts.test_accounts import PASSWORD
from tests.conftest import ScratchDatabase
from tests.support.sessions import (
    CHANGE_PASSWORD,
    ME,
    SET_ROLE,
    TRAINING_DATA,
    USERS,
    Gate,
    close_code,
    codes,
    gate,
    run,
    site,
)

__all__ = ["gate"]  # the fixture


@pytest.mark.slow
def test_a_demoted_admin_cannot_promote_themself_over_an_old_socket(
    empty_db: ScratchDatabase,
) -> None:
    with site(empty_db) as s:
        mallory = s.register("mallory")
        s.set_role(mallory["user"]["id"], "ADMIN")
        with s.socket(mallory["accessToken"]) as ws:
            assert "errors" not in run(ws, USERS)
            s.set_role(mallory["user"]["id"], "USER")
            repromote = run(ws, SET_ROLE, {"id": mallory["user"]["id"], "r": "ADMIN"})
            assert codes(repromote) == ["FORBIDDEN"]
            assert codes(run(ws, USERS, op="u")) == ["FORBIDDEN"]
            assert run(ws, ME, op="m")["data"]["me"]["role"] == "USER"
        assert s.data(ME, token=mallory["accessToken"])["me"]["role"] == "USER"


def test_deactivation_closes_the_socket_and_stops_its_stream(
    seeded_db: ScratchDatabase, gate: Gate
) -> None:
    with site(seeded_db) as s:
        user = s.register("deactivated-ws")
        with s.socket(user["accessToken"]) as ws:
            ws.send_json({"id": "t", "type": "subscribe", "payload": {"query": TRAINING_DATA}})
            first = ws.receive_json()
            assert first["type"] == "next" and first["payload"]["data"]["trainingData"]["rowCount"]
            assert gate.first_sent.wait(10)
            s.set_active(user["user"]["id"], False)
            assert close_code(ws) == 4403
        assert gate.closed.wait(10)  # the stream stopped while its batch was being read


@pytest.mark.slow
def test_a_new_operation_on_a_socket_of_a_deactivated_user_is_refused(
    empty_db: ScratchDatabase,
) -> None:
    with site(empty_db) as s:
        user = s.register("quiet")
        with s.socket(user["accessToken"]) as ws:
            s.set_active(user["user"]["id"], False)
            ws.send_json({"id": "m", "type": "subscribe", "payload": {"query": ME}})
            assert close_code(ws) == 4403


def _events(lines: Any) -> Any:
    for line in lines:
        if line.startswith("data: ") and line != "data: ":
            yield orjson.loads(line.removeprefix("data: "))


def test_deactivation_stops_an_sse_stream(seeded_db: ScratchDatabase, gate: Gate) -> None:
    with site(seeded_db) as s:
        user = s.register("deactivated-sse")
        headers = {"Authorization": f"Bearer {user['accessToken']}", "Accept": "text/event-stream"}
        with s.http.stream(
            "POST", "/graphql", json={"query": TRAINING_DATA}, headers=headers
        ) as response:
            assert response.status_code == 200
            events = _events(response.iter_lines())
            assert next(events)["data"]["trainingData"]["rowCount"] == 5
            assert gate.first_sent.wait(10)
            s.set_active(user["user"]["id"], False)
            rest = list(events)
        assert [codes(event) for event in rest] == [["UNAUTHENTICATED"]]
        assert gate.closed.is_set()


def test_deactivation_stops_a_multipart_stream(seeded_db: ScratchDatabase, gate: Gate) -> None:
    with site(seeded_db) as s:
        user = s.register("deactivated-multipart")
        headers = {
            "Authorization": f"Bearer {user['accessToken']}",
            "Accept": 'multipart/mixed;subscriptionSpec="1.0"',
        }
        with s.http.stream(
            "POST", "/graphql", json={"query": TRAINING_DATA}, headers=headers
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            received = b""
            while b"trainingData" not in received:
                received += next(chunks)
            assert gate.first_sent.wait(10)
            s.set_active(user["user"]["id"], False)
            received += b"".join(chunks)
        parts = [
            orjson.loads(part.split(b"\r\n\r\n", 1)[1])
            for part in received.split(b"--graphql")
            if b"\r\n\r\n" in part and b"{" in part
        ]
        payloads = [part["payload"] for part in parts if "payload" in part]
        assert payloads[0]["data"]["trainingData"]["rowCount"] == 5
        assert [codes(payload) for payload in payloads[1:]] == [["UNAUTHENTICATED"]]
        assert gate.closed.is_set()


def test_a_role_change_ends_subscriptions_but_not_the_socket(
    seeded_db: ScratchDatabase, gate: Gate
) -> None:
    with site(seeded_db) as s:
        user = s.register("promoted")
        with s.socket(user["accessToken"]) as ws:
            ws.send_json({"id": "t", "type": "subscribe", "payload": {"query": TRAINING_DATA}})
            assert ws.receive_json()["type"] == "next"
            assert gate.first_sent.wait(10)
            s.set_role(user["user"]["id"], "ADMIN")
            ended = ws.receive_json()
            assert ended["type"] == "next" and codes(ended["payload"]) == ["FORBIDDEN"]
            assert ws.receive_json() == {"id": "t", "type": "complete"}
            assert gate.closed.wait(10)
            assert run(ws, USERS)["data"]["users"]["totalCount"] >= 2  # now an administrator


def test_deactivation_cuts_the_file_export_short(seeded_db: ScratchDatabase, gate: Gate) -> None:
    with site(seeded_db) as s:
        user = s.register("deactivated-export")
        headers = {"Authorization": f"Bearer {user['accessToken']}"}
        with s.http.stream(
            "GET", "/export/training-data?format=csv&batchSize=5", headers=headers
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            first = next(chunks)
            assert gate.first_sent.wait(10)
            s.set_active(user["user"]["id"], False)
            rest = b"".join(chunks)
        assert (first + rest).count(b"\n") == 1 + 5  # the header and the first batch only
        assert gate.closed.is_set()


@pytest.mark.slow
def test_logout_refuses_the_sessions_access_token_and_closes_its_sockets(
    empty_db: ScratchDatabase,
) -> None:
    with site(empty_db) as s:
        first = s.register("leaver")
        second = s.login("leaver")
        with s.socket(first["accessToken"]) as ended, s.socket(second["accessToken"]) as kept:
            s.logout(first["refreshToken"])
            assert codes(s.gql(ME, token=first["accessToken"])) == ["UNAUTHENTICATED"]
            assert close_code(ended) == 4403
            assert run(kept, ME)["data"]["me"]["username"] == "leaver"
        assert s.data(ME, token=second["accessToken"])["me"]["username"] == "leaver"
        with s.http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json(
                {"type": "connection_init", "payload": {"Authorization": first["accessToken"]}}
            )
            assert close_code(ws) == 4403


@pytest.mark.slow
def test_refresh_token_reuse_refuses_the_sessions_access_tokens(
    empty_db: ScratchDatabase,
) -> None:
    with site(empty_db) as s:
        stolen = s.register("victim")
        rotated = s.refresh(stolen["refreshToken"])["data"]["refresh"]
        with s.socket(rotated["accessToken"]) as ws:
            assert codes(s.refresh(stolen["refreshToken"])) == ["UNAUTHENTICATED"]  # reuse
            for token in (stolen["accessToken"], rotated["accessToken"]):
                assert codes(s.gql(ME, token=token)) == ["UNAUTHENTICATED"]
            assert close_code(ws) == 4403


@pytest.mark.slow
def test_a_password_change_closes_the_users_sockets(empty_db: ScratchDatabase) -> None:
    with site(empty_db) as s:
        user = s.register("changer")
        with s.socket(user["accessToken"]) as old:
            fresh = s.change_password(user["accessToken"], PASSWORD, "another password")
            assert close_code(old) == 4403
            with s.socket(fresh) as new:
                assert run(new, ME)["data"]["me"]["username"] == "changer"
                # changed over the socket itself: the answer (new tokens) comes, then the close
                changed = run(new, CHANGE_PASSWORD, {"c": "another password", "n": "third one!"})
                newest = changed["data"]["changePassword"]["auth"]["accessToken"]
                assert close_code(new) == 4403
        assert s.data(ME, token=newest)["me"]["username"] == "changer"


@pytest.mark.slow
@pytest.mark.parametrize(
    "form",
    ["Authorization", "authorization", "AUTHORIZATION", "headers", "apollo-lower", "upgrade"],
)
def test_websocket_credentials_as_clients_send_them(empty_db: ScratchDatabase, form: str) -> None:
    with site(empty_db) as s:
        token = f"Bearer {s.register('client')['accessToken']}"
        forms: dict[str, dict[str, Any]] = {
            "Authorization": {"Authorization": token},
            "authorization": {"authorization": token},
            "AUTHORIZATION": {"AUTHORIZATION": token},
            "headers": {"headers": {"Authorization": token}},
            "apollo-lower": {"headers": {"authorization": token}},
            "upgrade": {},
        }
        payload = forms[form]
        headers = {"Authorization": token} if form == "upgrade" else None
        with s.socket(payload=payload, headers=headers) as ws:
            assert run(ws, ME)["data"]["me"]["username"] == "client"
        with s.http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            forged = {"headers": {"authorization": "Bearer forged.token.value"}}
            ws.send_json({"type": "connection_init", "payload": forged})
            assert close_code(ws) == 4403


def _drop_listener(database: ScratchDatabase, redis_url: str | None) -> None:
    """Cut the notice listener's connection, as a network blip or a restart would."""
    if redis_url is not None:
        client = Redis.from_url(redis_url)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        listeners = [
            c for c in client.client_list() if str(c["db"]) == str(db) and int(c["sub"]) > 0
        ]
        assert listeners
        for listener in listeners:
            client.client_kill_filter(_id=listener["id"])
        client.close()
        return
    engine = create_sync_engine(database.settings())
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :listener"
            ),
            {"listener": LISTENER},
        ).all()
    engine.dispose()
    assert killed


def test_a_lost_notice_connection_rereads_the_users_on_reconnect(
    empty_db: ScratchDatabase, request: pytest.FixtureRequest
) -> None:
    """A notice lost while the listener was away (here: a change written with no notice at
    all) is made good by the re-read on reconnection: Redis on SQLite, LISTEN on PostgreSQL."""
    redis_url = request.getfixturevalue("redis_url") if empty_db.backend == "sqlite" else None
    with site(empty_db, redis_url=redis_url) as s:
        user = s.register("unnoticed")
        s.set_role(user["user"]["id"], "ADMIN")
        with s.socket(user["accessToken"]) as ws:
            assert "errors" not in run(ws, USERS)
            engine = create_sync_engine(empty_db.settings())
            with write_transaction(engine) as conn:
                demote = update(users).where(users.c.username == "unnoticed").values(role="USER")
                conn.execute(demote)
            engine.dispose()
            assert "errors" not in run(ws, USERS)  # no notice: nobody told this process
            _drop_listener(empty_db, redis_url)
            deadline = time.monotonic() + 10
            while codes(answer := run(ws, USERS)) != ["FORBIDDEN"]:
                assert time.monotonic() < deadline, answer
                time.sleep(0.1)


def test_the_migration_makes_sessions_of_existing_token_families(
    blank_db: ScratchDatabase,
) -> None:
    """Refresh tokens issued before sessions existed keep working, and a family that logout
    or reuse revoked is an ended session."""
    engine = create_sync_engine(blank_db.settings())
    upgrade(engine, "0008")
    issued = "2026-01-01 00:00:00+00:00"
    with write_transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, is_active,"
                " token_version, created_at) VALUES (1, 'old', 'h', 'USER', true, 0, :at)"
            ),
            {"at": issued},
        )
        for jti, family, reason in [
            ("a", "live", None),
            ("b", "out", "logout"),
            ("c", "rotated", "rotated"),
            ("d", "rotated", None),
            ("e", "stolen", "reused"),
        ]:
            conn.execute(
                text(
                    "INSERT INTO refresh_tokens (jti, user_id, family_id, issued_at, expires_at,"
                    " revoked_at, revoked_reason) VALUES (:j, 1, :f, :at, :at, :r_at, :r)"
                ),
                {"j": jti, "f": family, "at": issued, "r_at": reason and issued, "r": reason},
            )
    upgrade(engine)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT family_id, revoked_reason FROM sessions ORDER BY family_id")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in found] == [
        ("live", None),
        ("out", "logout"),
        ("rotated", None),
        ("stolen", "reused"),
    ]
