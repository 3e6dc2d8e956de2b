"""The HTTP surface around GraphQL: probes, request ids, error codes and masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from bookql.catalog import queries
from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_check(
    http: httpx.AsyncClient, seeded_db: ScratchDatabase
) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"  # no model yet: only predictions fail
    assert body["checks"]["model"]["status"] == "degraded"
    assert body["checks"]["database"] == {"status": "ok", "dialect": seeded_db.backend}
    assert body["checks"]["migrations"]["status"] == "ok"
    assert "redis" not in body["checks"]


async def _readyz(settings_db: ScratchDatabase, **overrides: object) -> httpx.Response:
    async with app_client(settings_db.settings(**overrides)) as client:
        return await client.get("/readyz")


async def test_readyz_fails_on_an_unmigrated_database(blank_db: ScratchDatabase) -> None:
    response = await _readyz(blank_db)
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["status"] == "error" and migrations["current"] is None


async def test_readyz_fails_when_the_database_is_gone(tmp_path: Path) -> None:
    gone = ScratchDatabase("postgresql", "postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)
    response = await _readyz(gone)
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "error"


async def test_readyz_checks_redis(seeded_db: ScratchDatabase, redis_url: str) -> None:
    up = await _readyz(seeded_db, redis_url=redis_url)
    assert up.status_code == 200 and up.json()["checks"]["redis"] == {"status": "ok"}
    assert up.json()["status"] == "degraded"  # by the missing model alone
    down = await _readyz(seeded_db, redis_url="redis://127.0.0.1:1/0")
    assert down.status_code == 200  # limits fall back to each process: degraded, not down
    assert down.json()["status"] == "degraded"
    assert down.json()["checks"]["redis"]["status"] == "degraded"


async def test_oversized_headers_and_bodies_are_refused(
    seeded_db: ScratchDatabase,
) -> None:
    settings = seeded_db.settings(max_request_bytes=10_000)
    query = {"query": "{ stats { totalBooks } }", "padding": "x" * 20_000}
    body = orjson.dumps(query)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with app_client(settings) as client:
        declared = await client.post("/graphql", content=body)
        streamed = await client.post(
            "/graphql", content=chunked(), headers={"content-type": "application/json"}
        )
        small = await client.post("/graphql", json={"query": "{ stats { totalBooks } }"})
        headers = await client.get("/healthz", headers={"X-Padding": "x" * 20_000})
    assert headers.status_code == 431
    assert headers.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert small.json()["data"]["stats"]["totalBooks"] == 1000


async def test_request_id_is_kept_or_made(http: httpx.AsyncClient) -> None:
    made = await http.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    kept = await http.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert kept.headers["x-request-id"] == "trace-42"
    refused = await http.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert refused.headers["x-request-id"] != "bad id\twith spaces"


async def test_parse_and_validation_errors_have_codes(gql: GraphQLClient) -> None:
    assert error_codes(await gql.execute("{ books(first: 1 ")) == ["GRAPHQL_PARSE_FAILED"]
    assert error_codes(await gql.execute("{ nope }")) == ["GRAPHQL_VALIDATION_FAILED"]
    bad_variable = await gql.execute(
        "query($n: Int) { books(first: $n) { totalCount } }", {"n": "five"}
    )
    assert error_codes(bad_variable) == ["BAD_USER_INPUT"]


async def test_unexpected_errors_are_masked_and_logged(
    seeded_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*_args: object) -> dict[int, str]:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(queries, "descriptions_by_book_ids", explode)  # the standard resolver's
    with caplog.at_level(logging.ERROR, logger="bookql.errors"):
        async with app_client(seeded_db.settings(compiled_queries=False)) as http:
            response = await http.post(
                "/graphql",
                json={"query": "{ books(first: 2) { edges { node { title description } } } }"},
                headers={"X-Request-ID": "req-123"},
            )
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR", "INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["message"] == "Internal server error."
    assert body["errors"][0]["extensions"]["requestId"] == "req-123"
    assert "hunter2" not in response.text
    nodes = [edge["node"] for edge in body["data"]["books"]["edges"]]
    assert [node["description"] for node in nodes] == [None, None]  # nullable: the rest stands
    assert all(node["title"] for node in nodes)
    assert any("req-123" in record.getMessage() for record in caplog.records)
