"""The catalogue over GraphQL on both databases: books, categories, nodes, pagination."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import GraphQLClient, error_codes
from tests.support.snapshot_truth import snapshot_books

BOOK_FIELDS = """
  id upc title productType price priceExclTax priceInclTax tax currency availability
  inStock rating numReviews description imageUrl productUrl firstSeenAt lastSeenAt removedAt
  category { id name slug }
  priceHistory { price availability observedAt }
"""


async def test_typename(gql: GraphQLClient) -> None:
    assert await gql.data("{ __typename }") == {"__typename": "Query"}


async def test_first_five_books_are_the_sites_first_five(gql: GraphQLClient) -> None:
    data = await gql.data(
        f"{{ books(first: 5) {{ totalCount edges {{ node {{ {BOOK_FIELDS} }} }} }} }}"
    )
    expected = snapshot_books()[:5]
    nodes = [edge["node"] for edge in data["books"]["edges"]]
    assert data["books"]["totalCount"] == 1000
    assert [node["title"] for node in nodes] == [book["title"] for book in expected]
    first, truth = nodes[0], expected[0]
    assert first["upc"] == truth["upc"] == "a897fe39b1053632"
    assert first["price"] == first["priceInclTax"] == 51.77
    assert first["priceExclTax"] == 51.77 and first["tax"] == 0.0
    assert first["availability"] == 22 and first["inStock"] is True
    assert first["rating"] == 3 and first["numReviews"] == 0
    assert first["category"]["name"] == "Poetry" and first["category"]["slug"] == "poetry"
    assert first["description"] == truth["description"]
    assert first["productUrl"] == truth["product_url"]
    assert first["imageUrl"] == truth["image_url"]
    assert first["removedAt"] is None
    assert first["priceHistory"] == [
        {"price": 51.77, "availability": 22, "observedAt": first["firstSeenAt"]}
    ]


async def test_every_field_matches_the_snapshot(gql: GraphQLClient) -> None:
    seen: dict[str, dict[str, object]] = {}
    after = None
    while True:
        data = await gql.data(
            """query($after: String) { books(first: 100, after: $after) {
                 pageInfo { hasNextPage endCursor }
                 edges { node { upc title price priceExclTax tax availability rating
                                description category { name } } } } }""",
            {"after": after},
        )
        for edge in data["books"]["edges"]:
            seen[edge["node"]["upc"]] = edge["node"]
        if not data["books"]["pageInfo"]["hasNextPage"]:
            break
        after = data["books"]["pageInfo"]["endCursor"]
    assert len(seen) == 1000
    for book in snapshot_books():
        node = seen[book["upc"]]
        assert node["title"] == book["title"]
        assert node["price"] == book["price"]
        assert node["priceExclTax"] == book["price_excl_tax"]
        assert node["tax"] == book["tax"]
        assert node["availability"] == book["availability_count"]
        assert node["rating"] == book["rating"]
        assert node["description"] == book["description"]
        assert node["category"] == {"name": book["category"]}


async def _walk(gql: GraphQLClient, *, forward: bool) -> list[str]:
    titles: list[str] = []
    cursor = None
    query = (
        "query($c: String) { books(first: 100, after: $c) { edges { node { upc } } "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
        if forward
        else "query($c: String) { books(last: 100, before: $c) { edges { node { upc } } "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
    )
    pages = 0
    while True:
        connection = (await gql.data(query, {"c": cursor}))["books"]
        page = [edge["node"]["upc"] for edge in connection["edges"]]
        info = connection["pageInfo"]
        pages += 1
        if forward:
            titles.extend(page)
            more, cursor = info["hasNextPage"], info["endCursor"]
        else:
            titles[:0] = page
            more, cursor = info["hasPreviousPage"], info["startCursor"]
        if not more:
            break
    assert pages == 10
    return titles


async def test_walking_forward_and_backward_sees_every_book_once(gql: GraphQLClient) -> None:
    forward = await _walk(gql, forward=True)
    backward = await _walk(gql, forward=False)
    expected = [book["upc"] for book in snapshot_books()]
    assert forward == expected
    assert backward == expected


async def test_page_info_at_the_edges(gql: GraphQLClient) -> None:
    data = await gql.data("{ books(first: 2) { pageInfo { hasNextPage hasPreviousPage } } }")
    assert data["books"]["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False}
    data = await gql.data(
        "{ books(last: 2) { edges { node { upc } } pageInfo { hasNextPage hasPreviousPage } } }"
    )
    assert data["books"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    assert [e["node"]["upc"] for e in data["books"]["edges"]] == [
        book["upc"] for book in snapshot_books()[-2:]
    ]
    data = await gql.data(
        "{ books(first: 0) { edges { cursor } pageInfo { hasNextPage endCursor } } }"
    )
    assert data["books"] == {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("first: -1", "must not be negative"),
        ("first: 1000", "capped at 100"),
        ("last: 101", "capped at 100"),
        ('first: 5, after: "bm9wZQ"', "not a cursor of this list"),
        ('first: 5, after: "%%%"', "not a valid cursor"),
        ("first: 1, last: 1", "not both"),
        ('first: 1, before: "x"', "goes with `last`"),
    ],
)
async def test_bad_page_arguments(gql: GraphQLClient, arguments: str, message: str) -> None:
    body = await gql.execute(f"{{ books({arguments}) {{ totalCount }} }}")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert message in body["errors"][0]["message"]
    assert body["data"] is None


async def test_book_by_upc_by_id_and_by_node(gql: GraphQLClient) -> None:
    by_upc = (await gql.data('{ book(upc: "a897fe39b1053632") { id title } }'))["book"]
    assert by_upc["title"] == "A Light in the Attic"
    assert base64.urlsafe_b64decode(by_upc["id"] + "==").decode() == "Book:a897fe39b1053632"
    by_id = await gql.data("query($id: ID!) { book(id: $id) { title } }", {"id": by_upc["id"]})
    assert by_id["book"]["title"] == "A Light in the Attic"
    node = await gql.data(
        "query($id: ID!) { node(id: $id) { __typename id ... on Book { upc } } }",
        {"id": by_upc["id"]},
    )
    assert node["node"] == {"__typename": "Book", "id": by_upc["id"], "upc": "a897fe39b1053632"}
    assert (await gql.data('{ book(upc: "no-such-upc") { title } }'))["book"] is None


async def test_book_argument_errors(gql: GraphQLClient) -> None:
    both = await gql.execute('{ book(upc: "a897fe39b1053632", id: "x") { title } }')
    assert error_codes(both) == ["BAD_USER_INPUT"]
    neither = await gql.execute("{ book { title } }")
    assert error_codes(neither) == ["BAD_USER_INPUT"]
    category = (await gql.data('{ category(slug: "poetry") { id } }'))["category"]["id"]
    wrong_type = await gql.execute(f'{{ book(id: "{category}") {{ title }} }}')
    assert error_codes(wrong_type) == ["BAD_USER_INPUT"]
    assert "not of a Book" in wrong_type["errors"][0]["message"]
    garbage = await gql.execute('{ node(id: "!!!") { id } }')
    assert error_codes(garbage) == ["BAD_USER_INPUT"]


async def test_categories(gql: GraphQLClient) -> None:
    data = await gql.data("{ categories { id name slug bookCount } }")
    categories = data["categories"]
    counts: dict[str, int] = {}
    for book in snapshot_books():
        counts[book["category"]] = counts.get(book["category"], 0) + 1
    assert len(categories) == 50
    assert {c["name"]: c["bookCount"] for c in categories} == counts
    assert [c["name"] for c in categories] == sorted(counts)
    by_slug = {c["slug"]: c for c in categories}
    assert by_slug["historical-fiction"]["name"] == "Historical Fiction"
    assert by_slug["add-a-comment"]["bookCount"] == 67
    one = await gql.data(
        "query($id: ID!) { category(id: $id) { name } node(id: $id) { ... on Category { slug } } }",
        {"id": by_slug["travel"]["id"]},
    )
    assert one == {"category": {"name": "Travel"}, "node": {"slug": "travel"}}
    assert (await gql.data('{ category(slug: "nope") { name } }'))["category"] is None


async def test_books_without_description(gql: GraphQLClient) -> None:
    missing = [book for book in snapshot_books() if book["description"] is None]
    assert len(missing) == 2
    for book in missing:
        data = await gql.data(f'{{ book(upc: "{book["upc"]}") {{ title description }} }}')
        assert data["book"] == {"title": book["title"], "description": None}
