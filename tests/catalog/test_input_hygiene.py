"""Odd input that should be refused cleanly: NUL characters, nulls, empty texts, stray cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.catalog.test_catalog_admin import UPDATE_BOOK, create, global_id, update
from tests.conftest import GraphQLClient, ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($u: String!) { book(upc: $u) { title } }", {"u": "a897\x00"}),
        ("query($s: String!) { category(slug: $s) { name } }", {"s": "poetry\x00"}),
        (
            "query($f: BookFilter) { books(filter: $f) { totalCount } }",
            {"f": {"titleContains": "\x00"}},
        ),
        ('{ book(upc: "a897\\u0000") { title } }', {}),
        ("query($q: String) { books(search: $q) { totalCount } }", {"q": "tea\x00"}),
    ],
)
async def test_nul_characters_are_refused_everywhere(
    gql: GraphQLClient, query: str, variables: dict[str, object]
) -> None:
    body = await gql.execute(query, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "NUL" in body["errors"][0]["message"]


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db) as session:
        yield session


async def test_update_refuses_null_for_required_fields(client: AdminClient) -> None:
    book = await create(client)
    for field in ("title", "priceExclTax", "rating", "category"):
        body = await client.execute(
            UPDATE_BOOK, {"input": {"id": book["id"], field: None}}, token=client.admin_token
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], field
        assert body["errors"][0]["extensions"]["field"] == field


async def test_an_empty_description_is_no_description(client: AdminClient) -> None:
    book = await create(client, upc="empty-desc", description="")
    assert book["description"] is None
    written = await update(client, book["id"], description="Words.")
    assert written["description"] == "Words."
    cleared = await update(client, book["id"], description="")
    assert cleared["description"] is None
    assert global_id("Book", "empty-desc") == book["id"]


async def test_a_relevance_cursor_belongs_to_its_search(gql: GraphQLClient) -> None:
    query = """query($q: String!, $after: String) {
        books(search: $q, first: 2, after: $after) { pageInfo { endCursor } } }"""
    cursor = (await gql.data(query, {"q": "mystery"}))["books"]["pageInfo"]["endCursor"]
    assert "errors" not in await gql.execute(query, {"q": "Mystery!", "after": cursor})
    other = await gql.execute(query, {"q": "history", "after": cursor})
    assert error_codes(other) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "{ books(search: \\"a\\ud800\\") { totalCount } }"}',  # in the document
        '{"query": "{ books { totalCount } } # \\udfff"}',  # in a comment
        '{"query": "query Q { books { totalCount } }", "operationName": "Q\\ud800"}',
        '{"query": "query($q: String) { books(search: $q) { totalCount } }", '
        '"variables": {"q": "a\\ud800"}}',
    ],
)
async def test_a_lone_surrogate_anywhere_in_the_json_is_refused(
    gql: GraphQLClient, body: str
) -> None:
    """JSON may spell half a UTF-16 pair; no text can hold it, nor any answer echo it."""
    response = await gql.http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "surrogate" in response.json()["errors"][0]["message"]
