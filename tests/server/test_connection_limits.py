"""Limits on what one client may hold open: WebSockets per process and per address,
operations per socket, idle sockets, and each user's streams and exports (shared by the
workers through Redis, with leases a killed worker cannot keep).

In-process tests use Starlette's test client; the upgrade refusals and the idle close are
also checked on real sockets against ``bookql serve``, and the per-user caps across two
workers on PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bookql.accounts.tables import users
from bookql.core.errors import RateLimited
from bookql.db.engine import create_async_db_engine
from bookql.graphql.slots import Kind, UserSlots
from bookql.server.app import create_app
from tests.accounts.test_accounts import LOGIN, PASSWORD, SECRET, make_admin
from tests.conftest import (
    PostgresDatabases,
    ScratchDatabase,
    _new_database,
    app_client,
)
from tests.support.live import bookql, post_graphql, running_server, server_env
from tests.support.workers import worker_env

PROTOCOL = ["graphql-transport-ws"]
SUBPROTOCOLS = [Subprotocol("graphql-transport-ws")]
START = "mutation($url: String) { startCrawl(input: {startUrl: $url}) { id } }"
PROGRESS = "subscription($id: ID!) { crawlProgress(runId: $id) { status } }"
STATS = "{ stats { totalBooks } }"
# No worker runs jobs in these tests: a started crawl stays queued, and watching it is a
# subscription that stays open until it is completed.
QUEUED = {"run_jobs_in_server": False, "crawl_allowed_hosts": ["127.0.0.1"], "jwt_secret": SECRET}


def _post(http: TestClient, query: str, token: str | None = None, **variables: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def _admin_and_run(http: TestClient) -> tuple[str, str]:
    """The administrator's token and a queued crawl run's id."""
    body = _post(http, LOGIN, u="root", p=PASSWORD).json()
    token: str = body["data"]["login"]["accessToken"]
    run = _post(http, START, token, url="http://127.0.0.1:9/").json()
    assert "errors" not in run, run
    return token, run["data"]["startCrawl"]["id"]


def _opened(ws: Any, token: str | None = None) -> Any:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    ws.send_json({"type": "connection_init", "payload": payload})
    assert ws.receive_json()["type"] == "connection_ack"
    return ws


def _watch(ws: Any, operation: str, run_id: str) -> dict[str, Any]:
    """Subscribes to the run's progress; the first message back."""
    payload = {"query": PROGRESS, "variables": {"id": run_id}}
    ws.send_json({"id": operation, "type": "subscribe", "payload": payload})
    message: dict[str, Any] = ws.receive_json()
    return message


def _codes_of(message: dict[str, Any]) -> list[str]:
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    return [error["extensions"]["code"] for error in errors]


# -- sockets per address and per process ---------------------------------------------------


def test_the_sockets_of_one_address_and_of_the_process_are_capped(
    seeded_db: ScratchDatabase,
) -> None:
    app = create_app(seeded_db.settings(ws_max_connections_per_address=3))
    with TestClient(app) as http, ExitStack() as sockets:
        held = [
            sockets.enter_context(http.websocket_connect("/graphql", subprotocols=PROTOCOL))
            for _ in range(3)
        ]
        for ws in held:
            _opened(ws)
        with pytest.raises(WebSocketDenialResponse) as refused:
            sockets.enter_context(http.websocket_connect("/graphql", subprotocols=PROTOCOL))
        assert refused.value.status_code == 429
        assert refused.value.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        held[0].close()
        time.sleep(0.2)  # the server notices the close
        with http.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _opened(ws)

    app = create_app(seeded_db.settings(ws_max_connections=2))
    with TestClient(app) as http, ExitStack() as sockets:
        for _ in range(2):
            _opened(
                sockets.enter_context(http.websocket_connect("/graphql", subprotocols=PROTOCOL))
            )
        with pytest.raises(WebSocketDenialResponse) as refused:
            sockets.enter_context(http.websocket_connect("/graphql", subprotocols=PROTOCOL))
        assert refused.value.status_code == 503
        assert refused.value.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert http.get("/healthz").status_code == 200


# -- operations per socket -------------------------------------------------------------------


def test_one_socket_runs_at_most_so_many_operations(empty_db: ScratchDatabase) -> None:
    asyncio.run(make_admin(empty_db))
    app = create_app(empty_db.settings(ws_max_subscriptions=2, **QUEUED))
    with TestClient(app) as http:
        token, run_id = _admin_and_run(http)
        with http.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _opened(ws, token)
            for operation in ("a", "b"):
                message = _watch(ws, operation, run_id)
                assert message["type"] == "next" and message["id"] == operation, message
            third = _watch(ws, "c", run_id)
            assert (third["type"], third["id"]) == ("error", "c")
            assert _codes_of(third) == ["RATE_LIMITED"]
            assert third["payload"][0]["extensions"]["limit"] == 2
            ws.send_json({"id": "a", "type": "complete"})
            message = _watch(ws, "c", run_id)
            assert (message["type"], message["id"]) == ("next", "c"), message


