"""``books`` and ``Category.books`` on both databases: filters, orders, keyset pages.

Expected lists are computed here from the snapshot file: a book's id is its position in
the snapshot (the seed inserts in that order), and every order ends with the id, ascending.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from bookql.catalog.tables import books as book_rows
from bookql.db.engine import create_sync_engine
from tests.conftest import GraphQLClient, ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

Book = dict[str, Any]
Order = list[dict[str, str]]

BOOKS = """query($filter: BookFilter, $orderBy: [BookOrder!], $first: Int, $after: String,
                 $last: Int, $before: String) {
  books(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last,
        before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { upc price } }
  }
}"""

SORT_KEYS: dict[str, Callable[[Book], Any]] = {
    "PRICE": lambda b: Decimal(str(b["price_incl_tax"])),
    "RATING": lambda b: b["rating"],
    "TITLE": lambda b: b["title"],
    "AVAILABILITY": lambda b: b["availability_count"],
}


def pence(amount: float) -> int:
    return int(Decimal(str(amount)) * 100)


def upcs(books: Iterable[Book]) -> list[str]:
    return [book["upc"] for book in books]


def ordered(books: Sequence[Book], order: Order) -> list[Book]:
    """``books`` (given in id order) sorted by ``order``, ties broken by ascending id.

    Stable sorts from the last key to the first; ``reverse`` keeps ties in their order.
    """
    result = list(books)
    for part in reversed(order):
        result.sort(key=SORT_KEYS[part["field"]], reverse=part["direction"] == "DESC")
    return result


def where(predicate: Callable[[Book], bool]) -> list[Book]:
    return [book for book in snapshot_books() if predicate(book)]


def order(*parts: str) -> Order:
    """``order("PRICE:ASC", "TITLE:DESC")`` as the ``orderBy`` argument."""
    return [
        {"field": field, "direction": direction}
        for field, direction in (part.split(":") for part in parts)
    ]


async def page(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await gql.data(BOOKS, variables))["books"]
    return connection


async def walk(
    gql: GraphQLClient, *, forward: bool = True, size: int = 100, **variables: Any
) -> tuple[int, list[str]]:
    """Every book of a listing, page by page (backwards: from the end), and its count."""
    seen: list[str] = []
    cursor: str | None = None
    totals: set[int] = set()
    while True:
        if forward:
            connection = await page(gql, first=size, after=cursor, **variables)
        else:
            connection = await page(gql, last=size, before=cursor, **variables)
        totals.add(connection["totalCount"])
        found = [edge["node"]["upc"] for edge in connection["edges"]]
        info = connection["pageInfo"]
        if found:
            assert info["startCursor"] == connection["edges"][0]["cursor"]
            assert info["endCursor"] == connection["edges"][-1]["cursor"]
        if forward:
            seen.extend(found)
            more, cursor = info["hasNextPage"], info["endCursor"]
        else:
            seen[:0] = found
            more, cursor = info["hasPreviousPage"], info["startCursor"]
        if not more:
            break
        assert len(found) == size
    assert len(totals) == 1, totals
    assert len(seen) == len(set(seen)), "a book was listed twice"
    return totals.pop(), seen


PRICE = 44.18  # what three books cost: inclusive bounds must keep all three


FILTERS: list[tuple[dict[str, Any], Callable[[Book], bool]]] = [
    ({"category": "poetry"}, lambda b: b["category"] == "Poetry"),
    ({"category": "Poetry"}, lambda b: b["category"] == "Poetry"),
    ({"category": "historical fiction"}, lambda b: b["category"] == "Historical Fiction"),
    ({"category": "Historical Fiction"}, lambda b: b["category"] == "Historical Fiction"),
    ({"category": "historical-fiction"}, lambda b: b["category"] == "Historical Fiction"),
    ({"priceMin": PRICE}, lambda b: pence(b["price"]) >= pence(PRICE)),
    ({"priceMax": PRICE}, lambda b: pence(b["price"]) <= pence(PRICE)),
    ({"priceMin": PRICE, "priceMax": PRICE}, lambda b: b["price"] == PRICE),
    ({"priceMin": 20, "priceMax": 20.5}, lambda b: 2000 <= pence(b["price"]) <= 2050),
    ({"priceMin": 10.0}, lambda b: True),  # the cheapest book costs exactly 10.00
    ({"priceMax": 10.0}, lambda b: pence(b["price"]) == 1000),
    ({"priceMin": 59.99}, lambda b: pence(b["price"]) == 5999),
    ({"priceMin": 60}, lambda b: False),
    ({"ratingMin": 4}, lambda b: b["rating"] >= 4),
    ({"ratingMax": 2}, lambda b: b["rating"] <= 2),
    ({"ratingMin": 3, "ratingMax": 3}, lambda b: b["rating"] == 3),
    ({"ratingMin": 1, "ratingMax": 5}, lambda b: True),
    ({"inStock": True}, lambda b: b["availability_count"] > 0),
    ({"inStock": False}, lambda b: b["availability_count"] == 0),
    ({"titleContains": "the"}, lambda b: "the" in b["title"].lower()),
    ({"titleContains": "THE LIGHT"}, lambda b: "the light" in b["title"].lower()),
    ({"titleContains": "%"}, lambda b: "%" in b["title"]),  # literal, not "anything"
    ({"titleContains": "10%"}, lambda b: "10%" in b["title"]),
    ({"titleContains": "_"}, lambda b: "_" in b["title"]),  # literal, not "any character"
    ({"titleContains": "a_b"}, lambda b: "a_b" in b["title"].lower()),
    ({"titleContains": "\\"}, lambda b: "\\" in b["title"]),
    ({"titleContains": ""}, lambda b: True),
    (
        {"category": "Fiction", "ratingMin": 4, "priceMax": 30, "titleContains": "a"},
        lambda b: (
            b["category"] == "Fiction"
            and b["rating"] >= 4
            and pence(b["price"]) <= 3000
            and "a" in b["title"].lower()
        ),
    ),
]


async def test_every_filter(gql: GraphQLClient) -> None:
    for book_filter, predicate in FILTERS:
        expected = upcs(where(predicate))
        total, seen = await walk(gql, filter=book_filter)
        assert total == len(expected), book_filter
        assert seen == expected, book_filter
    # sanity of the data the filters above rely on
    assert len(where(lambda b: b["price"] == PRICE)) == 3
    assert len(where(lambda b: "%" in b["title"])) == 2
    assert not where(lambda b: "_" in b["title"])


@pytest.mark.parametrize(
    ("book_filter", "field"),
    [
        ({"category": "No Such Category"}, "category"),
        ({"category": ""}, "category"),
        ({"category": "poetry "}, "category"),
        ({"priceMin": 30, "priceMax": 20}, "priceMin"),
        ({"priceMin": -1}, "priceMin"),
        ({"priceMax": -0.01}, "priceMax"),
        ({"priceMin": 1.005}, "priceMin"),
        ({"priceMax": 20.001}, "priceMax"),
        ({"priceMax": 1e20}, "priceMax"),
        ({"priceMin": 1e300}, "priceMin"),
        ({"ratingMin": 0}, "ratingMin"),
        ({"ratingMax": 6}, "ratingMax"),
        ({"ratingMin": 6}, "ratingMin"),
        ({"ratingMax": 0}, "ratingMax"),
        ({"ratingMin": 4, "ratingMax": 3}, "ratingMin"),
    ],
)
async def test_invalid_filters(gql: GraphQLClient, book_filter: dict[str, Any], field: str) -> None:
    body = await gql.execute(BOOKS, {"filter": book_filter, "first": 5})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"].get("field") == field
    assert body["data"] is None


@pytest.mark.parametrize("field", ["PRICE", "RATING", "TITLE", "AVAILABILITY"])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_each_order(gql: GraphQLClient, field: str, direction: str) -> None:
    by = order(f"{field}:{direction}")
    total, seen = await walk(gql, orderBy=by)
    assert total == 1000
    assert seen == upcs(ordered(snapshot_books(), by))


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_last_seen_order_falls_back_on_the_id(gql: GraphQLClient, direction: str) -> None:
    """The seed stamps every book with one time, so the id decides the whole order."""
    total, seen = await walk(gql, orderBy=order(f"LAST_SEEN_AT:{direction}"))
    assert total == 1000
    assert seen == upcs(snapshot_books())


@pytest.mark.parametrize(
    "parts",
    [
        ("RATING:DESC", "PRICE:ASC"),
        ("AVAILABILITY:ASC", "TITLE:DESC"),
        ("RATING:ASC", "AVAILABILITY:DESC", "PRICE:DESC"),
        ("PRICE:DESC", "RATING:ASC", "TITLE:ASC", "AVAILABILITY:DESC", "LAST_SEEN_AT:ASC"),
    ],
)
async def test_compound_orders(gql: GraphQLClient, parts: tuple[str, ...]) -> None:
    by = order(*parts)
    sortable = [p for p in by if p["field"] != "LAST_SEEN_AT"]  # one time for every book
    expected = upcs(ordered(snapshot_books(), sortable))
    total, seen = await walk(gql, orderBy=by)
    assert total == 1000
    assert seen == expected


async def test_orders_with_filters(gql: GraphQLClient) -> None:
    by = order("PRICE:DESC")
    total, seen = await walk(
        gql, size=5, orderBy=by, filter={"ratingMin": 4, "category": "Mystery"}
    )
    expected = ordered(where(lambda b: b["rating"] >= 4 and b["category"] == "Mystery"), by)
    assert total == len(expected) and seen == upcs(expected)
    assert len(expected) > 10  # three pages


@pytest.mark.parametrize(
    "parts",
    [("PRICE:ASC", "PRICE:DESC"), ("RATING:ASC", "TITLE:ASC", "RATING:ASC"), ("RELEVANCE:DESC",)],
)
async def test_invalid_orders(gql: GraphQLClient, parts: tuple[str, ...]) -> None:
    body = await gql.execute(BOOKS, {"orderBy": order(*parts), "first": 5})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["argument"] == "orderBy"
    assert body["data"] is None


async def test_walking_both_ways_under_a_compound_order(gql: GraphQLClient) -> None:
    by = order("RATING:DESC", "AVAILABILITY:ASC", "TITLE:ASC")
    expected = upcs(ordered(snapshot_books(), by))
    forward_total, forward = await walk(gql, orderBy=by)
    backward_total, backward = await walk(gql, orderBy=by, forward=False)
    assert forward_total == backward_total == 1000
    assert forward == expected
    assert backward == expected
    # pages of an awkward size line up too
    assert (await walk(gql, orderBy=by, size=37))[1] == expected
    assert (await walk(gql, orderBy=by, size=37, forward=False))[1] == expected


async def test_page_info_in_the_middle(gql: GraphQLClient) -> None:
    by = order("PRICE:ASC")
    expected = upcs(ordered(snapshot_books(), by))
    first = await page(gql, first=10, orderBy=by)
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    middle = await page(gql, first=10, after=first["pageInfo"]["endCursor"], orderBy=by)
    assert [e["node"]["upc"] for e in middle["edges"]] == expected[10:20]
    assert middle["pageInfo"]["hasPreviousPage"] is True
    back = await page(gql, last=10, before=middle["pageInfo"]["startCursor"], orderBy=by)
    assert [e["node"]["upc"] for e in back["edges"]] == expected[:10]
    assert back["pageInfo"]["hasPreviousPage"] is False
    assert back["pageInfo"]["hasNextPage"] is True
    # a cursor is a position: after the 15th book come the 16th onwards
    fifteenth = middle["edges"][4]["cursor"]
    after = await page(gql, first=3, after=fifteenth, orderBy=by)
    assert [e["node"]["upc"] for e in after["edges"]] == expected[15:18]
    before = await page(gql, last=3, before=fifteenth, orderBy=by)
    assert [e["node"]["upc"] for e in before["edges"]] == expected[11:14]


def forged(*payload: Any) -> str:
    """A cursor as a client could make one: base64url of a JSON list."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_cursors_do_not_cross_orderings(gql: GraphQLClient) -> None:
    price_asc = await page(gql, first=3, orderBy=order("PRICE:ASC"))
    cursor = price_asc["pageInfo"]["endCursor"]
    site = (await page(gql, first=3))["pageInfo"]["endCursor"]
    for variables in [
        {"first": 3, "after": cursor, "orderBy": order("PRICE:DESC")},
        {"last": 3, "before": cursor, "orderBy": order("RATING:ASC")},
        {"first": 3, "after": cursor, "orderBy": order("PRICE:ASC", "TITLE:ASC")},
        {"first": 3, "after": cursor},
        {"first": 3, "after": site, "orderBy": order("TITLE:ASC")},
    ]:
        body = await gql.execute(BOOKS, variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], variables
        assert "not a cursor of this list" in body["errors"][0]["message"]
    # the same ordering under another filter is still the same list of positions
    same = await page(gql, first=3, after=cursor, orderBy=order("PRICE:ASC"))
    assert len(same["edges"]) == 3


