"""No N+1: a page's nested look-ups cost one statement per kind, whatever the page size.

Both executors are held to it: Strawberry's (a statement per DataLoader) and the compiled
plans (a statement per level, with the category and description joined into the page).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from bookql.server.app import create_app
from tests.conftest import GraphQLClient, ScratchDatabase
from tests.support.snapshot_truth import snapshot_books

BOOKS = """query($n: Int!) { books(first: $n) { totalCount edges { node {
    title category { name } description priceHistory { price } } } } }"""
CATEGORY_BOOKS = """{ categories { name books(first: 20) { totalCount edges { node {
    upc category { name } priceHistory { price } } } } } }"""


class CountingClient(GraphQLClient):
    """A client that also counts the SQL statements each operation sends."""

    statements: list[str]

    def __init__(self, http: httpx.AsyncClient, path: str) -> None:
        super().__init__(http)
        self.path = path

    def reads(self, standard: int, compiled: int) -> int:
        """The reads expected of the executor under test."""
        return compiled if self.path == "compiled" else standard

    async def counted(
        self, query: str, variables: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        self.statements = []
        data = await self.data(query, variables)
        return data, list(self.statements)


@pytest.fixture(params=["standard", "compiled"])
async def client(
    seeded_db: ScratchDatabase, request: pytest.FixtureRequest
) -> AsyncIterator[CountingClient]:
    settings = seeded_db.settings(
        compiled_queries=request.param == "compiled",
        run_jobs_in_server=False,  # no job queue polls between the statements counted
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        counting = CountingClient(http, request.param)
        counting.statements = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            counting.statements.append(statement)

        # every engine: the compiled plans read through the app's sync engine
        event.listen(Engine, "before_cursor_execute", record)
        try:
            yield counting
        finally:
            event.remove(Engine, "before_cursor_execute", record)


def _selects(statements: list[str]) -> list[str]:
    """The statements that read data (not a back end's transaction or pragma chatter)."""
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]


async def test_books_page_costs_the_same_for_5_and_100(client: CountingClient) -> None:
    small, small_statements = await client.counted(BOOKS, {"n": 5})
    large, large_statements = await client.counted(BOOKS, {"n": 100})
    truth = snapshot_books()
    assert [e["node"]["title"] for e in small["books"]["edges"]] == [b["title"] for b in truth[:5]]
    nodes = [e["node"] for e in large["books"]["edges"]]
    assert [n["title"] for n in nodes] == [b["title"] for b in truth[:100]]
    assert [n["category"]["name"] for n in nodes] == [b["category"] for b in truth[:100]]
    assert [n["description"] for n in nodes] == [b["description"] for b in truth[:100]]
    assert [n["priceHistory"] for n in nodes] == [[{"price": b["price"]}] for b in truth[:100]]
    # page, count, categories, descriptions, price histories: five reads, whatever the size
    # (compiled: the page joins its categories and descriptions, so three)
    assert len(_selects(small_statements)) == client.reads(5, 3), small_statements
    assert len(_selects(large_statements)) == len(_selects(small_statements)), large_statements
    assert len(large_statements) == len(small_statements)


@pytest.mark.parametrize(
    ("arguments", "reads"),
    [
        ('search: "love"', (5, 3)),
        ("filter: {ratingMin: 2}, orderBy: [{field: TITLE, direction: DESC}]", (5, 3)),
        ('filter: {category: "fiction"}', (6, 4)),  # and the category named in the filter
        ("last: $n", (5, 3)),
    ],
)
async def test_other_listings_cost_the_same_for_5_and_100(
    client: CountingClient, arguments: str, reads: tuple[int, int]
) -> None:
    if "$n" not in arguments:
        arguments = f"first: $n, {arguments}"
    query = BOOKS.replace("first: $n", arguments)
    small, small_statements = await client.counted(query, {"n": 5})
    large, large_statements = await client.counted(query, {"n": 100})
    assert len(small["books"]["edges"]) == 5
    assert len(large["books"]["edges"]) == min(100, large["books"]["totalCount"]) > 5
    assert all(e["node"]["priceHistory"] for e in large["books"]["edges"])
    assert len(_selects(small_statements)) == client.reads(*reads), small_statements
    assert len(large_statements) == len(small_statements), large_statements