# -- idle sockets ----------------------------------------------------------------------------


def _ping_until_closed(ws: Any, seconds: float) -> float:
    """Pings until the server closes the socket; how long that took (at most ``seconds``)."""
    started = time.monotonic()
    code = None
    while code is None and time.monotonic() - started < seconds:
        ws.send_json({"type": "ping"})
        try:
            assert ws.receive_json()["type"] == "pong"
        except WebSocketDisconnect as closed:
            code = closed.code
        time.sleep(0.2)
    assert code == 1000
    return time.monotonic() - started - 0.2


@pytest.mark.slow
def test_idle_sockets_are_closed_however_often_they_ping(empty_db: ScratchDatabase) -> None:
    asyncio.run(make_admin(empty_db))
    app = create_app(empty_db.settings(ws_idle_timeout_seconds=1, **QUEUED))
    with TestClient(app) as http:
        token, run_id = _admin_and_run(http)
        with http.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _opened(ws, token)
            assert 0.8 <= _ping_until_closed(ws, 30) < 30
        with http.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
            _opened(ws, token)
            assert _watch(ws, "1", run_id)["type"] == "next"
            for _ in range(10):  # 2 s with a subscription running: still open
                ws.send_json({"type": "ping"})
                assert ws.receive_json()["type"] == "pong"
                time.sleep(0.2)
            ws.send_json({"id": "1", "type": "complete"})
            assert _ping_until_closed(ws, 30) < 30


# -- per-user streams and exports, one process ----------------------------------------------