@pytest.mark.parametrize(
    ("by", "payload"),
    [
        ([], ("site", None)),
        ([], ("site", True)),
        ([], ("site", 1.5)),
        ([], ("site", 2**40)),  # beyond a 32-bit id
        ([], ("site", "1")),
        ([], ("site", [1])),
        ([], ("site",)),
        ([], ("site", 1, 2)),
        (["PRICE:ASC"], ("PRICE:ASC", 10**30, 5)),
        (["PRICE:ASC"], ("PRICE:ASC", 2**40, 5)),
        (["PRICE:ASC"], ("PRICE:ASC", None, 5)),
        (["TITLE:ASC"], ("TITLE:ASC", 42, 5)),
        (["TITLE:ASC"], ("TITLE:ASC", "a\u0000b", 5)),  # PostgreSQL text holds no NUL
        (["LAST_SEEN_AT:ASC"], ("LAST_SEEN_AT:ASC", "2020-01-01T00:00:00", 5)),  # naive
        (["LAST_SEEN_AT:ASC"], ("LAST_SEEN_AT:ASC", "yesterday", 5)),
        (["LAST_SEEN_AT:ASC"], ("LAST_SEEN_AT:ASC", 1700000000, 5)),
    ],
)
async def test_forged_cursors_are_refused(
    gql: GraphQLClient, by: list[str], payload: tuple[Any, ...]
) -> None:
    body = await gql.execute(BOOKS, {"first": 2, "after": forged(*payload), "orderBy": order(*by)})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_a_well_formed_forged_cursor_is_a_position(gql: GraphQLClient) -> None:
    """A cursor only holds sort values: any values of the right types are a place to start."""
    by = order("PRICE:ASC")
    expected = ordered(snapshot_books(), by)
    body = await page(gql, first=3, after=forged("PRICE:ASC", 3000, 0), orderBy=by)
    assert [e["node"]["upc"] for e in body["edges"]] == upcs(
        [b for b in expected if pence(b["price"]) >= 3000][:3]
    )
    moment = forged("LAST_SEEN_AT:DESC", "2000-01-01T00:00:00+00:00", 0)
    body = await page(gql, first=3, after=moment, orderBy=order("LAST_SEEN_AT:DESC"))
    assert body["edges"] == []  # every book was seen after 2000