async def test_every_categorys_books_in_a_constant_number_of_statements(
    client: CountingClient,
) -> None:
    data, statements = await client.counted(CATEGORY_BOOKS)
    by_category: dict[str, list[str]] = {}
    for book in snapshot_books():
        by_category.setdefault(book["category"], []).append(book["upc"])
    assert len(data["categories"]) == 50
    for category in data["categories"]:
        books = category["books"]
        expected = by_category[category["name"]]
        assert books["totalCount"] == len(expected)
        assert [e["node"]["upc"] for e in books["edges"]] == expected[:20]
        assert {e["node"]["category"]["name"] for e in books["edges"]} == {category["name"]}
        assert all(len(e["node"]["priceHistory"]) == 1 for e in books["edges"])
    # categories, the first pages (one statement for all 50), their counts (one), the
    # books' categories and price histories (one each): five, not one or two per category
    # (compiled: the pages join their books' categories, so four)
    assert len(_selects(statements)) == client.reads(5, 4), statements


async def test_filtered_category_books_in_a_constant_number_of_statements(
    client: CountingClient,
) -> None:
    data, statements = await client.counted(
        """{ categories { name books(first: 3, filter: {ratingMin: 4},
                                    orderBy: [{field: AVAILABILITY, direction: DESC}]) {
             totalCount edges { node { upc } } } } }"""
    )
    by_category: dict[str, list[dict[str, Any]]] = {}
    for book in snapshot_books():
        if book["rating"] >= 4:
            by_category.setdefault(book["category"], []).append(book)
    for category in data["categories"]:
        books = sorted(
            by_category.get(category["name"], []),
            key=lambda b: b["availability_count"],
            reverse=True,  # stable: ties stay in id order
        )
        assert category["books"]["totalCount"] == len(books)
        assert [e["node"]["upc"] for e in category["books"]["edges"]] == [
            b["upc"] for b in books[:3]
        ]
    assert len(_selects(statements)) == 3, statements  # categories, pages, counts


async def test_every_categorys_bounded_count_in_one_statement(client: CountingClient) -> None:
    """``count(limit:)`` of ``Category.books``: one bounded read of every category's books
    (per limit), not one per category; from the tallies when they answer."""
    data, statements = await client.counted(
        """{ categories { name
             the: books(first: 1, filter: {titleContains: "the"}) {
               three: count(limit: 3) { count precision }
               all: count(limit: 1000) { count precision } }
             rated: books(first: 1, filter: {ratingMin: 4}) { count(limit: 5) { count precision } }
           } }"""
    )
    titled: dict[str, int] = {}
    rated: dict[str, int] = {}
    for book in snapshot_books():
        titled.setdefault(book["category"], 0)
        rated.setdefault(book["category"], 0)
        titled[book["category"]] += "the" in book["title"].lower()
        rated[book["category"]] += book["rating"] >= 4

    def bounded(count: int, limit: int) -> dict[str, Any]:
        if count <= limit:
            return {"count": count, "precision": "EXACT"}
        return {"count": limit, "precision": "AT_LEAST"}

    assert len(data["categories"]) == 50
    precisions = set()
    for category in data["categories"]:
        name = category["name"]
        assert category["the"]["three"] == bounded(titled[name], 3), name
        assert category["the"]["all"] == bounded(titled[name], 1000), name
        assert category["rated"]["count"] == bounded(rated[name], 5), name
        precisions |= {
            category["the"]["three"]["precision"],
            category["rated"]["count"]["precision"],
        }
    assert precisions == {"EXACT", "AT_LEAST"}
    # categories, the two listings' pages, the title counts (one per limit) and the rated
    # counts (tallies): six, not one per category
    assert len(_selects(statements)) == 6, statements
