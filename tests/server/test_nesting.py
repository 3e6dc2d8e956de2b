"""Deeply nested JSON is refused with a code on every way in, never an internal error.

Variables nested hundreds of levels deep used to reach recursive code (our walks,
graphql-core's coercion, orjson's encoder) and end in HTTP 500. Each way a request's JSON
arrives is tried at depths around the limit (``BOOKQL_MAX_JSON_DEPTH``, 32 by default), past
Python's recursion limit, and past orjson's own limit of 1,024 levels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bookql.server.app import create_app
from tests.conftest import ScratchDatabase, error_codes

LIMIT = 32
COMPILED = "query($o: [BookOrder!]) { books(first: 2, orderBy: $o) { totalCount } }"
EXECUTED = (
    "query($f: BookFilter) { __typename stats { totalBooks } books(filter: $f) { totalCount } }"
)
STREAM = "subscription($a: String) { trainingData(after: $a) { rowCount } }"
DEPTHS = [LIMIT + 1, 400, 1_000, 1_025, 5_000]


def nested(depth: int, *, objects: bool = False) -> str:
    """A value nested ``depth`` levels deep, as JSON text (built without recursion)."""
    if objects:
        return '{"field":' * depth + '"PRICE"' + "}" * depth
    return "[" * depth + '"PRICE"' + "]" * depth


def body(query: str, variable: str, value: str) -> str:
    return f'{{"query": {orjson.dumps(query).decode()}, "variables": {{"{variable}": {value}}}}}'


@pytest.fixture
def http(seeded_db: ScratchDatabase) -> Iterator[TestClient]:
    with TestClient(create_app(seeded_db.settings())) as client:
        yield client


def refused(response: Any) -> list[str]:
    """The error codes of a JSON answer, or of the first event of a server-sent stream."""
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    if response.headers["content-type"].startswith("text/event-stream"):
        data = next(line for line in response.text.splitlines() if line.startswith("data: "))
        return error_codes(orjson.loads(data.removeprefix("data: ")))
    return error_codes(response.json())


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("objects", [False, True], ids=["lists", "objects"])
def test_nested_variables_are_refused_on_every_http_path(
    http: TestClient, depth: int, objects: bool
) -> None:
    value = nested(depth, objects=objects)
    json = {"content-type": "application/json"}
    for query, variable in ((COMPILED, "o"), (EXECUTED, "f")):
        posted = http.post("/graphql", content=body(query, variable, value), headers=json)
        assert refused(posted) == ["BAD_USER_INPUT"], (query, posted.text[:300])
        if len(value) < 30_000:  # the client's longest URL
            params = {"query": query, "variables": f'{{"{variable}": {value}}}'}
            got = http.get("/graphql", params=params)
            assert refused(got) == ["BAD_USER_INPUT"], (query, got.text[:300])
    batch = "[" + body(EXECUTED, "f", value) + "]"
    assert refused(http.post("/graphql", content=batch, headers=json)) == ["BAD_USER_INPUT"]
    # Outside the variables the body may hold the envelope's 3 levels more.
    unused = f'{{"query": "{{ __typename }}", "extensions": {nested(depth + 3, objects=objects)}}}'
    assert refused(http.post("/graphql", content=unused, headers=json)) == ["BAD_USER_INPUT"]
    sse = {**json, "accept": "text/event-stream"}
    streamed = http.post("/graphql", content=body(STREAM, "a", value), headers=sse)
    assert refused(streamed) == ["BAD_USER_INPUT"], streamed.text[:300]
    assert http.post("/graphql", json={"query": "{ stats { totalBooks } }"}).json() == {
        "data": {"stats": {"totalBooks": 1000}}
    }


def test_the_limit_is_exact_and_configurable(seeded_db: ScratchDatabase) -> None:
    json = {"content-type": "application/json"}
    with TestClient(create_app(seeded_db.settings())) as http:
        at_limit = http.post("/graphql", content=body(COMPILED, "o", nested(LIMIT)), headers=json)
        assert "nest" not in at_limit.text  # refused for its shape, not its depth
        over = http.post("/graphql", content=body(COMPILED, "o", nested(LIMIT + 1)), headers=json)
        assert refused(over) == ["BAD_USER_INPUT"]
        assert "nest" in over.json()["errors"][0]["message"]
    with TestClient(create_app(seeded_db.settings(max_json_depth=4))) as http:
        over = http.post("/graphql", content=body(COMPILED, "o", nested(5)), headers=json)
        assert refused(over) == ["BAD_USER_INPUT"]
        assert over.json()["errors"][0]["extensions"].get("limit", 4) == 4
        fine = '[{"field": "PRICE", "direction": "ASC"}]'
        answer = http.post("/graphql", content=body(COMPILED, "o", fine), headers=json)
        assert answer.json() == {"data": {"books": {"totalCount": 1000}}}


@pytest.mark.parametrize("depth", [LIMIT + 1, 400, 1_000])
def test_nested_subscribe_payloads_get_a_coded_error_over_websocket(
    http: TestClient, depth: int
) -> None:
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        payload = body(EXECUTED, "f", nested(depth))
        frame = f'{{"id": "deep", "type": "subscribe", "payload": {payload}}}'
        ws.send_text(frame)
        message = ws.receive_json()
        assert message["type"] == "error" and message["id"] == "deep", message
        assert [e["extensions"]["code"] for e in message["payload"]] == ["BAD_USER_INPUT"]
        ws.send_json(
            {"id": "fine", "type": "subscribe", "payload": {"query": "{ stats { totalBooks } }"}}
        )
        assert ws.receive_json()["payload"] == {"data": {"stats": {"totalBooks": 1000}}}


def test_json_deeper_than_the_decoder_allows_closes_the_socket(http: TestClient) -> None:
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_text(f'{{"id": "1", "type": "subscribe", "payload": {nested(5_000)}}}')
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4400  # graphql-transport-ws: an unreadable message
    assert http.get("/healthz").status_code == 200


def test_variable_refusals_reach_server_sent_event_clients(http: TestClient) -> None:
    """Refusals of the variables come when execution starts: a stream carries them coded
    (raised any earlier, they ended a server-sent stream empty)."""
    sse = {"content-type": "application/json", "accept": "text/event-stream"}
    for value in ('"x\\u0000"', nested(LIMIT + 1)):
        streamed = http.post("/graphql", content=body(STREAM, "a", value), headers=sse)
        assert refused(streamed) == ["BAD_USER_INPUT"], streamed.text[:300]
