"""CORS over the ASGI app: preflights, the headers on answers and refusals, the defaults per
environment, the setting's validation, and the same origins on WebSocket upgrades."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import ValidationError
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from bookql.core.config import Settings
from bookql.server.app import create_app
from bookql.server.cors import CrossOrigin
from tests.conftest import ScratchDatabase, app_client
from tests.ml.test_training_data import register_async

APP = "https://app.example.com"
STRONG = "s" * 40
QUERY = {"query": "{ books(first: 1) { totalCount } }"}


def vary(response: httpx.Response) -> list[str]:
    return [token.strip().lower() for token in response.headers.get("vary", "").split(",")]


def assert_readable_by(response: httpx.Response, origin: str) -> None:
    """What a browser needs to hand the answer to a script on ``origin``."""
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-expose-headers"].lower() == "x-request-id"
    assert "access-control-allow-credentials" not in response.headers
    assert vary(response).count("origin") == 1


@pytest.fixture
async def http(seeded_db: ScratchDatabase) -> AsyncIterator[httpx.AsyncClient]:
    settings = seeded_db.settings(
        cors_origins=f"{APP},http://localhost:5173", max_request_bytes=10_000
    )
    async with app_client(settings) as client:
        yield client


def preflight(origin: str, method: str = "POST", headers: str | None = None) -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    return asked | ({"Access-Control-Request-Headers": headers} if headers else {})


async def test_preflight_of_an_allowed_origin(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/graphql", headers=preflight(APP, headers="authorization,content-type,x-request-id")
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    methods = response.headers["access-control-allow-methods"].replace(" ", "").split(",")
    assert {"GET", "POST"} <= set(methods)
    allowed = response.headers["access-control-allow-headers"].lower().replace(" ", "")
    assert {"authorization", "content-type", "x-request-id"} <= set(allowed.split(","))
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert vary(response).count("origin") == 1


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("https://evil.example.com", "POST", "content-type"),
        ("http://localhost:3000", "POST", "content-type"),  # the list replaces the default
        ("null", "POST", "content-type"),
        (APP, "PUT", "content-type"),
        (APP, "POST", "content-type,cookie-monster"),
    ],
)
async def test_preflight_refusals(
    http: httpx.AsyncClient, origin: str, method: str, headers: str
) -> None:
    response = await http.options("/graphql", headers=preflight(origin, method, headers))
    assert response.status_code == 400
    if origin != APP:
        assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


async def test_answers_and_refusals_are_readable_by_an_allowed_origin(
    http: httpx.AsyncClient,
) -> None:
    origin = {"Origin": APP}
    signed = {"Authorization": f"Bearer {await register_async(http)}", **origin}
    declared = orjson.dumps({**QUERY, "variables": {"pad": "x" * 20_000}})

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(declared), 1000):
            yield declared[start : start + 1000]

    graphql_response = {"Accept": "application/graphql-response+json", **origin}
    answers = {
        200: await http.post("/graphql", json=QUERY, headers=origin),
        400: await http.post("/graphql", json={"query": "{ books("}, headers=graphql_response),
        405: await http.put("/graphql", json=QUERY, headers=origin),
        413: await http.post(
            "/graphql", content=declared, headers={"content-type": "application/json", **origin}
        ),
        431: await http.get("/healthz", headers={"X-Padding": "x" * 20_000, **origin}),
    }
    mutation_over_get = await http.get(
        "/graphql",
        params={"query": 'mutation { logout(input: {refreshToken: "x"}) { ok } }'},
        headers=origin,
    )
    streamed_413 = await http.post(
        "/graphql", content=chunked(), headers={"content-type": "application/json", **origin}
    )
    export = await http.get("/export/training-data?format=csv", headers=signed)
    export_refusals = {
        401: await http.get("/export/training-data", headers=origin),
        400: await http.get("/export/training-data?format=xml", headers=signed),
        405: await http.post("/export/training-data", headers=signed),
    }
    for status, response in answers.items():
        assert response.status_code == status
        assert_readable_by(response, APP)
    for response in (mutation_over_get, streamed_413):
        assert response.status_code in (405, 413)
        assert_readable_by(response, APP)
    assert mutation_over_get.headers["allow"] == "POST"
    assert export.status_code == 200 and export.text.startswith("upc,")
    assert_readable_by(export, APP)
    for status, response in export_refusals.items():
        assert response.status_code == status
        assert_readable_by(response, APP)
    assert answers[200].json()["data"]["books"]["totalCount"] == 1000
    assert answers[431].json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_other_origins_get_no_cors_headers_and_vary_is_always_set(
    http: httpx.AsyncClient,
) -> None:
    foreign = await http.post("/graphql", json=QUERY, headers={"Origin": "https://evil.example"})
    without_origin = await http.post("/graphql", json=QUERY)
    for response in (foreign, without_origin):
        assert response.status_code == 200  # CORS is the browser's to enforce
        assert "access-control-allow-origin" not in response.headers
        # A cache must not serve this answer to a request from an allowed origin.
        assert vary(response).count("origin") == 1
    assert "access-control-expose-headers" not in without_origin.headers


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://localhost", True),
        ("https://localhost:8443", True),
        ("http://127.0.0.1:3000", True),
        ("http://localhost.evil.example", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://evil.example", False),
        ("http://localhost:5173/", False),
        ("null", False),
    ],
)
async def test_development_default_is_any_local_port(
    seeded_db: ScratchDatabase, origin: str, allowed: bool
) -> None:
    async with app_client(seeded_db.settings()) as client:
        asked = await client.options("/graphql", headers=preflight(origin, headers="content-type"))
        answer = await client.post("/graphql", json=QUERY, headers={"Origin": origin})
    assert asked.status_code == (200 if allowed else 400)
    assert (answer.headers.get("access-control-allow-origin") == origin) is allowed


async def test_production_default_allows_no_origin(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(env="production", jwt_secret=STRONG)
    async with app_client(settings) as client:
        for origin in ("http://localhost:5173", "http://127.0.0.1:3000", APP):
            asked = await client.options("/graphql", headers=preflight(origin))
            answer = await client.post("/graphql", json=QUERY, headers={"Origin": origin})
            assert asked.status_code == 400
            for response in (asked, answer):
                assert "access-control-allow-origin" not in response.headers
    listed = seeded_db.settings(env="production", jwt_secret=STRONG, cors_origins=APP)
    async with app_client(listed) as client:
        assert (await client.options("/graphql", headers=preflight(APP))).status_code == 200


async def test_preflight_cache_is_a_setting(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(cors_origins=APP, cors_max_age_seconds=7200)
    async with app_client(settings) as client:
        response = await client.options("/graphql", headers=preflight(APP))
    assert response.headers["access-control-max-age"] == "7200"


def test_origins_are_written_as_browsers_send_them() -> None:
    settings = Settings(
        cors_origins=" HTTPS://App.Example.com:443 ,http://[::1]:8080,http://x.test:80,"
        "https://app.example.com,,http://localhost:5173"
    )
    assert settings.cors_origins == [
        "https://app.example.com",
        "http://[::1]:8080",
        "http://x.test",
        "http://localhost:5173",
    ]
    assert Settings(cors_origins="").cors_origins == []
    assert Settings().cors_origins is None  # the default of the environment


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://app.example.com/",
        "https://app.example.com/spa",
        "https://app.example.com?x=1",
        "app.example.com",
        "ftp://app.example.com",
        "https://*.example.com",
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "null",
        "https://app.example.com,*",
    ],
)
def test_a_bad_origin_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(cors_origins=value)


@pytest.mark.parametrize("value", [-1, 86_401])
def test_max_age_is_bounded(value: int) -> None:
    with pytest.raises(ValidationError, match="cors_max_age_seconds"):
        Settings(cors_max_age_seconds=value)


@pytest.mark.slow
def test_a_bad_setting_stops_the_server_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKQL_DATA_DIR": str(tmp_path), "BOOKQL_CORS_ORIGINS": "*"}
    done = subprocess.run(
        [sys.executable, "-m", "bookql", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "BOOKQL_CORS_ORIGINS" in done.stderr
    assert not (tmp_path / "bookql.db").exists()  # refused before anything was opened


def test_websocket_upgrades_check_the_same_origins(seeded_db: ScratchDatabase) -> None:
    app = create_app(seeded_db.settings(cors_origins=APP))
    with TestClient(app) as client:
        for headers, allowed in (
            ({}, True),  # not a browser
            ({"Origin": APP}, True),
            ({"Origin": "http://testserver"}, True),  # same origin: GraphiQL, the console
            ({"Origin": "https://testserver"}, True),  # behind a TLS-terminating proxy
            ({"Origin": "https://evil.example"}, False),
            ({"Origin": "null"}, False),
            ({"Origin": "http://localhost:5173"}, False),  # the list replaces the default
        ):
            connect = client.websocket_connect(
                "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
            )
            if allowed:
                with connect as ws:
                    ws.send_json({"type": "connection_init", "payload": {}})
                    assert ws.receive_json() == {"type": "connection_ack"}
            else:
                with pytest.raises(WebSocketDisconnect) as refused, connect:
                    pass
                assert refused.value.code == 1008


def test_websocket_development_default_is_any_local_port(seeded_db: ScratchDatabase) -> None:
    with TestClient(create_app(seeded_db.settings())) as client:
        for origin in ("http://localhost:5173", "https://127.0.0.1:8443"):
            with client.websocket_connect(
                "/graphql", subprotocols=["graphql-transport-ws"], headers={"Origin": origin}
            ) as ws:
                ws.send_json({"type": "connection_init", "payload": {}})
                assert ws.receive_json() == {"type": "connection_ack"}
        with (
            pytest.raises(WebSocketDisconnect),
            client.websocket_connect("/graphql", headers={"Origin": "http://evil.example"}),
        ):
            pass


async def test_vary_names_origin_once_beside_what_the_app_varies_on() -> None:
    async def varying(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok", headers={"Vary": "Accept, origin, Authorization"})(
            scope, receive, send
        )

    wrapped = CrossOrigin(varying, Settings(cors_origins=APP))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped), base_url="http://testserver"
    ) as client:
        for headers in ({}, {"Origin": APP}, {"Origin": "https://evil.example"}):
            response = await client.get("/", headers=headers)
            assert vary(response) == ["accept", "origin", "authorization"]
