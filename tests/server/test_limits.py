"""Abusive queries are refused with a code, and the server stays healthy afterwards."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes


def _nest(levels: int) -> str:
    query = "title"
    for _ in range(levels):
        query = f"books(first: 2) {{ edges {{ node {{ category {{ name }} {query} }} }} }}"
        query = f"category {{ {query} }}"
    return f"{{ books(first: 1) {{ edges {{ node {{ {query} }} }} }} }}"


CUBE = (
    "{ books(first: 100) { edges { node { category { books(first: 100) { edges { node {"
    " category { books(first: 100) { edges { node { title } } } } } } } } } } } }"
)


@pytest.mark.parametrize(
    ("name", "query", "code"),
    [
        ("1 MB query", "{ " + "__typename " * 100_000 + "}", "QUERY_TOO_COMPLEX"),
        ("too many tokens", "{ " + "__typename " * 6_000 + "}", "QUERY_TOO_COMPLEX"),
        ("depth 50", _nest(12), "QUERY_TOO_COMPLEX"),
        (
            "500 aliases",
            "{ " + " ".join(f"a{i}: __typename" for i in range(500)) + " }",
            "QUERY_TOO_COMPLEX",
        ),
        ("100 x 100 x 100", CUBE, "QUERY_TOO_COMPLEX"),
        ("first: 1000", "{ books(first: 1000) { totalCount } }", "BAD_USER_INPUT"),
        ("negative first", "{ books(first: -5) { totalCount } }", "BAD_USER_INPUT"),
        ("malformed cursor", '{ books(first: 5, after: "@@@") { totalCount } }', "BAD_USER_INPUT"),
        (
            "unknown category",
            '{ books(filter: {category: "Cookery"}) { totalCount } }',
            "BAD_USER_INPUT",
        ),
    ],
)
async def test_abuse_is_refused_and_the_server_stays_healthy(
    gql: GraphQLClient, name: str, query: str, code: str
) -> None:
    body = await gql.execute(query)
    assert error_codes(body) == [code], (name, body["errors"][0]["message"])
    assert await gql.data("{ books(first: 1) { totalCount } }") == {"books": {"totalCount": 1000}}
    assert (await gql.http.get("/healthz")).status_code == 200


async def test_cost_counts_variables(gql: GraphQLClient) -> None:
    query = """query($n: Int) { books(first: $n) { edges { node { category {
        books(first: $n) { edges { node { category {
        books(first: $n) { totalCount } } } } } } } } } }"""
    assert "errors" not in await gql.execute(query, {"n": 3})
    refused = await gql.execute(query, {"n": 100})
    assert error_codes(refused) == ["QUERY_TOO_COMPLEX"]
    assert refused["errors"][0]["extensions"]["cost"] > 50_000


async def test_a_realistic_nested_query_is_allowed(gql: GraphQLClient) -> None:
    data = await gql.data(
        "{ categories { name books(first: 20) { edges { node { title category { name }"
        " priceHistory { price } } } } } }"
    )
    assert len(data["categories"]) == 50


async def test_introspection_is_free_and_allowed_in_development(gql: GraphQLClient) -> None:
    data = await gql.data(
        "{ __schema { types { name fields { name type { name"
        " ofType { name ofType { name ofType { name } } } } } } } }"
    )
    assert any(t["name"] == "Book" for t in data["__schema"]["types"])


async def test_production_hides_introspection_and_suggestions(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(env="production", jwt_secret="p" * 64)
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        introspection = await client.execute("{ __schema { types { name } } }")
        assert set(error_codes(introspection)) == {"GRAPHQL_VALIDATION_FAILED"}
        typo = await client.execute("{ bokos { totalCount } }")
        assert "Did you mean" not in typo["errors"][0]["message"]
    async with app_client(seeded_db.settings()) as http:
        typo = await GraphQLClient(http).execute("{ bokos { totalCount } }")
        assert "Did you mean 'books'" in typo["errors"][0]["message"]


async def test_introspection_can_be_switched_on_in_production(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(env="production", jwt_secret="p" * 64, introspection=True)
    async with app_client(settings) as http:
        assert "errors" not in await GraphQLClient(http).execute(
            "{ __schema { queryType { name } } }"
        )


async def test_slow_operations_time_out(
    seeded_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookql.catalog.graphql import schema as catalog_schema

    async def slow(*_args: object, **_kwargs: object) -> object:
        await asyncio.sleep(5)
        raise AssertionError("should have been cancelled")

    monkeypatch.setattr(catalog_schema, "load_page", slow)  # the standard resolver's
    settings = seeded_db.settings(request_timeout_seconds=1.0, compiled_queries=False)
    async with app_client(settings) as http:
        client = GraphQLClient(http)
        body = await client.execute("{ books { totalCount } }")
        assert body["data"] is None
        assert error_codes(body) == ["TIMEOUT"]
        assert await client.data("{ categories { name } }")  # the server carries on
