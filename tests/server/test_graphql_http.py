"""GraphQL over HTTP: media types, status codes, methods, and transport-level refusals."""

from __future__ import annotations

import httpx
import pytest

from bookql.server.view import negotiate

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", "application/json"),
    ],
)
def test_negotiation(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    ("query", "legacy_status", "modern_status", "has_data"),
    [
        ("{ __typename }", 200, 200, True),
        ("{ books(first: 1 ", 200, 400, False),  # parse failure
        ("{ nope }", 200, 400, False),  # validation failure
        ("{ books(first: -1) { totalCount } }", 200, 200, True),  # execution error: data null
    ],
)
async def test_status_codes_by_media_type(
    http: httpx.AsyncClient, query: str, legacy_status: int, modern_status: int, has_data: bool
) -> None:
    legacy = await http.post("/graphql", json={"query": query})
    assert legacy.status_code == legacy_status
    assert legacy.headers["content-type"] == "application/json"
    assert "data" in legacy.json()
    modern = await http.post(
        "/graphql", json={"query": query}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert modern.status_code == modern_status
    assert modern.headers["content-type"] == GRAPHQL_RESPONSE
    assert ("data" in modern.json()) is has_data


async def test_bad_variables_are_a_request_error(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={
            "query": "query($n: Int!) { books(first: $n) { totalCount } }",
            "variables": {"n": "x"},
        },
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_get_serves_queries(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": "{ books(first: 1) { totalCount } }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"books": {"totalCount": 1000}}}


async def test_mutation_over_get_is_405_with_allow(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql", params={"query": 'mutation { logout(input: {refreshToken: "x"}) { ok } }'}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_other_methods_are_405(http: httpx.AsyncClient) -> None:
    response = await http.put("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b'[{"query": "{ __typename }"}]', {"content-type": "application/json"}, "Batching"),
        (b"{not json", {"content-type": "application/json"}, "JSON"),
        (b'{"query": 5}', {"content-type": "application/json"}, "must be a string"),
        (b'{"variables": {}}', {"content-type": "application/json"}, "No GraphQL query"),
        (b"query=x", {"content-type": "text/plain"}, "Unsupported content type"),
    ],
)
async def test_transport_refusals_are_coded(
    http: httpx.AsyncClient, body: bytes, headers: dict[str, str], message: str
) -> None:
    response = await http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_oversized_body_is_refused_before_reading(http: httpx.AsyncClient) -> None:
    body = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * 2_100_000 + b'"}}'
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_graphiql_page_for_browsers(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "GraphiQL.createFetcher" in response.text
