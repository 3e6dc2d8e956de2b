"""What the compiled path takes on, and what it leaves to the standard executor.

Planning decides once per document: only a query over the root fields a domain compiles,
that the standard path would execute (size, tokens, parse, validation, limits). Running
decides per request: bad variables, cost, permissions and every resolver error go back
to the standard executor, which answers them; whatever it answers, the client sees the
same as without plans.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql.execution.values import VariableValues, get_variable_values
from sqlalchemy.exc import OperationalError

from bookql.catalog import queries
from bookql.catalog.graphql.compiled import listings
from bookql.catalog.graphql.compiled.values import gbp
from bookql.catalog.money import from_pence
from bookql.core.config import Settings
from bookql.graphql.compiled.executor import CompiledQueries
from bookql.graphql.compiled.planner import DocumentPlan, Planner
from bookql.graphql.relay import to_global_id
from bookql.server.compiled import compiled_roots
from bookql.server.schema import build_schema
from tests.conftest import ScratchDatabase, error_codes
from tests.support.paths import Pair, pair

BOOKS = (
    "{ books(first: 3) { totalCount edges { cursor node { id title price category { name } } } } }"
)


def new_planner(cache_size: int = 100) -> Planner:
    settings = Settings()
    schema = build_schema(settings)
    return Planner(schema, compiled_roots(schema, settings), cache_size=cache_size)


@pytest.fixture(scope="module")
def planner() -> Planner:
    return new_planner()


def variables(plan: DocumentPlan, values: dict[str, Any] | None = None) -> VariableValues:
    coerced = get_variable_values(plan.schema, plan.variable_definitions, values or {})
    assert isinstance(coerced, VariableValues)
    return coerced


@pytest.mark.parametrize(
    ("reason", "query", "operation_name"),
    [
        ("a mutation", 'mutation { logout(input: {refreshToken: "x"}) { ok } }', None),
        ("a subscription", "subscription { crawlProgress(runId: 1) { status } }", None),
        ("unparsable", "{ books(first: 1 ", None),
        ("invalid", "{ books { nope } }", None),
        (
            "too deep",
            "{ " + "books { edges { node { category { " * 4 + "name" + " } } } }" * 4 + " }",
            None,
        ),
        (
            "too many aliases",
            "{ " + " ".join(f"a{i}: stats {{ totalBooks }}" for i in range(31)) + " }",
            None,
        ),
        ("too long", "{ stats { totalBooks } }" + " " * 100_001, None),
        ("no such operation", "query A { stats { totalBooks } }", "B"),
        (
            "no operation chosen",
            "query A { stats { totalBooks } } query B { categories { id } }",
            None,
        ),
    ],
)
def test_documents_the_standard_path_refuses_are_never_planned(
    planner: Planner, reason: str, query: str, operation_name: str | None
) -> None:
    assert planner.document(query, operation_name) is None, reason


@pytest.mark.parametrize(
    ("reason", "query"),
    [
        ("introspection", "{ __schema { queryType { name } } }"),
        ("another domain's root field", "{ me { username } stats { totalBooks } }"),
        ("another domain's list", "{ categories { name } models { version } }"),
    ],
)
def test_fields_no_domain_compiles_leave_the_operation_to_the_standard_path(
    planner: Planner, reason: str, query: str
) -> None:
    document = planner.document(query, None)
    assert document is not None
    assert document.variant(variables(document)) is None, reason


def test_catalog_queries_are_planned_once_per_document_and_operation(planner: Planner) -> None:
    query = f"query A {BOOKS} query B {{ __typename categories {{ name }} }}"
    first = planner.document(query, "A")
    assert first is not None and first.variant(variables(first)) is not None
    assert planner.document(query, "A") is first
    other = planner.document(query, "B")
    assert other is not None and other is not first
    assert other.variant(variables(other)) is not None


def test_directives_on_variables_give_a_plan_per_value(planner: Planner) -> None:
    document = planner.document(
        "query($t: Boolean!) { books(first: 1) { totalCount @include(if: $t) } }", None
    )
    assert document is not None
    shown = document.variant(variables(document, {"t": True}))
    hidden = document.variant(variables(document, {"t": False}))
    assert shown is not None and hidden is not None and shown is not hidden
    assert document.variant(variables(document, {"t": True})) is shown


def test_the_plan_cache_keeps_the_documents_used_last() -> None:
    planner = new_planner(cache_size=3)
    documents = [f"{{ a{i}: stats {{ totalBooks }} }}" for i in range(5)]
    kept = [planner.document(query, None) for query in documents]
    assert planner.document(documents[0], None) is not kept[0]  # evicted, planned anew
    assert planner.document(documents[-1], None) is kept[-1]


def test_pence_become_the_floats_the_standard_types_show() -> None:
    assert all(gbp(pence) == from_pence(pence) for pence in range(0, 1_000_000, 7))


COSTLY = """query($n: Int) { categories { books(first: $n) { edges { node {
    category { books(first: $n) { totalCount } } } } } } }"""


@pytest.fixture
async def paths(seeded_db: ScratchDatabase) -> AsyncIterator[Pair]:
    async with pair(seeded_db) as both:
        yield both


async def served(paths: Pair, method: str = "POST", **request: Any) -> tuple[Any, bool]:
    """Both answers, which must be the same bytes, and whether a plan served the second."""
    before = paths.counts.served
    standard, compiled = await paths.both(method, **request)
    assert compiled.status_code == standard.status_code
    assert compiled.headers["content-type"] == standard.headers["content-type"]
    assert compiled.content == standard.content
    is_json = compiled.headers["content-type"].endswith("json")
    body = compiled.json() if is_json else compiled.text
    return body, paths.counts.served > before


async def test_plain_queries_are_served_over_post_and_get(paths: Pair) -> None:
    body, by_plan = await served(paths, json={"query": BOOKS})
    assert by_plan and len(body["data"]["books"]["edges"]) == 3
    body, by_plan = await served(paths, "GET", params={"query": BOOKS})
    assert by_plan and len(body["data"]["books"]["edges"]) == 3


@pytest.mark.parametrize(
    ("reason", "request_"),
    [
        ("a page too large", {"json": {"query": "{ books(first: 101) { totalCount } }"}}),
        (
            "a variable of the wrong type",
            {
                "json": {
                    "query": "query($n: Int) { books(first: $n) { totalCount } }",
                    "variables": {"n": "x"},
                }
            },
        ),
        (
            "NUL in a variable",
            {
                "json": {
                    "query": "query($s: String) { books(search: $s) { totalCount } }",
                    "variables": {"s": "a\x00b"},
                }
            },
        ),
        ("too costly", {"json": {"query": COSTLY, "variables": {"n": 100}}}),
        (
            "an unknown category",
            {"json": {"query": '{ books(filter: {category: "nope"}) { totalCount } }'}},
        ),
        ("a malformed id", {"json": {"query": '{ node(id: "!!!") { id } }'}}),
        (
            "a node of another domain",
            {"json": {"query": f'{{ node(id: "{to_global_id("User", 1)}") {{ id }} }}'}},
        ),
        (
            "a cursor of another list",
            {"json": {"query": '{ books(after: "WyJvdGhlciIsMV0") { totalCount } }'}},
        ),
        ("a batch", {"json": [{"query": "{ stats { totalBooks } }"}]}),
        ("a form", {"data": {"query": "{ stats { totalBooks } }"}}),
        (
            "a stream",
            {
                "json": {"query": "{ stats { totalBooks } }"},
                "headers": {"Accept": "text/event-stream"},
            },
        ),
    ],
)
async def test_what_the_plans_hand_back_is_answered_by_the_standard_executor(
    paths: Pair, reason: str, request_: dict[str, Any]
) -> None:
    _, by_plan = await served(paths, **request_)
    assert not by_plan, reason


async def test_bad_credentials_are_refused_on_both_paths(paths: Pair) -> None:
    headers = {"Authorization": "Bearer forged"}
    body, by_plan = await served(paths, json={"query": BOOKS}, headers=headers)
    assert not by_plan
    assert set(error_codes(body)) == {"UNAUTHENTICATED"}


async def test_a_private_catalog_still_needs_a_token(seeded_db: ScratchDatabase) -> None:
    async with pair(seeded_db, public_catalogue=False) as paths:
        body, by_plan = await served(paths, json={"query": BOOKS})
    assert not by_plan
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_an_unexpected_failure_in_a_plan_is_logged_and_handed_back(
    paths: Pair, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*_args: object) -> dict[int, int]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(queries, "book_counts_by_category", explode)  # both paths read it
    query = "{ categories { name bookCount } }"
    with caplog.at_level(logging.WARNING):
        body, by_plan = await served(paths, json={"query": query})
    assert not by_plan and paths.counts.failed == 1
    assert body["data"] is None and set(error_codes(body)) == {"INTERNAL_SERVER_ERROR"}
    assert "secret internals" not in str(body)
    assert any(record.name == "bookql.compiled" for record in caplog.records)
    paths.counts.failed = 0


async def test_a_slow_plan_times_out_as_the_standard_path_does(
    seeded_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read blocks until the test lets it go, so the budget is generous enough for the
    # second request on a loaded machine and the timeout still cannot be missed.
    release, finished = threading.Event(), threading.Event()

    def slow(*_args: object) -> object:
        try:
            release.wait(30)
            raise AssertionError("should have timed out")
        finally:
            finished.set()

    monkeypatch.setattr(listings.BooksPages, "page", slow)
    async with pair(seeded_db, request_timeout_seconds=2) as paths:
        before = paths.counts.served
        response = await paths.compiled.post("/graphql", json={"query": BOOKS})
        assert response.json() == {
            "data": None,
            "errors": [
                {
                    "message": "the operation took longer than 2 s",
                    "extensions": {"code": "TIMEOUT"},
                }
            ],
        }
        assert paths.counts.served == before and paths.counts.fell_back == 0
        assert not finished.is_set()  # abandoned, still running: the answer did not wait
        still = await paths.compiled.post("/graphql", json={"query": "{ stats { totalBooks } }"})
        assert still.json() == {"data": {"stats": {"totalBooks": 1000}}}
        release.set()  # let the abandoned read finish before the pool closes
        assert await asyncio.to_thread(finished.wait, 30)


async def test_the_cost_limit_counts_each_requests_own_page_sizes(paths: Pair) -> None:
    for size, served_here in ((100, False), (1, True), (100, False)):
        request_ = {"query": COSTLY, "variables": {"n": size}}
        _, by_plan = await served(paths, json=request_)
        assert by_plan is served_here, size


async def test_during_an_outage_requests_go_straight_to_the_standard_path(
    paths: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_args: object) -> object:
        cause = sqlite3.OperationalError("unable to open database file")
        raise OperationalError("SELECT", {}, cause)

    monkeypatch.setattr(CompiledQueries, "_run", unreachable)
    counts = paths.counts
    fell_back, declined = counts.fell_back, counts.declined
    for _ in range(2):
        body, by_plan = await served(paths, json={"query": BOOKS})
        assert not by_plan and len(body["data"]["books"]["edges"]) == 3
    assert counts.fell_back == fell_back + 1  # met the outage once, then left it alone
    assert counts.declined == declined + 1
    assert counts.failed == 0
