"""What operators watch: ``/readyz`` per dependency, ``/metrics`` and structured logs.

Logs are one JSON object a line with the request id of the request that wrote them, and
never a password, token or secret, whatever the message or the exception says.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from bookql.core.logs import REDACTED, configure_logging, redact_secrets, scrub
from bookql.ml.price_model import train_price_model
from bookql.ml.store import ModelStore
from tests.conftest import ScratchDatabase, app_client
from tests.ml.test_ml import CATEGORIES, snapshot_frame

PASSWORD = "observable password 1"
PREDICT = """mutation { predictPrices(input: {items: [
    {features: {category: "Poetry", rating: 3, availability: 5, title: "Odes"}},
    {features: {category: "Travel", rating: 5, availability: 1, title: "Roads"}},
    {upc: "no-such-book"}]}) { results { prediction { price } } } }"""
REGISTER = """mutation($u: String!, $p: String!) { register(input: {username: $u, password: $p})
    { accessToken } }"""


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The process's logging, configured as ``bookql serve`` does, into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    configure_logging("INFO", "json")
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved
        structlog.reset_defaults()


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
async def test_readyz_reports_the_model(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings()
    async with app_client(settings) as client:
        without = (await client.get("/readyz")).json()
        assert without["status"] == "degraded"
        assert without["checks"]["model"]["status"] == "degraded"
        store = ModelStore(settings.effective_models_dir)
        version = store.save(train_price_model(snapshot_frame(), CATEGORIES, seed=3)).version
        store.activate(version)
        for _ in range(40):  # each process looks at the alias at most once a second
            ready = await client.get("/readyz")
            if ready.json()["status"] != "degraded":
                break
            await asyncio.sleep(0.1)
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["checks"]["model"] == {"status": "ok", "version": version}
        registered = await client.post(
            "/graphql", json={"query": REGISTER, "variables": {"u": "predictor", "p": PASSWORD}}
        )
        token = registered.json()["data"]["register"]["accessToken"]
        predicted = await client.post(
            "/graphql",
            json={"query": PREDICT},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert predicted.json()["data"]["predictPrices"]["results"][1]["prediction"]
        text = (await client.get("/metrics")).text
    made = _samples(text)[("bookql_predictions_total", frozenset({("model_version", version)}))]
    assert made == 2  # the unknown book made none
    assert "# TYPE bookql_jobs gauge" in text


async def test_metrics_count_requests_operations_errors_and_pools(
    seeded_db: ScratchDatabase,
) -> None:
    async with app_client(seeded_db.settings()) as client:
        before = _samples((await client.get("/metrics")).text)
        named = {"query": "query ShelfPage { books(first: 2) { totalCount } }"}
        for _ in range(3):
            assert (await client.post("/graphql", json=named)).json()["data"]
        await client.post("/graphql", json={"query": "{ book(upc: 7) { title } }"})
        await client.post("/graphql", json={"query": "{ books(first: -1) { totalCount } }"})
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    ok = {"operation": "ShelfPage", "type": "query", "outcome": "ok"}
    assert grew("bookql_graphql_operations_total", **ok) == 3
    rejected = {"operation": "anonymous", "type": "query", "outcome": "rejected"}
    assert grew("bookql_graphql_operations_total", **rejected) == 1
    assert grew("bookql_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert grew("bookql_graphql_errors_total", code="BAD_USER_INPUT") == 1
    requests = {"method": "POST", "route": "/graphql", "status": "200"}
    assert grew("bookql_http_requests_total", **requests) == 5
    assert grew("bookql_http_request_duration_seconds_count", route="/graphql") == 5
    assert ("bookql_db_connections_in_use", frozenset({("pool", "async")})) in after
    assert after[("bookql_db_pool_size", frozenset({("pool", "blocking")}))] >= 1


async def test_persisted_query_refusals_are_counted(seeded_db: ScratchDatabase) -> None:
    """A hash the server does not know, or one that is not its document's, never runs: the
    operation is still counted, by its code."""
    unknown = {"version": 1, "sha256Hash": "0" * 64}
    async with app_client(seeded_db.settings()) as client:
        before = _samples((await client.get("/metrics")).text)
        missed = {"operationName": "Shelf", "extensions": {"persistedQuery": unknown}}
        await client.post("/graphql", json=missed)
        wrong = {"query": "{ stats { totalBooks } }", "extensions": {"persistedQuery": unknown}}
        assert (await client.post("/graphql", json=wrong)).status_code == 400
        after = _samples((await client.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    missed_labels = {"operation": "Shelf", "type": "unknown", "outcome": "rejected"}
    assert grew("bookql_graphql_operations_total", **missed_labels) == 1
    assert grew("bookql_graphql_errors_total", code="PERSISTED_QUERY_NOT_FOUND") == 1
    wrong_labels = {"operation": "anonymous", "type": "unknown", "outcome": "error"}
    assert grew("bookql_graphql_operations_total", **wrong_labels) == 1
    assert grew("bookql_graphql_errors_total", code="BAD_USER_INPUT") == 1


async def test_operation_names_cannot_grow_the_metrics(seeded_db: ScratchDatabase) -> None:
    from bookql.graphql import metrics

    async with app_client(seeded_db.settings()) as client:
        for number in range(metrics.MAX_OPERATION_NAMES + 5):
            query = f"query Name{number} {{ stats {{ totalBooks }} }}"
            await client.post("/graphql", json={"query": query})
        text = (await client.get("/metrics")).text
    names = {
        sample.labels["operation"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bookql_graphql_operations_total"
    }
    assert len(names) <= metrics.MAX_OPERATION_NAMES + 2  # + "anonymous" and "other"
    assert "other" in names


async def test_logs_are_json_with_the_request_id_and_no_secrets(
    seeded_db: ScratchDatabase, captured_logs: io.StringIO
) -> None:
    async with app_client(seeded_db.settings()) as client:
        registered = await client.post(
            "/graphql",
            json={"query": REGISTER, "variables": {"u": "watcher", "p": PASSWORD}},
            headers={"X-Request-ID": "trace-register"},
        )
        token = registered.json()["data"]["register"]["accessToken"]
        await client.post(
            "/graphql",
            json={"query": "{ me { username } }"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-me"},
        )
        logging.getLogger("bookql.test").warning(
            "connecting to postgresql://admin:hunter2@db/bookql with token=%s", token
        )
    lines = _lines(captured_logs)
    access = [line for line in lines if line.get("logger") == "bookql.access"]
    assert {(line["request_id"], line["path"], line["status"]) for line in access} >= {
        ("trace-register", "/graphql", 200),
        ("trace-me", "/graphql", 200),
    }
    assert all({"timestamp", "level", "event"} <= line.keys() for line in lines)
    text = captured_logs.getvalue()
    assert PASSWORD not in text and token not in text and "hunter2" not in text
    assert REDACTED in text


def test_scrub_removes_what_looks_like_a_secret() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert scrub(f"Authorization: Bearer {jwt}") == f"Authorization: Bearer {REDACTED}"
    assert scrub(f"refresh {jwt} failed") == f"refresh {REDACTED} failed"
    assert scrub("postgresql+psycopg://u:p4ss@h:5432/db") == (
        f"postgresql+psycopg://u:{REDACTED}@h:5432/db"
    )
    assert scrub("password=abc&next=1") == f"password={REDACTED}&next=1"
    assert scrub("an ordinary line about 12 books") == "an ordinary line about 12 books"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("new_password", True),
        ("accessToken", True),
        ("refresh_token", True),
        ("jwtSecret", True),
        ("API_KEY", True),
        ("set-cookie", True),
        ("Authorization", True),
        ("passed", False),
        ("tokenizer", False),
        ("bypass", False),
        ("username", False),
    ],
)
def test_fields_are_redacted_by_the_words_of_their_name(key: str, secret: bool) -> None:
    event = redact_secrets(None, "info", {key: "value"})
    assert (event[key] == REDACTED) is secret
