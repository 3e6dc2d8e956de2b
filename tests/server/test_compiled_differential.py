"""The compiled path against the standard executor, on random catalogue operations.

Two apps share one database: one with compiled plans, one with Strawberry's executor only.
Every generated operation goes to both, and the answers must be the same bytes (status,
headers, body: data, nulls, errors with their locations and paths). The share of operations
the compiled path answered itself is printed, and must reach 80%.

The normal suite runs a bounded, reproducible sample; ``BOOKQL_TEST_DIFFERENTIAL_EXAMPLES=5000``
runs a longer, random one.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import AsyncExitStack

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from bookql.graphql.relay import to_global_id
from bookql.server.schema import build_schema
from tests.conftest import ScratchDatabase
from tests.support.graphql_queries import Operation, Pools, operations
from tests.support.paths import pair
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # hypothesis: random operations on two apps

DEFAULT_EXAMPLES = 200
EXAMPLES = int(os.environ.get("BOOKQL_TEST_DIFFERENTIAL_EXAMPLES", DEFAULT_EXAMPLES))
TARGET_SHARE = 0.8
POOLS_QUERY = """{
  books(first: 40) { edges { cursor } }
  categories { id slug name books(first: 2) { edges { cursor } } }
}"""


async def send(client: httpx.AsyncClient, operation: Operation, request_id: str) -> httpx.Response:
    headers = {"X-Request-ID": request_id}
    if operation.accept is not None:
        headers["Accept"] = operation.accept
    if operation.method == "GET":
        params = {"query": operation.query}
        if operation.variables:
            params["variables"] = json.dumps(operation.variables)
        if operation.operation_name is not None:
            params["operationName"] = operation.operation_name
        return await client.get("/graphql", params=params, headers=headers)
    return await client.post("/graphql", json=operation.json_body(), headers=headers)


async def load_pools(client: httpx.AsyncClient) -> Pools:
    """Keys to draw from: the books without a description (nulls) first, then others."""
    data = (await client.post("/graphql", json={"query": POOLS_QUERY})).json()["data"]
    books = sorted(snapshot_books()[:60], key=lambda book: bool(book["description"]))
    books[:0] = [book for book in snapshot_books() if not book["description"]]
    categories = data["categories"]
    return Pools(
        upcs=[book["upc"] for book in books],
        book_ids=[to_global_id("Book", book["upc"]) for book in books],
        category_ids=[category["id"] for category in categories],
        slugs=[category["slug"] for category in categories],
        names=[category["name"] for category in categories],
        cursors=[edge["cursor"] for edge in data["books"]["edges"]],
        category_cursors=[
            edge["cursor"] for category in categories for edge in category["books"]["edges"]
        ],
    )


def compare(
    standard: httpx.Response, compiled: httpx.Response, operation: Operation, served: bool
) -> None:
    """Served by a plan: the same bytes. Handed back: both answers are the standard
    executor's, whose list of errors, when several fields fail at once, depends on which
    failed first; then the same status, media type and data, and errors on both sides."""
    context = f"{operation.method} {operation.query!r} {operation.variables!r}"
    assert compiled.status_code == standard.status_code, context
    assert compiled.headers["content-type"] == standard.headers["content-type"], context
    if not served:
        assert compiled.json().get("data") == standard.json().get("data"), context
        assert ("errors" in compiled.json()) == ("errors" in standard.json()), context
        return
    assert compiled.headers.raw == standard.headers.raw, context
    if compiled.content != standard.content:
        assert compiled.json() == standard.json(), context
        pytest.fail(f"same JSON, different bytes (key order): {context}")


def test_compiled_path_answers_as_the_standard_executor(seeded_db: ScratchDatabase) -> None:
    schema = build_schema(seeded_db.settings())._schema
    examples = failing = 0
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        clients = runner.run(stack.enter_async_context(pair(seeded_db)))
        try:
            pools = runner.run(load_pools(clients.standard))
            before = clients.counts.served

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=EXAMPLES <= DEFAULT_EXAMPLES,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(operations(schema, pools))
            def answers_alike(operation: Operation) -> None:
                nonlocal examples, failing
                examples += 1
                request_id = f"differential-{examples}"
                standard = runner.run(send(clients.standard, operation, request_id))
                failing += "errors" in standard.json()
                served_before = clients.counts.served
                compiled = runner.run(send(clients.compiled, operation, request_id))
                compare(standard, compiled, operation, clients.counts.served > served_before)

            answers_alike()
            counts = clients.counts
        finally:
            runner.run(stack.aclose())
    served = counts.served - before
    share = served / examples
    print(
        f"\ncompiled path on {seeded_db.backend}: served {served} of {examples} generated "
        f"catalogue operations ({share:.1%}); {failing} of them answered with errors; handed "
        f"back {counts.fell_back} while running, declined {counts.declined} when planning"
    )
    assert counts.failed == 0, "a plan raised something unexpected: see the log"
    assert failing, "no generated operation failed: errors went untested"
    assert share >= TARGET_SHARE, f"served {share:.1%}, below {TARGET_SHARE:.0%}"
