"""An in-process site with an administrator who changes users while they hold sockets.

Sockets speak graphql-transport-ws through Starlette's test client; a closed socket shows as
``WebSocketDisconnect`` with its close code.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bookql.core.errors import Conflict
from bookql.ml.dataset import TrainingData
from bookql.server.app import create_app
from tests.accounts.test_accounts import LOGIN, PASSWORD, REFRESH, REGISTER, SECRET, make_admin
from tests.conftest import ScratchDatabase

WS = ["graphql-transport-ws"]
ME = "{ me { username role } }"
USERS = "{ users(first: 1) { totalCount } }"
SET_ROLE = """mutation($id: ID!, $r: Role!) {
    setUserRole(input: {userId: $id, role: $r}) { user { role } } }"""
SET_ACTIVE = """mutation($id: ID!, $a: Boolean!) {
    setUserActive(input: {userId: $id, active: $a}) { user { active } } }"""
LOGOUT = "mutation($t: String!) { logout(input: {refreshToken: $t}) { ok } }"
CHANGE_PASSWORD = """mutation($c: String!, $n: String!) {
    changePassword(input: {currentPassword: $c, newPassword: $n}) { auth { accessToken } } }"""
TRAINING_DATA = "subscription { trainingData(batchSize: 5) { rowCount cursor } }"


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


class Site:
    """The app in-process, with the administrator ``boss`` signed in."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.boss = self.login("boss")["accessToken"]

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = self.gql(query, variables, **kw)
        assert "errors" not in body, body
        return body["data"]

    def register(self, username: str) -> dict[str, Any]:
        return self.data(REGISTER, {"u": username, "p": PASSWORD})["register"]  # type: ignore[no-any-return]

    def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        return self.data(LOGIN, {"u": username, "p": password})["login"]  # type: ignore[no-any-return]

    def refresh(self, token: str) -> dict[str, Any]:
        return self.gql(REFRESH, {"t": token})

    def set_role(self, user_id: str, role: str) -> None:
        self.data(SET_ROLE, {"id": user_id, "r": role}, token=self.boss)

    def set_active(self, user_id: str, active: bool) -> None:
        self.data(SET_ACTIVE, {"id": user_id, "a": active}, token=self.boss)

    def logout(self, refresh_token: str) -> None:
        self.data(LOGOUT, {"t": refresh_token})

    def change_password(self, token: str, current: str, new: str) -> str:
        done = self.data(CHANGE_PASSWORD, {"c": current, "n": new}, token=token)
        return done["changePassword"]["auth"]["accessToken"]  # type: ignore[no-any-return]

    @contextmanager
    def socket(
        self,
        token: str | None = None,
        *,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[Any]:
        """An acknowledged socket, signed in with ``token`` (or as ``payload`` says)."""
        if payload is None:
            payload = {"Authorization": f"Bearer {token}"} if token else {}
        with self.http.websocket_connect(
            "/graphql", subprotocols=WS, headers=dict(headers or {})
        ) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            assert ws.receive_json() == {"type": "connection_ack"}
            yield ws


@contextmanager
def site(database: ScratchDatabase, **settings: Any) -> Iterator[Site]:
    with suppress(Conflict):  # the seeded database is shared: made once
        asyncio.run(make_admin(database, "boss"))
    app = create_app(database.settings(jwt_secret=SECRET, **settings))
    with TestClient(app) as http:
        yield Site(http)


def run(ws: Any, query: str, variables: dict[str, Any] | None = None, op: str = "q") -> Any:
    """One query or mutation over a socket: its result (``{data, errors}``)."""
    ws.send_json(
        {"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
    )
    message = ws.receive_json()
    if message["type"] == "error":
        return {"errors": message["payload"]}
    assert message == {"id": op, "type": "next", "payload": message["payload"]}
    assert ws.receive_json() == {"id": op, "type": "complete"}
    return message["payload"]


def close_code(ws: Any, timeout: float = 10.0) -> int:
    """Read until the server closes the socket; its close code (failing, not hanging, when
    the server keeps it open)."""
    closed: list[int] = []

    def read() -> None:
        try:
            for _ in range(10_000):
                ws.receive_json()
        except WebSocketDisconnect as disconnect:
            closed.append(disconnect.code)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert closed, "the socket stayed open"
    return closed[0]


class Gate:
    """Holds every training-data stream after its first batch, as a slow batch would."""

    def __init__(self) -> None:
        self.first_sent = threading.Event()
        self.closed = threading.Event()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    held = Gate()
    original = TrainingData.stream

    async def stream(self: TrainingData, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        chunks = original(self, *args, **kwargs)
        try:
            async for chunk in chunks:
                yield chunk
                held.first_sent.set()
                await asyncio.Event().wait()  # mid-batch, until cancelled
        finally:
            held.closed.set()
            await chunks.aclose()

    monkeypatch.setattr(TrainingData, "stream", stream)
    return held
