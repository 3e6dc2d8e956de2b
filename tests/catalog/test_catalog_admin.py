"""Administrators' catalogue writes on both databases: permissions, validation, history."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bookql.catalog.store import mark_unseen_removed
from bookql.db.engine import async_write_transaction, create_async_db_engine
from bookql.db.types import utcnow
from tests.conftest import ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session

BOOK = """id upc title productType price priceExclTax priceInclTax tax currency availability
    inStock rating numReviews description imageUrl productUrl removedAt
    category { name slug } priceHistory { price priceExclTax tax availability observedAt }"""
CREATE_BOOK = f"""mutation($input: CreateBookInput!) {{
    createBook(input: $input) {{ book {{ {BOOK} }} }} }}"""
UPDATE_BOOK = f"""mutation($input: UpdateBookInput!) {{
    updateBook(input: $input) {{ book {{ {BOOK} }} }} }}"""
DELETE_BOOK = f"""mutation($id: ID!) {{ deleteBook(input: {{id: $id}}) {{ book {{ {BOOK} }} }} }}"""
CREATE_CATEGORY = """mutation($input: CreateCategoryInput!) {
    createCategory(input: $input) { category { id name slug bookCount } } }"""
UPDATE_CATEGORY = """mutation($input: UpdateCategoryInput!) {
    updateCategory(input: $input) { category { id name slug bookCount } } }"""
GET_BOOK = f"query($upc: String!) {{ book(upc: $upc) {{ {BOOK} }} }}"


def global_id(type_name: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def new_book(**overrides: Any) -> dict[str, Any]:
    return {
        "upc": "test-0001",
        "title": "The Test Book",
        "priceExclTax": 12.5,
        "availability": 3,
        "rating": 4,
        "category": "poetry",
        **overrides,
    }


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    """An administrator on an empty catalogue holding the categories Poetry and Travel."""
    async with admin_session(empty_db, seeded=False) as client:
        for name in ("Poetry", "Travel"):
            await client.admin(CREATE_CATEGORY, {"input": {"name": name}})
        yield client


async def create(client: AdminClient, **overrides: Any) -> dict[str, Any]:
    data = await client.admin(CREATE_BOOK, {"input": new_book(**overrides)})
    book: dict[str, Any] = data["createBook"]["book"]
    return book


async def update(client: AdminClient, book_id: str, **changes: Any) -> dict[str, Any]:
    data = await client.admin(UPDATE_BOOK, {"input": {"id": book_id, **changes}})
    book: dict[str, Any] = data["updateBook"]["book"]
    return book


async def stored(client: AdminClient, upc: str = "test-0001") -> dict[str, Any] | None:
    book: dict[str, Any] | None = (await client.data(GET_BOOK, {"upc": upc}))["book"]
    return book


async def test_create_book(client: AdminClient) -> None:
    book = await create(
        client,
        tax=2.5,
        description="A book about tests.",
        numReviews=7,
        productType="Hardback",
        imageUrl="https://example.com/cover.jpg",
        productUrl="http://example.com/book",
        category="Travel",  # by name
    )
    assert book == {
        "id": global_id("Book", "test-0001"),
        "upc": "test-0001",
        "title": "The Test Book",
        "productType": "Hardback",
        "price": 15.0,
        "priceExclTax": 12.5,
        "priceInclTax": 15.0,
        "tax": 2.5,
        "currency": "GBP",
        "availability": 3,
        "inStock": True,
        "rating": 4,
        "numReviews": 7,
        "description": "A book about tests.",
        "imageUrl": "https://example.com/cover.jpg",
        "productUrl": "http://example.com/book",
        "removedAt": None,
        "category": {"name": "Travel", "slug": "travel"},
        "priceHistory": [
            {
                "price": 15.0,
                "priceExclTax": 12.5,
                "tax": 2.5,
                "availability": 3,
                "observedAt": book["priceHistory"][0]["observedAt"],
            }
        ],
    }
    assert await stored(client) == book
    listed = await client.data("{ books { totalCount edges { node { upc } } } }")
    assert listed["books"] == {"totalCount": 1, "edges": [{"node": {"upc": "test-0001"}}]}


async def test_create_book_defaults(client: AdminClient) -> None:
    book = await create(client, availability=0, title="  Padded Title  ")
    assert book["title"] == "Padded Title"
    assert book["tax"] == 0.0 and book["price"] == book["priceExclTax"] == 12.5
    assert book["productType"] == "Books" and book["currency"] == "GBP"
    assert book["numReviews"] == 0 and book["description"] is None
    assert book["imageUrl"] == "" and book["productUrl"] == ""
    assert book["inStock"] is False
    assert book["category"] == {"name": "Poetry", "slug": "poetry"}
    explicit = await create(client, upc="test-0002", tax=1.0, priceInclTax=13.5)
    assert explicit["price"] == 13.5


async def test_a_complete_crawl_never_retires_a_book_an_administrator_created(
    client: AdminClient, empty_db: ScratchDatabase
) -> None:
    await create(client)
    engine = create_async_db_engine(empty_db.settings())
    try:
        async with async_write_transaction(engine) as conn:
            later = utcnow() + timedelta(seconds=1)
            assert await mark_unseen_removed(conn, later, later) == 0
            source = (await conn.execute(text("SELECT source FROM books"))).scalar_one()
    finally:
        await engine.dispose()
    assert source == "admin"
    book = await stored(client)
    assert book is not None and book["removedAt"] is None


ALL_MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    (CREATE_BOOK, {"input": new_book(upc="nope")}),
    (UPDATE_BOOK, {"input": {"id": global_id("Book", "test-0001"), "rating": 1}}),
    (DELETE_BOOK, {"id": global_id("Book", "test-0001")}),
    (CREATE_CATEGORY, {"input": {"name": "Forbidden Fruit"}}),
    (UPDATE_CATEGORY, {"input": {"id": global_id("Category", 1), "name": "Renamed"}}),
]


async def test_only_administrators_write(client: AdminClient) -> None:
    before = await create(client)
    for mutation, variables in ALL_MUTATIONS:
        anonymous = await client.execute(mutation, variables)
        assert error_codes(anonymous) == ["UNAUTHENTICATED"], mutation
        assert anonymous["data"] is None
        user = await client.execute(mutation, variables, token=client.user_token)
        assert error_codes(user) == ["FORBIDDEN"], mutation
        assert user["data"] is None
    assert await stored(client) == before
    assert await stored(client, "nope") is None
    names = (await client.data("{ categories { name } }"))["categories"]
    assert [c["name"] for c in names] == ["Poetry", "Travel"]


BAD_NEW_BOOKS: list[tuple[dict[str, Any], str]] = [
    ({"rating": 0}, "rating"),
    ({"rating": 6}, "rating"),
    ({"priceExclTax": -1.0}, "priceExclTax"),
    ({"priceExclTax": 12.345}, "priceExclTax"),  # a fraction of a penny
    ({"priceExclTax": 1e12}, "priceExclTax"),  # more than the price column holds
    ({"tax": -0.5}, "tax"),
    ({"priceInclTax": -1.0}, "priceInclTax"),
    ({"priceInclTax": 12.51}, "priceInclTax"),  # not priceExclTax + tax
    ({"tax": 1.0, "priceInclTax": 12.5}, "priceInclTax"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 1001}, "title"),
    ({"imageUrl": "ftp://example.com/x.jpg"}, "imageUrl"),
    ({"productUrl": "not a url"}, "productUrl"),
    ({"productUrl": "https://"}, "productUrl"),
    ({"availability": -1}, "availability"),
    ({"numReviews": -1}, "numReviews"),
    ({"currency": "gbp"}, "currency"),
    ({"productType": " "}, "productType"),
    ({"upc": "has space"}, "upc"),
    ({"upc": ""}, "upc"),
    ({"category": "No Such Shelf"}, "category"),
]


async def test_create_book_is_validated(client: AdminClient) -> None:
    for overrides, field in BAD_NEW_BOOKS:
        body = await client.execute(
            CREATE_BOOK, {"input": new_book(**overrides)}, token=client.admin_token
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], overrides
        assert body["errors"][0]["extensions"]["field"] == field, overrides
        assert body["data"] is None
    assert await stored(client) is None
    assert (await client.data("{ books { totalCount } }"))["books"]["totalCount"] == 0


BAD_CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"rating": 0}, "rating"),
    ({"rating": 7}, "rating"),
    ({"priceExclTax": -0.01}, "priceExclTax"),
    ({"priceExclTax": 1.005}, "priceExclTax"),
    ({"tax": -1.0}, "tax"),
    ({"priceInclTax": 20.0}, "priceInclTax"),  # the stored excl 12.50 + tax 0 is 12.50
    ({"priceExclTax": 10.0, "priceInclTax": 12.5}, "priceInclTax"),
    ({"title": ""}, "title"),
    ({"title": " \t "}, "title"),
    ({"imageUrl": "javascript:alert(1)"}, "imageUrl"),
    ({"productUrl": "example.com"}, "productUrl"),
    ({"availability": -3}, "availability"),
    ({"category": "nowhere"}, "category"),
]


async def test_update_book_is_validated(client: AdminClient) -> None:
    before = await create(client)
    for changes, field in BAD_CHANGES:
        body = await client.execute(
            UPDATE_BOOK, {"input": {"id": before["id"], **changes}}, token=client.admin_token
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], changes
        assert body["errors"][0]["extensions"]["field"] == field, changes
        assert await stored(client) == before  # nothing changed, no price point added


async def test_ids_of_the_wrong_type_are_refused(client: AdminClient) -> None:
    book = await create(client)
    category_id = global_id("Category", 1)
    wrong = await client.execute(
        UPDATE_BOOK, {"input": {"id": category_id, "rating": 1}}, token=client.admin_token
    )
    assert error_codes(wrong) == ["BAD_USER_INPUT"]
    wrong = await client.execute(DELETE_BOOK, {"id": category_id}, token=client.admin_token)
    assert error_codes(wrong) == ["BAD_USER_INPUT"]
    wrong = await client.execute(
        UPDATE_CATEGORY, {"input": {"id": book["id"], "name": "X"}}, token=client.admin_token
    )
    assert error_codes(wrong) == ["BAD_USER_INPUT"]
    assert await stored(client) == book


async def test_unknown_ids_are_not_found(client: AdminClient) -> None:
    missing_book = global_id("Book", "no-such-upc")
    attempts: list[tuple[str, dict[str, Any]]] = [
        (UPDATE_BOOK, {"input": {"id": missing_book, "rating": 2}}),
        (UPDATE_BOOK, {"input": {"id": missing_book}}),
        (DELETE_BOOK, {"id": missing_book}),
        (UPDATE_CATEGORY, {"input": {"id": global_id("Category", 9999), "name": "Ghost"}}),
        (UPDATE_CATEGORY, {"input": {"id": global_id("Category", 9999)}}),
        (UPDATE_CATEGORY, {"input": {"id": global_id("Category", "poetry"), "name": "G"}}),
    ]
    for mutation, variables in attempts:
        body = await client.execute(mutation, variables, token=client.admin_token)
        assert error_codes(body) == ["NOT_FOUND"], variables
        assert body["data"] is None
    names = (await client.data("{ categories { name } }"))["categories"]
    assert [c["name"] for c in names] == ["Poetry", "Travel"]


async def test_duplicates_conflict(client: AdminClient) -> None:
    first = await create(client)
    again = await client.execute(
        CREATE_BOOK, {"input": new_book(title="Another")}, token=client.admin_token
    )
    assert error_codes(again) == ["CONFLICT"]
    assert again["errors"][0]["extensions"]["field"] == "upc"
    assert await stored(client) == first
    for category in [
        {"name": "Poetry"},  # the same name
        {"name": "Poetry", "slug": "verse"},  # the same name, another slug
        {"name": "Verse", "slug": "poetry"},  # another name, the same slug
        {"name": "POETRY!"},  # its slug would be poetry's
    ]:
        body = await client.execute(CREATE_CATEGORY, {"input": category}, token=client.admin_token)
        assert error_codes(body) == ["CONFLICT"], category
    travel = (await client.data('{ category(slug: "travel") { id } }'))["category"]["id"]
    for change in [{"name": "Poetry"}, {"slug": "poetry"}]:
        body = await client.execute(
            UPDATE_CATEGORY, {"input": {"id": travel, **change}}, token=client.admin_token
        )
        assert error_codes(body) == ["CONFLICT"], change
    names = (await client.data("{ categories { name slug } }"))["categories"]
    assert names == [{"name": "Poetry", "slug": "poetry"}, {"name": "Travel", "slug": "travel"}]


async def test_categories(client: AdminClient) -> None:
    made = await client.admin(CREATE_CATEGORY, {"input": {"name": "  Science Fiction & Fantasy "}})
    category = made["createCategory"]["category"]
    assert category["name"] == "Science Fiction & Fantasy"
    assert category["slug"] == "science-fiction-fantasy"
    assert category["bookCount"] == 0
    explicit = await client.admin(
        CREATE_CATEGORY, {"input": {"name": "Crime", "slug": "true-crime"}}
    )
    crime = explicit["createCategory"]["category"]
    assert crime["slug"] == "true-crime"
    await create(client, category="true-crime")
    renamed = await client.admin(
        UPDATE_CATEGORY, {"input": {"id": crime["id"], "name": "Crime Stories"}}
    )
    assert renamed["updateCategory"]["category"] == {
        "id": crime["id"],
        "name": "Crime Stories",
        "slug": "true-crime",  # a rename keeps the slug (links stay valid)
        "bookCount": 1,
    }
    reslugged = await client.admin(UPDATE_CATEGORY, {"input": {"id": crime["id"], "slug": "crime"}})
    assert reslugged["updateCategory"]["category"]["slug"] == "crime"
    unchanged = await client.admin(UPDATE_CATEGORY, {"input": {"id": crime["id"]}})
    assert unchanged["updateCategory"]["category"]["name"] == "Crime Stories"
    found = await client.data('{ category(slug: "crime") { name } }')
    assert found["category"] == {"name": "Crime Stories"}
    assert (await client.data('{ category(slug: "true-crime") { name } }'))["category"] is None
    by_name = await client.data(
        '{ books(filter: {category: "Crime Stories"}) '
        "{ edges { node { upc category { slug } } } } }"
    )
    assert by_name["books"]["edges"] == [
        {"node": {"upc": "test-0001", "category": {"slug": "crime"}}}
    ]
    for bad in [
        {"name": ""},
        {"name": "   "},
        {"name": "!!!"},
        {"name": "Ok", "slug": "Not A Slug"},
    ]:
        body = await client.execute(CREATE_CATEGORY, {"input": bad}, token=client.admin_token)
        assert error_codes(body) == ["BAD_USER_INPUT"], bad
    for bad in [{"name": " "}, {"slug": "UPPER"}, {"slug": "trailing-"}]:
        body = await client.execute(
            UPDATE_CATEGORY, {"input": {"id": crime["id"], **bad}}, token=client.admin_token
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], bad


def points(book: dict[str, Any]) -> list[tuple[float, int]]:
    return [(p["price"], p["availability"]) for p in book["priceHistory"]]


@pytest.mark.slow
async def test_price_and_stock_changes_add_price_points(client: AdminClient) -> None:
    book = await create(client)
    book_id = book["id"]
    assert points(book) == [(12.5, 3)]
    book = await update(client, book_id, priceExclTax=14.0)
    assert book["price"] == 14.0
    assert points(book) == [(14.0, 3), (12.5, 3)]  # newest first
    book = await update(client, book_id, availability=0)
    assert book["inStock"] is False
    assert points(book) == [(14.0, 0), (14.0, 3), (12.5, 3)]
    book = await update(client, book_id, tax=1.5)  # the shown price follows: 14.00 + 1.50
    assert (book["priceExclTax"], book["tax"], book["priceInclTax"]) == (14.0, 1.5, 15.5)
    assert points(book) == [(15.5, 0), (14.0, 0), (14.0, 3), (12.5, 3)]
    assert book["priceHistory"][0]["tax"] == 1.5
    book = await update(client, book_id, priceExclTax=10.0, priceInclTax=11.5)
    assert points(book)[0] == (11.5, 0)
    observed = [p["observedAt"] for p in book["priceHistory"]]
    assert observed == sorted(observed, reverse=True)
    history = book["priceHistory"]
    # neither other fields nor an unchanged price or stock add a point
    unpriced: list[dict[str, Any]] = [
        {"title": "Renamed"},
        {"rating": 1},
        {"numReviews": 4},
        {"description": "New words."},
        {"category": "travel"},
        {"imageUrl": "https://example.com/new.jpg"},
        {"productType": "Paperback"},
        {"priceExclTax": 10.0},
        {"availability": 0},
        {"tax": 1.5, "priceInclTax": 11.5},
        {},
    ]
    for changes in unpriced:
        book = await update(client, book_id, **changes)
        assert book["priceHistory"] == history, changes
    assert book["title"] == "Renamed" and book["rating"] == 1 and book["numReviews"] == 4
    assert book["category"]["slug"] == "travel" and book["productType"] == "Paperback"
    limited = await client.data('{ book(upc: "test-0001") { priceHistory(first: 2) { price } } }')
    assert limited["book"]["priceHistory"] == [{"price": 11.5}, {"price": 15.5}]
    for first in (0, 101):
        body = await client.execute(
            f'{{ book(upc: "test-0001") {{ priceHistory(first: {first}) {{ price }} }} }}'
        )
        assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_description_set_changed_and_cleared(client: AdminClient) -> None:
    book = await create(client)
    assert book["description"] is None
    book = await update(client, book["id"], description="First words.")
    assert book["description"] == "First words."
    book = await update(client, book["id"], description="Second words.")
    assert book["description"] == "Second words."
    book = await update(client, book["id"], rating=2)  # not given: left alone
    assert book["description"] == "Second words."
    book = await update(client, book["id"], description=None)  # given as null: cleared
    assert book["description"] is None
    assert (await stored(client)) == book
    book = await update(client, book["id"], description=None)  # clearing twice is fine
    assert book["description"] is None
    with_text = await create(client, upc="test-0002", description="Born with words.")
    assert with_text["description"] == "Born with words."
    cleared = await update(client, with_text["id"], description=None)
    assert cleared["description"] is None


async def test_delete_marks_the_book_removed(client: AdminClient) -> None:
    keep = await create(client, upc="keep-me")
    book = await create(client, title="Doomed", description="Soon gone.")
    deleted = (await client.admin(DELETE_BOOK, {"id": book["id"]}))["deleteBook"]["book"]
    assert deleted["removedAt"] is not None
    assert {k: v for k, v in deleted.items() if k != "removedAt"} == {
        k: v for k, v in book.items() if k != "removedAt"
    }
    # gone from every list and count, but still there by UPC and by id, history intact
    listed = await client.data(
        """{ books { totalCount edges { node { upc } } }
             t: books(filter: {titleContains: "Doomed"}) { totalCount }
             categories { slug bookCount books { totalCount edges { node { upc } } } } }"""
    )
    assert listed["books"] == {"totalCount": 1, "edges": [{"node": {"upc": keep["upc"]}}]}
    assert listed["t"] == {"totalCount": 0}
    poetry = next(c for c in listed["categories"] if c["slug"] == "poetry")
    assert poetry["bookCount"] == 1
    assert poetry["books"] == {"totalCount": 1, "edges": [{"node": {"upc": keep["upc"]}}]}
    assert await stored(client) == deleted
    by_id = await client.data("query($id: ID!) { book(id: $id) { removedAt } }", {"id": book["id"]})
    assert by_id["book"]["removedAt"] == deleted["removedAt"]
    again = (await client.admin(DELETE_BOOK, {"id": book["id"]}))["deleteBook"]["book"]
    assert again["removedAt"] == deleted["removedAt"]  # deleting twice keeps the first time
    recreate = await client.execute(CREATE_BOOK, {"input": new_book()}, token=client.admin_token)
    assert error_codes(recreate) == ["CONFLICT"]  # the UPC still belongs to the removed book