async def test_category_books(gql: GraphQLClient) -> None:
    by = order("PRICE:DESC", "TITLE:ASC")
    expected = upcs(ordered(where(lambda b: b["category"] == "Mystery" and b["rating"] >= 3), by))
    query = """query($first: Int, $after: String, $last: Int, $before: String,
                     $orderBy: [BookOrder!], $filter: BookFilter) {
      category(slug: "mystery") { bookCount books(first: $first, after: $after, last: $last,
          before: $before, orderBy: $orderBy, filter: $filter) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { node { upc category { slug } } } } } }"""
    seen: list[str] = []
    after = None
    while True:
        data = await gql.data(
            query, {"first": 5, "after": after, "orderBy": by, "filter": {"ratingMin": 3}}
        )
        connection = data["category"]["books"]
        assert connection["totalCount"] == len(expected)
        assert data["category"]["bookCount"] == len(where(lambda b: b["category"] == "Mystery"))
        assert {e["node"]["category"]["slug"] for e in connection["edges"]} == {"mystery"}
        seen += [e["node"]["upc"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == expected
    backwards: list[str] = []
    before = None
    while True:
        data = await gql.data(
            query, {"last": 4, "before": before, "orderBy": by, "filter": {"ratingMin": 3}}
        )
        connection = data["category"]["books"]
        backwards[:0] = [e["node"]["upc"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]
    assert backwards == expected
    narrowed = await gql.execute(
        '{ category(slug: "mystery") { books(filter: {category: "poetry"}) { totalCount } } }'
    )
    assert error_codes(narrowed) == ["BAD_USER_INPUT"]
    same = await gql.execute(
        '{ category(slug: "mystery") { books(filter: {category: "mystery"}) { totalCount } } }'
    )
    assert error_codes(same) == ["BAD_USER_INPUT"]
    wrong_order = await gql.execute(
        '{ category(slug: "mystery") { books(orderBy: [{field: RELEVANCE, direction: DESC}]) '
        "{ totalCount } } }"
    )
    assert error_codes(wrong_order) == ["BAD_USER_INPUT"]
    cursor = (await page(gql, first=1, orderBy=order("RATING:ASC")))["pageInfo"]["endCursor"]
    crossed = await gql.execute(query, {"first": 2, "after": cursor, "orderBy": by})
    assert error_codes(crossed) == ["BAD_USER_INPUT"]


async def test_every_categorys_books_at_once(gql: GraphQLClient) -> None:
    """Nested pages are batched; each category must still get its own books, in order."""
    data = await gql.data(
        """{ categories { name
             top: books(first: 3, orderBy: [{field: PRICE, direction: DESC}],
                        filter: {ratingMin: 2}) { totalCount edges { node { upc } } }
             tail: books(last: 2) { pageInfo { hasPreviousPage hasNextPage }
                                    edges { node { upc } } } } }"""
    )
    by = order("PRICE:DESC")
    shelves: dict[str, list[Book]] = {}
    for book in snapshot_books():
        shelves.setdefault(book["category"], []).append(book)
    for category in data["categories"]:
        books = shelves[category["name"]]
        rated = ordered([b for b in books if b["rating"] >= 2], by)
        assert category["top"]["totalCount"] == len(rated), category["name"]
        assert [e["node"]["upc"] for e in category["top"]["edges"]] == upcs(rated[:3])
        assert [e["node"]["upc"] for e in category["tail"]["edges"]] == upcs(books[-2:])
        assert category["tail"]["pageInfo"] == {
            "hasPreviousPage": len(books) > 2,
            "hasNextPage": False,
        }


@pytest.mark.slow
async def test_writes_between_pages_neither_repeat_nor_skip(empty_db: ScratchDatabase) -> None:
    async with admin_session(empty_db) as client:
        await _walk_while_inserting(client, forward=True)
        await _walk_while_inserting(client, forward=False)


async def _walk_while_inserting(client: AdminClient, *, forward: bool) -> None:
    by = order("PRICE:ASC")
    before = (await walk(client, orderBy=by))[1]  # what exists now, in order
    seen: list[str] = []
    cursor = None
    inserted: dict[str, int] = {}
    edge_price = 0
    for number in range(20):
        if forward:
            connection = await page(client, first=100, after=cursor, orderBy=by)
            seen.extend(e["node"]["upc"] for e in connection["edges"])
            more = connection["pageInfo"]["hasNextPage"]
            cursor = connection["pageInfo"]["endCursor"]
        else:
            connection = await page(client, last=100, before=cursor, orderBy=by)
            seen[:0] = [e["node"]["upc"] for e in connection["edges"]]
            more = connection["pageInfo"]["hasPreviousPage"]
            cursor = connection["pageInfo"]["startCursor"]
        if number == 3:
            # new books on both sides of the cursor, and one priced exactly as the cursor's
            # book: that one sorts just after it (a new id is larger than every other)
            edge_price = pence(connection["edges"][-1 if forward else 0]["node"]["price"])
            for offset, price in enumerate([1000, 2500, 4000, 5999, edge_price]):
                upc = f"new-{'f' if forward else 'b'}-{offset}"
                await client.admin(
                    """mutation($input: CreateBookInput!) {
                         createBook(input: $input) { book { upc } } }""",
                    {
                        "input": {
                            "upc": upc,
                            "title": f"Inserted {upc}",
                            "priceExclTax": price / 100,
                            "availability": 1,
                            "rating": 3,
                            "category": "Poetry",
                        }
                    },
                )
                inserted[upc] = price
        if not more:
            break
    assert [upc for upc in seen if upc not in inserted] == before  # once each, in order
    assert len(seen) == len(set(seen))
    # a new book shows up if and only if it sorts on the side of the cursor still to come
    past_cursor = {
        upc
        for upc, price in inserted.items()
        if (price >= edge_price if forward else price < edge_price)
    }
    assert {upc for upc in seen if upc in inserted} == past_cursor
    assert 0 < len(past_cursor) < len(inserted)
    # and where the order puts it
    final = (await walk(client, orderBy=by))[1]
    assert [upc for upc in final if upc in set(seen)] == seen


@pytest.mark.slow
async def test_stock_last_seen_and_literal_wildcards(empty_db: ScratchDatabase) -> None:
    truth = snapshot_books()
    sold_out = {book["upc"] for book in truth[::7]}
    base = datetime(2030, 1, 1, tzinfo=UTC)
    # every fifth book seen at its own time, the rest (seeded now, earlier) share one
    seen_at = {  # with ties: 200 books over 101 different minutes
        book["upc"]: base + timedelta(minutes=(i * 37) % 101)
        for i, book in enumerate(truth)
        if i % 5 == 0
    }
    async with admin_session(empty_db) as client:
        engine = create_sync_engine(empty_db.settings())
        with engine.begin() as conn:
            conn.execute(
                update(book_rows).where(book_rows.c.upc.in_(sold_out)).values(availability=0)
            )
            for upc, moment in seen_at.items():
                conn.execute(
                    update(book_rows).where(book_rows.c.upc == upc).values(last_seen_at=moment)
                )
        engine.dispose()
        await client.admin(
            """mutation { createBook(input: {upc: "under_score", title: "Snake_case 100%",
                 priceExclTax: 10, availability: 0, rating: 1, category: "poetry"}) {
                 book { upc } } }"""
        )
        in_stock = await walk(client, filter={"inStock": True})
        out_of_stock = await walk(client, filter={"inStock": False})
        underscore = await walk(client, filter={"titleContains": "e_c"})
        percent = await walk(client, filter={"titleContains": "0%"})
        newest = await walk(client, orderBy=order("LAST_SEEN_AT:DESC"))
        oldest = await walk(client, orderBy=order("LAST_SEEN_AT:ASC"), forward=False)
    assert in_stock[1] == [b["upc"] for b in truth if b["upc"] not in sold_out]
    assert out_of_stock[1] == [b["upc"] for b in truth if b["upc"] in sold_out] + ["under_score"]
    assert underscore == (1, ["under_score"])
    assert percent[1] == [b["upc"] for b in truth if "0%" in b["title"]] + ["under_score"]
    timed = sorted(seen_at, key=lambda upc: seen_at[upc], reverse=True)  # stable: id order
    untimed = [b["upc"] for b in truth if b["upc"] not in seen_at]
    # seeded now, then created a little later, then the timed ones in 2030
    assert newest[1] == [*timed, "under_score", *untimed]
    assert oldest[1] == [*untimed, "under_score", *sorted(seen_at, key=lambda u: seen_at[u])]