async def test_a_user_runs_at_most_so_many_streams_and_exports(empty_db: ScratchDatabase) -> None:
    await make_admin(empty_db)
    settings = empty_db.settings(max_streams_per_user=1, max_exports_per_user=1, **QUEUED)
    async with app_client(settings) as http:
        session = await http.post(
            "/graphql", json={"query": LOGIN, "variables": {"u": "root", "p": PASSWORD}}
        )
        user = session.json()["data"]["login"]
        token, user_id = user["accessToken"], await _user_id(settings)
        auth = {"Authorization": f"Bearer {token}"}
        slots: UserSlots = http._transport.app.state.user_slots  # type: ignore[attr-defined]
        async with slots.hold(Kind.STREAM, user_id):  # the user's one stream, elsewhere
            streamed = await http.post(
                "/graphql",
                json={"query": "subscription { trainingData { rowCount } }"},
                headers={**auth, "Accept": "text/event-stream"},
            )
            data = next(line for line in streamed.text.splitlines() if line.startswith("data:"))
            errors = orjson.loads(data.removeprefix("data:"))["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["RATE_LIMITED"]
            assert (await http.get("/export/training-data", headers=auth)).status_code == 200
        async with slots.hold(Kind.EXPORT, user_id):
            refused = await http.get("/export/training-data", headers=auth)
            assert refused.status_code == 429
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (await http.get("/export/training-data", headers=auth)).status_code == 200
        assert slots.local == {}  # every slot handed back


async def _user_id(settings: Any) -> int:
    engine = create_async_db_engine(settings)
    try:
        async with engine.connect() as conn:
            return int(
                (
                    await conn.execute(select(users.c.id).where(users.c.username == "root"))
                ).scalar_one()
            )
    finally:
        await engine.dispose()


async def test_slots_without_redis_are_counted_per_process() -> None:
    slots = UserSlots(None, {Kind.STREAM: 2, Kind.EXPORT: 1}, lease_seconds=30)
    async with slots.hold(Kind.STREAM, 7), slots.hold(Kind.STREAM, 7):
        with pytest.raises(RateLimited):
            async with slots.hold(Kind.STREAM, 7):
                pass
        async with slots.hold(Kind.STREAM, 8), slots.hold(Kind.EXPORT, 7):
            pass
    assert slots.local == {}


# -- real sockets ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    database = _new_database("sqlite", request, tmp_path, migrate=True)
    env = worker_env(
        database, ws_max_connections_per_address="3", ws_idle_timeout_seconds="1", auto_seed="false"
    )
    with running_server(env, tmp_path / "server.log") as server:
        yield server.url.replace("http://", "ws://") + "/graphql"


@contextmanager
def _socket(url: str, token: str | None = None) -> Iterator[ClientConnection]:
    with connect(url, subprotocols=SUBPROTOCOLS, open_timeout=10) as ws:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        ws.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
        assert orjson.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        yield ws


def _upgrade_refusal(url: str) -> InvalidStatus | None:
    try:
        with connect(url, subprotocols=SUBPROTOCOLS, open_timeout=10):
            return None
    except InvalidStatus as refused:
        return refused


@pytest.mark.slow
def test_real_sockets_are_refused_at_the_upgrade_and_closed_when_idle(sqlite_server: str) -> None:
    with ExitStack() as held:
        for _ in range(3):
            held.enter_context(_socket(sqlite_server))
        refused = _upgrade_refusal(sqlite_server)
        assert refused is not None
        assert refused.response.status_code == 429
        body = orjson.loads(refused.response.body or b"{}")
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    with _socket(sqlite_server) as ws:  # the three are closed: room again
        started = time.monotonic()
        closed: ConnectionClosed | None = None
        while closed is None and time.monotonic() - started < 30:
            try:
                ws.send(orjson.dumps({"type": "ping"}).decode())
                assert orjson.loads(ws.recv(timeout=10))["type"] == "pong"
            except ConnectionClosed as raised:
                closed = raised
            time.sleep(0.2)
        assert closed is not None and closed.rcvd is not None and closed.rcvd.code == 1000
        assert 0.8 <= time.monotonic() - started < 30


# -- several workers: PostgreSQL + Redis -----------------------------------------------------


@pytest.fixture
def two_workers(
    postgres: PostgresDatabases, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    env = server_env(
        tmp_path,
        database_url=postgres.create(),
        redis_url=redis_url,
        run_jobs_in_server="false",
        crawl_allowed_hosts="127.0.0.1",
        max_streams_per_user=2,
        max_exports_per_user=1,
        stream_slot_lease_seconds=3,
    )
    asyncio.run(_forget_slots(redis_url))
    bookql(env, "db", "upgrade")
    bookql(env, "seed")
    bookql(env, "users", "create", "admin", "--admin", stdin=PASSWORD + "\n")
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        yield server.url, env
    asyncio.run(_forget_slots(redis_url))


async def _forget_slots(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter("bookql:slots:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.mark.slow
def test_the_per_user_caps_hold_across_workers(two_workers: tuple[str, dict[str, str]]) -> None:
    url, env = two_workers
    token = post_graphql(url, LOGIN, u="admin", p=PASSWORD)["data"]["login"]["accessToken"]
    run_id = post_graphql(url, START, token, url="http://127.0.0.1:9/")["data"]["startCrawl"]["id"]
    ws_url = url.replace("http://", "ws://") + "/graphql"
    subscribe = {"query": PROGRESS, "variables": {"id": run_id}}

    def watch(ws: ClientConnection) -> dict[str, Any]:
        ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": subscribe}).decode())
        message: dict[str, Any] = orjson.loads(ws.recv(timeout=30))
        return message

    with ExitStack() as held:
        # One socket each: sockets land on either worker, and the user's count is shared.
        outcomes = []
        for _ in range(5):
            message = watch(held.enter_context(_socket(ws_url, token)))
            outcomes.append(
                "running"
                if message["type"] == "next" and "errors" not in message["payload"]
                else _codes_of(message)[0]
            )
        assert outcomes == ["running", "running", "RATE_LIMITED", "RATE_LIMITED", "RATE_LIMITED"]
    time.sleep(0.5)  # the closed sockets' slots are handed back
    with _socket(ws_url, token) as ws:
        assert watch(ws)["type"] == "next"

    # Exports: one slot, here held by a third process as another worker would hold it.
    auth = {"Authorization": f"Bearer {token}"}

    async def while_held() -> list[int]:
        redis = Redis.from_url(env["BOOKQL_REDIS_URL"])
        slots = UserSlots(redis, {Kind.STREAM: 2, Kind.EXPORT: 1}, lease_seconds=3)
        try:
            async with slots.hold(Kind.EXPORT, 1):  # the admin is the first user
                statuses = []
                for _ in range(6):
                    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                        response = await http.get("/export/training-data", headers=auth)
                        statuses.append(response.status_code)
                        if response.status_code == 429:
                            assert (
                                response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
                            )
                return statuses
        finally:
            await redis.aclose()

    assert asyncio.run(while_held()) == [429] * 6
    for _ in range(4):
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.get("/export/training-data", headers=auth).status_code == 200


HOLDER = """
import asyncio, sys
from redis.asyncio import Redis
from bookql.graphql.slots import Kind, UserSlots

async def main():
    slots = UserSlots(Redis.from_url(sys.argv[1]), {Kind.STREAM: 1, Kind.EXPORT: 1}, 2)
    async with slots.hold(Kind.EXPORT, int(sys.argv[2])):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_killed_workers_slots_lapse_and_a_living_ones_do_not(redis_url: str) -> None:
    user = uuid.uuid4().int % 10**9
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, redis_url, str(user), stdout=asyncio.subprocess.PIPE
    )
    redis = Redis.from_url(redis_url)
    slots = UserSlots(redis, {Kind.STREAM: 1, Kind.EXPORT: 1}, lease_seconds=2)

    async def refused() -> bool:
        try:
            async with slots.hold(Kind.EXPORT, user):
                return False
        except RateLimited:
            return True

    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        assert await refused()
        await asyncio.sleep(4)  # twice the lease: renewed, still held
        assert await refused()
        holder.kill()  # no release: only the lease can free the slot
        await holder.wait()
        assert await refused()
        started = time.monotonic()
        while await refused():
            assert time.monotonic() - started < 10, "the slot never lapsed"
            await asyncio.sleep(0.2)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await redis.delete(f"bookql:slots:export:{user}")
        await redis.aclose()
