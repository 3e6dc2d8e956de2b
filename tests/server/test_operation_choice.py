"""Which operation runs (GraphQL's GetOperation), on both executors and both databases.

Several operations and no ``operationName`` is a request error, as is an ``operationName``
naming none: ``BAD_USER_INPUT``, 400 without ``data`` under
``application/graphql-response+json`` (the legacy ``application/json`` keeps Strawberry's
statuses). A named operation runs, and only it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import ScratchDatabase, error_codes
from tests.support.paths import Pair, pair

TWO = "query A { stats { totalBooks } } query B { categories { slug } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def paths(seeded_db: ScratchDatabase) -> AsyncIterator[Pair]:
    async with pair(seeded_db) as both:
        yield both


async def _both(paths: Pair, method: str, **request: Any) -> httpx.Response:
    """The answer, the same bytes from either executor."""
    standard, compiled = await paths.both(method, **request)
    assert (compiled.status_code, compiled.content) == (standard.status_code, standard.content)
    return compiled


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_several_operations_need_a_name(paths: Pair, method: str) -> None:
    def request(body: dict[str, Any], accept: str) -> dict[str, Any]:
        where = "json" if method == "POST" else "params"
        return {where: body, "headers": {"Accept": accept}}

    for accept in (GRAPHQL_RESPONSE, "application/json"):
        refused = await _both(paths, method, **request({"query": TWO}, accept))
        body = refused.json()
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert "operationName" in body["errors"][0]["message"]
        if accept == GRAPHQL_RESPONSE:
            assert refused.status_code == 400 and "data" not in body
        else:
            assert body["data"] is None
    named = await _both(paths, method, **request({"query": TWO, "operationName": "B"}, "*/*"))
    assert list(named.json()["data"]) == ["categories"]
    first = await _both(paths, method, **request({"query": TWO, "operationName": "A"}, "*/*"))
    assert first.json()["data"] == {"stats": {"totalBooks": 1000}}


async def test_a_name_that_names_no_operation_is_refused(paths: Pair) -> None:
    for query in (TWO, "query A { stats { totalBooks } }", "{ stats { totalBooks } }"):
        refused = await _both(
            paths,
            "POST",
            json={"query": query, "operationName": "C"},
            headers={"Accept": GRAPHQL_RESPONSE},
        )
        assert refused.status_code == 400
        assert error_codes(refused.json()) == ["BAD_USER_INPUT"]
        assert "data" not in refused.json()


async def test_an_invalid_document_reports_its_validation_errors_first(paths: Pair) -> None:
    refused = await _both(
        paths, "POST", json={"query": "query A { nope } query B { stats { totalBooks } }"}
    )
    assert error_codes(refused.json()) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_one_operation_needs_no_name(paths: Pair) -> None:
    before = paths.counts.served
    single = await _both(paths, "POST", json={"query": "query A { stats { totalBooks } }"})
    assert single.json() == {"data": {"stats": {"totalBooks": 1000}}}
    assert paths.counts.served > before  # and the plan, not the fallback, answered it
