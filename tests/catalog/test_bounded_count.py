"""``count(limit:)`` beside ``totalCount``: exact up to its bound, a lower bound past it, on
both databases and both executors, for filters the tallies answer and filters they cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes

QUERY = """query($filter: BookFilter, $search: String, $limit: Int!) {
    books(first: 1, filter: $filter, search: $search) {
        totalCount count(limit: $limit) { count precision } } }"""
CATEGORY_QUERY = """query($limit: Int!) { category(slug: "poetry") {
    books(first: 1, filter: {titleContains: "the"}) {
        totalCount count(limit: $limit) { count precision } } } }"""

CASES = [
    {},
    {"filter": {"category": "poetry", "priceMin": 20, "priceMax": 40, "ratingMin": 3}},
    {"filter": {"priceMin": 20, "priceMax": 30}},
    {"filter": {"titleContains": "the"}},
    {"filter": {"inStock": True, "ratingMax": 2}},
    {"search": "love"},
]


@pytest.fixture
async def standard(seeded_db: ScratchDatabase) -> AsyncIterator[GraphQLClient]:
    """The same catalogue served by Strawberry's executor alone (no compiled plans)."""
    async with app_client(seeded_db.settings(compiled_queries=False)) as client:
        yield GraphQLClient(client)


@pytest.mark.parametrize("arguments", CASES)
async def test_count_is_exact_up_to_its_limit(
    gql: GraphQLClient, standard: GraphQLClient, arguments: dict[str, Any]
) -> None:
    total = (await gql.data(QUERY, {**arguments, "limit": 0}))["books"]["totalCount"]
    assert total > 0
    for limit in (0, 1, total - 1, total, total + 1, 100_000):
        for client in (gql, standard):
            data = await client.data(QUERY, {**arguments, "limit": limit})
            connection = data["books"]
            assert connection["totalCount"] == total
            expected = (
                {"count": total, "precision": "EXACT"}
                if total <= limit
                else {"count": limit, "precision": "AT_LEAST"}
            )
            assert connection["count"] == expected, (arguments, limit)


async def test_a_category_s_books_count_too(gql: GraphQLClient) -> None:
    data = await gql.data(CATEGORY_QUERY, {"limit": 100_000})
    books = data["category"]["books"]
    assert books["count"] == {"count": books["totalCount"], "precision": "EXACT"}
    data = await gql.data(CATEGORY_QUERY, {"limit": 1})
    assert data["category"]["books"]["count"] == {"count": 1, "precision": "AT_LEAST"}


@pytest.mark.parametrize("limit", [-1, 100_001])
async def test_a_limit_out_of_range_is_refused(gql: GraphQLClient, limit: int) -> None:
    body = await gql.execute(QUERY, {"limit": limit})
    assert error_codes(body) == ["BAD_USER_INPUT"]
