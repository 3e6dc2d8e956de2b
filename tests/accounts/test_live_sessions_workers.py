"""``bookql serve --workers 2``: a change made through one worker reaches sockets held by the
other within a second: through Redis pub/sub, through PostgreSQL's LISTEN/NOTIFY without
Redis, and (SQLite without Redis) through each worker's once-a-second re-read.

Which worker holds a socket is read from ``/proc``, so each run proves that both do.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.accounts.test_accounts import LOGIN, PASSWORD, REGISTER, SECRET
from tests.conftest import PostgresDatabases
from tests.support.live import LiveServer, bookql, post_graphql, running_server, server_env
from tests.support.sessions import ME, USERS, codes

pytestmark = pytest.mark.slow  # bookql serve --workers 2

PROTOCOL = [Subprotocol("graphql-transport-ws")]
SET_ROLE = """mutation($id: ID!, $r: Role!) {
    setUserRole(input: {userId: $id, role: $r}) { user { role } } }"""
SET_ACTIVE = """mutation($id: ID!, $a: Boolean!) {
    setUserActive(input: {userId: $id, active: $a}) { user { active } } }"""
MAX_SOCKETS = 24


@pytest.fixture(params=["postgresql+redis", "postgresql", "sqlite"])
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    env = server_env(tmp_path, jwt_secret=SECRET, auto_seed="false")
    if request.param.startswith("postgresql"):
        postgres: PostgresDatabases = request.getfixturevalue("postgres")
        env["BOOKQL_DATABASE_URL"] = postgres.create()
        env["BOOKQL_RUN_JOBS_IN_SERVER"] = "false"
    if request.param.endswith("redis"):
        env["BOOKQL_REDIS_URL"] = request.getfixturevalue("redis_url")
    bookql(env, "db", "upgrade")
    bookql(env, "users", "create", "boss", "--admin", stdin=PASSWORD + "\n")
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        yield server, request.param


def _open(url: str, token: str, stack: ExitStack) -> ClientConnection:
    ws = stack.enter_context(connect(url.replace("http", "ws") + "/graphql", subprotocols=PROTOCOL))
    ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
    return ws


def _run(ws: ClientConnection, query: str) -> dict[str, Any]:
    ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    message = json.loads(ws.recv(timeout=10))
    if message["type"] == "error":
        return {"errors": message["payload"]}
    assert json.loads(ws.recv(timeout=10))["type"] == "complete"
    payload: dict[str, Any] = message["payload"]
    return payload


def _holders(server: LiveServer, sockets: list[ClientConnection]) -> dict[int, int]:
    """How many of ``sockets`` each worker process holds (from /proc)."""
    ports = {ws.socket.getsockname()[1] for ws in sockets}
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    held: dict[int, int] = {}
    for worker in map(int, children.read_text().split()):
        inodes = set()
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[9] in inodes and remote_port in ports:
                    count += 1
        held[worker] = count
    return held


def _sockets_on_both_workers(
    server: LiveServer, token: str, stack: ExitStack
) -> list[ClientConnection]:
    sockets: list[ClientConnection] = []
    while len(sockets) < MAX_SOCKETS:
        sockets.append(_open(server.url, token, stack))
        if len(sockets) >= 4 and sum(1 for n in _holders(server, sockets).values() if n) >= 2:
            return sockets
    pytest.fail(f"{MAX_SOCKETS} sockets all landed on one worker: {_holders(server, sockets)}")


def test_a_change_through_one_worker_reaches_sockets_on_the_other(
    two_workers: tuple[LiveServer, str],
) -> None:
    server, transport = two_workers
    # notices arrive at once; the SQLite poll re-reads once a second
    allowed = 1.0 if transport.startswith("postgresql") else 2.0
    boss = post_graphql(server.url, LOGIN, u="boss", p=PASSWORD)["data"]["login"]["accessToken"]
    user = post_graphql(server.url, REGISTER, u="roaming", p=PASSWORD)["data"]["register"]
    user_id = user["user"]["id"]
    assert "errors" not in post_graphql(server.url, SET_ROLE, boss, id=user_id, r="ADMIN")
    with ExitStack() as stack:
        sockets = _sockets_on_both_workers(server, user["accessToken"], stack)
        assert all("errors" not in _run(ws, USERS) for ws in sockets)

        assert "errors" not in post_graphql(server.url, SET_ROLE, boss, id=user_id, r="USER")
        time.sleep(allowed)
        for ws in sockets:
            assert codes(_run(ws, USERS)) == ["FORBIDDEN"]
            assert _run(ws, ME)["data"]["me"]["role"] == "USER"

        assert "errors" not in post_graphql(server.url, SET_ACTIVE, boss, id=user_id, a=False)
        changed = time.monotonic()
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=max(0.01, changed + allowed - time.monotonic()))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        assert time.monotonic() - changed < allowed
