"""Fuzzing nested variables: random depths and shapes of lists and objects, in variables of
list and input-object types, sent over POST (compiled and executed paths), GET, server-sent
events and WebSocket. Every answer is either data or errors coded from the contract, never
``INTERNAL_SERVER_ERROR`` or a 500, and anything nested past ``BOOKQL_MAX_JSON_DEPTH`` is
``BAD_USER_INPUT``.

The normal suite sends a reproducible sample of 120 requests per database;
``BOOKQL_TEST_FUZZ_EXAMPLES`` runs a longer, random one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bookql.core.errors import ErrorCode
from bookql.server.app import create_app
from tests.conftest import ScratchDatabase, error_codes

DEFAULT_EXAMPLES = 120
EXAMPLES = int(os.environ.get("BOOKQL_TEST_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
LIMIT = 32
CONTRACT_CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL_SERVER_ERROR.value}
# Operations with variables of list and input-object types, on both execution paths.
OPERATIONS = {
    "o": "query($o: [BookOrder!]) { books(first: 2, orderBy: $o) { totalCount } }",
    "f": "query($f: BookFilter) { __typename books(first: 1, filter: $f) { totalCount } }",
    "in": "mutation($in: PredictPricesInput!) { predictPrices(input: $in) { __typename } }",
    "ids": "query($ids: [ID!]) { stats { totalBooks } }",
}
STREAM = "subscription($a: String) { trainingData(after: $a) { rowCount } }"
KEYS = ["field", "direction", "category", "priceMin", "items", "upc", "features", "x"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from(["PRICE", "ASC", "DESC", "travel", "", "x" * 50]),
)


@dataclass(frozen=True)
class Level:
    """One level of nesting: a list or an object, with scalar siblings around the inner value."""

    is_object: bool
    key: str
    before: list[Any]
    after: list[Any]

    def wrap(self, inner: str) -> str:
        if self.is_object:
            siblings = "".join(
                f'"{KEYS[i % len(KEYS)]}{i}": {orjson.dumps(v).decode()}, '
                for i, v in enumerate(self.before)
            )
            return f"{{{siblings}{orjson.dumps(self.key).decode()}: {inner}}}"
        head = "".join(f"{orjson.dumps(v).decode()}, " for v in self.before)
        tail = "".join(f", {orjson.dumps(v).decode()}" for v in self.after)
        return f"[{head}{inner}{tail}]"


LEVEL = st.builds(
    Level,
    is_object=st.booleans(),
    key=st.sampled_from(KEYS),
    before=st.lists(SCALARS, max_size=2),
    after=st.lists(SCALARS, max_size=2),
)


@st.composite
def nested_values(draw: st.DrawFn) -> tuple[str, int]:
    """JSON text of a value, built without recursion, and its depth."""
    depth = draw(
        st.one_of(
            st.integers(0, 6),
            st.integers(LIMIT - 2, LIMIT + 4),
            st.integers(300, 1_100),
        )
    )
    # A few distinct levels repeated: deep values stay cheap to draw.
    pattern = draw(st.lists(LEVEL, min_size=1, max_size=4))
    text = orjson.dumps(draw(SCALARS)).decode()
    for index in range(depth):
        text = pattern[index % len(pattern)].wrap(text)
    return text, depth


@pytest.fixture
def http(seeded_db: ScratchDatabase) -> Iterator[TestClient]:
    with TestClient(create_app(seeded_db.settings())) as client:
        yield client


def answered(body: dict[str, Any], depth: int) -> None:
    codes = error_codes(body)
    assert set(codes) <= CONTRACT_CODES, body
    assert codes or body.get("data") is not None, body
    if depth > LIMIT:
        assert codes == [ErrorCode.BAD_USER_INPUT.value], body


def over_http(http: TestClient, how: str, variable: str, value: str) -> dict[str, Any]:
    query = OPERATIONS[variable] if how != "sse" else STREAM
    name = variable if how != "sse" else "a"
    variables = f'{{"{name}": {value}}}'
    if how == "get":
        response = http.get("/graphql", params={"query": query, "variables": variables})
        if variable == "in":  # a mutation: not over GET, whatever its variables
            assert response.status_code == 405
            return {"data": {}}
    else:
        headers = {"content-type": "application/json"}
        if how == "sse":
            headers["accept"] = "text/event-stream"
        content = f'{{"query": {orjson.dumps(query).decode()}, "variables": {variables}}}'
        response = http.post("/graphql", content=content, headers=headers)
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    if response.headers["content-type"].startswith("text/event-stream"):
        data = next(line for line in response.text.splitlines() if line.startswith("data: "))
        return orjson.loads(data.removeprefix("data: "))  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


def over_websocket(http: TestClient, variable: str, value: str) -> dict[str, Any] | None:
    """The operation's result, or None when the socket was closed for an unreadable message."""
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        query = orjson.dumps(OPERATIONS[variable]).decode()
        ws.send_text(
            f'{{"id": "1", "type": "subscribe", "payload": {{"query": {query}, '
            f'"variables": {{"{variable}": {value}}}}}}}'
        )
        code: int | None = None
        try:
            message = ws.receive_json()
        except WebSocketDisconnect as closed:
            code = closed.code
        if code is not None:
            assert code == 4400  # deeper than any decoder reads: an unreadable message
            return None
        assert message["type"] in ("next", "error"), message
        if message["type"] == "error":
            return {"data": None, "errors": message["payload"]}
        return message["payload"]  # type: ignore[no-any-return]


def test_nested_variables_get_an_answer_or_a_coded_error(http: TestClient) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=EXAMPLES <= DEFAULT_EXAMPLES,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        value=nested_values(),
        variable=st.sampled_from(sorted(OPERATIONS)),
        how=st.sampled_from(["post", "get", "sse", "websocket"]),
    )
    def check(value: tuple[str, int], variable: str, how: str) -> None:
        text, depth = value
        if how == "get" and len(text) > 30_000:
            how = "post"  # longer than the client's URLs
        if how == "websocket":
            body = over_websocket(http, variable, text)
            if body is None:
                assert depth + 3 > 1_024  # only what orjson cannot read closes the socket
                return
        else:
            body = over_http(http, how, variable, text)
        answered(body, depth)

    check()
    assert http.post("/graphql", json={"query": "{ stats { totalBooks } }"}).json() == {
        "data": {"stats": {"totalBooks": 1000}}
    }
