"""Full-text search on both databases: the same matches everywhere, engine syntax inert.

The expected sets were observed on both engines (SQLite FTS5 with the porter stemmer and
PostgreSQL's English configuration) and only queries where they agree are kept; they are
pinned by size and by a digest of the sorted UPCs, and checked here against the snapshot
text (every book with the words in its title or description is found, every book found
holds the words' stems). Relevance is each engine's own, so the top three are per engine.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from bookql.catalog import search as search_module
from tests.conftest import GraphQLClient, ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

SEARCH = """query($search: String, $filter: BookFilter, $orderBy: [BookOrder!], $first: Int,
                 $after: String, $last: Int, $before: String) {
  books(search: $search, filter: $filter, orderBy: $orderBy, first: $first, after: $after,
        last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { upc } }
  }
}"""


@dataclass(frozen=True)
class Expected:
    query: str
    words: tuple[str, ...]  # what the query means: its words less the stop words
    count: int
    digest: str  # sha256 of the sorted UPCs, space-separated: its first 16 hex digits
    top: dict[str, tuple[str, ...]]  # the first three under RELEVANCE, per engine


SEARCHES = [
    Expected(
        "mystery",
        words=("mystery",),
        count=129,
        digest="a700afb331993fcc",
        top={
            "sqlite": ("2da5edf8b5776c9a", "9735c969c652dd89", "4e980425468708da"),
            "postgresql": ("9735c969c652dd89", "7edc0527cf782e19", "b461cf238506c5b8"),
        },
    ),
    Expected(
        "history",
        words=("history",),
        count=128,
        digest="b6e8c59f8cdd14b3",
        top={
            "sqlite": ("1ad06aed9349af46", "f201f263d8c23f97", "8a150fd8ff5d7686"),
            "postgresql": ("f201f263d8c23f97", "4165285e1663650f", "04e3de7ac35ec5cd"),
        },
    ),
    Expected(
        "travel",
        words=("travel",),
        count=72,
        digest="d85a31947d23231d",
        top={
            "sqlite": ("8d8e9f9b8730eb25", "1809259a5a5f1d8d", "747cf7fca2ccdbd4"),
            "postgresql": ("1809259a5a5f1d8d", "2b685187f55c5d31", "747cf7fca2ccdbd4"),
        },
    ),
    Expected(
        "poetry",
        words=("poetry",),
        count=17,
        digest="b5b182592fde2b1e",
        top={
            "sqlite": ("aa35446aab16017f", "b74ee891e2a6dd69", "55f9da0c5eea2e10"),
            "postgresql": ("aa35446aab16017f", "b74ee891e2a6dd69", "55f9da0c5eea2e10"),
        },
    ),
    Expected(
        "science",
        words=("science",),
        count=57,
        digest="7dec6f6b34b6d678",
        top={
            "sqlite": ("efc3768127714ec3", "6036239d2ab349b7", "f9c87ccb2bc4853b"),
            "postgresql": ("e30f54cea9b38190", "dbe33cf29ef1623d", "0c11e2d068768dbb"),
        },
    ),
    Expected(
        "cooking recipes",
        words=("cooking", "recipes"),
        count=22,
        digest="af47f00251e3c83c",
        top={
            "sqlite": ("faf841f81c52638b", "2a9fcb3382d351c8", "72f9d5be3472d34e"),
            "postgresql": ("2a9fcb3382d351c8", "faf841f81c52638b", "46c1530d7546ea6d"),
        },
    ),
    Expected(
        "the road",
        words=("road",),
        count=33,
        digest="c7d5329dd0e64ec2",
        top={
            "sqlite": ("9ff997ab15713e53", "366a236aa1ea6f07", "0e4e2d31c2fb3aad"),
            "postgresql": ("9ff997ab15713e53", "366a236aa1ea6f07", "fff8a057a40c4a60"),
        },
    ),
    Expected(
        "romance",
        words=("romance",),
        count=32,
        digest="ef695b6bef16222f",
        top={
            "sqlite": ("cf62fa272b5f0fa3", "caf4fe9311f1dc59", "a96404cb928895f3"),
            "postgresql": ("caf4fe9311f1dc59", "a96404cb928895f3", "cf62fa272b5f0fa3"),
        },
    ),
    Expected(
        "music",
        words=("music",),
        count=44,
        digest="283fa5bb6a3e439d",
        top={
            "sqlite": ("bc209a900101f28d", "327f68a59745c102", "6d235933670503d9"),
            "postgresql": ("bc209a900101f28d", "6a57286a8890d8c5", "327f68a59745c102"),
        },
    ),
    Expected(
        "magic",
        words=("magic",),
        count=58,
        digest="c94c7fefe00534ac",
        top={
            "sqlite": ("d1378a0ad06ff979", "0da9aa9d24677fc0", "1f329c2e7d7de8bd"),
            "postgresql": ("d1378a0ad06ff979", "4c8ece50736f9e88", "984b3b6e7479b571"),
        },
    ),
    Expected(
        "Harry's",
        words=("harry",),
        count=22,
        digest="c31f4ec7c4baa84d",
        top={
            "sqlite": ("6c49258724f11770", "5a6b7155f2797537", "ac337893a9fe0085"),
            "postgresql": ("c7c4f55b7321cba7", "73f4f87dd936ee5c", "ac337893a9fe0085"),
        },
    ),
    Expected(
        "london",
        words=("london",),
        count=35,
        digest="b2dab3eb16f152cd",
        top={
            "sqlite": ("e9056f9b5a40a301", "19fec36a1dfb4c16", "d1378a0ad06ff979"),
            "postgresql": ("d1378a0ad06ff979", "e9056f9b5a40a301", "437d8dea9272d0a9"),
        },
    ),
    Expected(
        "vampire",
        words=("vampire",),
        count=15,
        digest="29ce4b3b519efedb",
        top={
            "sqlite": ("e7e87087b1a44711", "dab5e75d1339706a", "116a2fdc9a45bab0"),
            "postgresql": ("116a2fdc9a45bab0", "e7e87087b1a44711", "dab5e75d1339706a"),
        },
    ),
    Expected(
        "detective",
        words=("detective",),
        count=28,
        digest="72ee2ba08733b0dd",
        top={
            "sqlite": ("b0913e67d38d5ed5", "b28c7d07afa7063b", "9e9932ae1a7d0943"),
            "postgresql": ("b0913e67d38d5ed5", "b28c7d07afa7063b", "9e9932ae1a7d0943"),
        },
    ),
    Expected(
        "dragon",
        words=("dragon",),
        count=13,
        digest="e43590afbf340269",
        top={
            "sqlite": ("e958ae92f328c181", "2b52334fab158861", "b843f52a986a2914"),
            "postgresql": ("b843f52a986a2914", "feaaae90514eb2ac", "e958ae92f328c181"),
        },
    ),
    Expected(
        "paris",
        words=("paris",),
        count=31,
        digest="cd79837aa3b17bc1",
        top={
            "sqlite": ("b12b89017878a60d", "784bc2279baa878d", "c2e46a2ee3b4a322"),
            "postgresql": ("784bc2279baa878d", "63343e287971bb0c", "fa26798728f5208f"),
        },
    ),
]

POETRY = {
    "094b269567e1c300", "1dfe412b8ac00530", "30a7f60cd76ca58c", "3d250ab0f12be445",
    "4881cc53f6c8892f", "55f9da0c5eea2e10", "86cbddb61ea78bb7", "9beb96a2300109d7",
    "a897fe39b1053632", "aa35446aab16017f", "b4fd5943413e089a", "b74ee891e2a6dd69",
    "c0fc0cd215ee1724", "cfeb1e1e0e695b58", "e63c3f25338baf9a", "f3a0b8c835129558",
    "feb7cc7701ecf901",
}  # fmt: skip
COOKING_RECIPES = {
    "0e0da9192a025efc", "12a90b90283b2e6d", "142d767a56a9254d", "2587c54f5530dafc",
    "2a9fcb3382d351c8", "311634df10651e05", "4672d10b9b1e7a05", "46c1530d7546ea6d",
    "6478ccb4416e6a5d", "72f9d5be3472d34e", "742702d662a71410", "76319fe9d8b465a3",
    "784bc2279baa878d", "8bbd7df8a324f31d", "96a38e7c813d8f1d", "999912e63a3262ae",
    "a94350ee74deaa07", "c53d9fefcda371e9", "d326e189b1210916", "e28e330cbdf01126",
    "f701fae56b645ef7", "faf841f81c52638b",
}  # fmt: skip


def digest(upcs: list[str]) -> str:
    return hashlib.sha256(" ".join(sorted(upcs)).encode()).hexdigest()[:16]


def text_of(book: dict[str, Any]) -> str:
    return f"{book['title']} {book['description'] or ''}"


def pence(book: dict[str, Any]) -> int:
    return int(Decimal(str(book["price"])) * 100)


async def page(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await gql.data(SEARCH, variables))["books"]
    return connection


async def walk(
    gql: GraphQLClient, *, forward: bool = True, size: int = 100, **variables: Any
) -> tuple[int, list[str]]:
    """Every match, page by page, and the total count every page reported."""
    seen: list[str] = []
    cursor = None
    totals = set()
    while True:
        if forward:
            connection = await page(gql, first=size, after=cursor, **variables)
        else:
            connection = await page(gql, last=size, before=cursor, **variables)
        totals.add(connection["totalCount"])
        found = [edge["node"]["upc"] for edge in connection["edges"]]
        info = connection["pageInfo"]
        if forward:
            seen += found
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


@pytest.mark.parametrize("expected", SEARCHES, ids=lambda e: e.query)
async def test_fixed_searches(
    gql: GraphQLClient, seeded_db: ScratchDatabase, expected: Expected
) -> None:
    total, found = await walk(gql, search=expected.query, size=50)
    assert total == len(found) == expected.count
    assert digest(found) == expected.digest
    assert tuple(found[:3]) == expected.top[seeded_db.backend]
    # against the text itself: every book with all the words is found ...
    by_upc = {book["upc"]: book for book in snapshot_books()}
    with_words = {
        book["upc"]
        for book in snapshot_books()
        if all(re.search(rf"\b{w}\b", text_of(book), re.IGNORECASE) for w in expected.words)
    }
    assert with_words <= set(found)
    # ... and every book found has a word stemming from each (a prefix, loosely)
    for upc in found:
        for word in expected.words:
            assert re.search(rf"\b{word[:4]}", text_of(by_upc[upc]), re.IGNORECASE), upc
    # relevance is the default order when searching
    explicit = await page(
        gql, search=expected.query, first=3, orderBy=[{"field": "RELEVANCE", "direction": "DESC"}]
    )
    assert [e["node"]["upc"] for e in explicit["edges"]] == found[:3]


async def test_small_sets_in_full(gql: GraphQLClient) -> None:
    assert len(POETRY) == next(e.count for e in SEARCHES if e.query == "poetry")
    assert len(COOKING_RECIPES) == next(e.count for e in SEARCHES if e.query == "cooking recipes")
    assert set((await walk(gql, search="poetry"))[1]) == POETRY
    assert set((await walk(gql, search="Cooking, recipes!"))[1]) == COOKING_RECIPES
    assert set((await walk(gql, search="recipes cooking"))[1]) == COOKING_RECIPES


@pytest.mark.slow
async def test_relevance_pages_line_up(gql: GraphQLClient) -> None:
    """Cursors hold a relevance: pages must neither lose nor repeat books at a boundary."""
    for query in ("mystery", "history", "poetry"):
        _, whole = await walk(gql, search=query)
        for size in (5, 17, 50):
            assert (await walk(gql, search=query, size=size))[1] == whole, (query, size)
            assert (await walk(gql, search=query, size=size, forward=False))[1] == whole
        ascending = [{"field": "RELEVANCE", "direction": "ASC"}]
        _, up = await walk(gql, search=query, orderBy=ascending, size=7)
        assert sorted(up) == sorted(whole)
        assert (await walk(gql, search=query, orderBy=ascending, size=7, forward=False))[1] == up
    # a relevance cursor is not a position in a price order
    cursor = (await page(gql, search="mystery", first=2))["pageInfo"]["endCursor"]
    price = await gql.execute(
        SEARCH,
        {
            "search": "mystery",
            "first": 2,
            "after": cursor,
            "orderBy": [{"field": "PRICE", "direction": "ASC"}],
        },
    )
    assert error_codes(price) == ["BAD_USER_INPUT"]


async def test_search_with_filter_and_price_order(gql: GraphQLClient) -> None:
    books = [b for b in snapshot_books() if b["upc"] in COOKING_RECIPES and b["rating"] >= 3]
    expected = [b["upc"] for b in sorted(books, key=pence)]  # stable: ties in id order
    by_price = [{"field": "PRICE", "direction": "ASC"}]
    total, found = await walk(
        gql, search="cooking recipes", filter={"ratingMin": 3}, orderBy=by_price, size=3
    )
    assert total == len(expected) > 3
    assert found == expected
    descending = [b["upc"] for b in sorted(books, key=pence, reverse=True)]
    total, found = await walk(
        gql,
        search="cooking recipes",
        filter={"ratingMin": 3},
        orderBy=[{"field": "PRICE", "direction": "DESC"}],
        size=4,
        forward=False,
    )
    assert found == descending
    poetry = [b for b in snapshot_books() if b["upc"] in POETRY and b["category"] == "Poetry"]
    total, found = await walk(
        gql,
        search="poetry",
        filter={"category": "poetry", "priceMax": 40},
        orderBy=[{"field": "TITLE", "direction": "ASC"}],
    )
    expected = sorted((b for b in poetry if pence(b) <= 4000), key=lambda b: b["title"])
    assert total == len(expected) and found == [b["upc"] for b in expected]
    nothing = await page(gql, search="poetry", filter={"category": "travel"}, first=5)
    assert nothing["totalCount"] == 0 and nothing["edges"] == []
    assert nothing["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    "search",
    [
        "the",
        "The and of",
        "a an the",
        "don't",  # "don" and "t": both stop words on PostgreSQL
        "it's",
        "Was it you?",
        "",
        "   ",
        "!!!",
        "...",
        "-- ** :: ()",
        '"" & | !',
        "_ _ __",
    ],
)
async def test_searches_without_words(gql: GraphQLClient, search: str) -> None:
    body = await gql.execute(SEARCH, {"search": search, "first": 5})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_overlong_searches(gql: GraphQLClient) -> None:
    many = " ".join(f"word{i}" for i in range(17))
    body = await gql.execute(SEARCH, {"search": many, "first": 5})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    sixteen = " ".join(f"word{i}" for i in range(16)) + " the and word0"  # stop words, repeats
    assert (await page(gql, search=sixteen, first=5))["totalCount"] == 0
    body = await gql.execute(SEARCH, {"search": "x" * 501, "first": 5})
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("search", "plain"),
    [
        ('"mystery"', "mystery"),
        ('"mystery', "mystery"),
        ("mystery*", "mystery"),
        ("*", None),
        ("mystery:", "mystery"),
        ("title:mystery", "title mystery"),
        ("description : poetry", "description poetry"),
        ("cooking & recipes", "cooking recipes"),
        ("cooking | recipes", "cooking recipes"),
        ("cooking OR recipes", "cooking recipes"),
        ("cooking AND recipes", "cooking recipes"),
        ("cooking NOT recipes", "cooking recipes"),
        ("!mystery", "mystery"),
        ("mystery & !poetry", "mystery poetry"),
        ("(mystery)", "mystery"),
        ("((mystery", "mystery"),
        ("mystery)", "mystery"),
        ("NEAR(cooking recipes)", "near cooking recipes"),
        ("NEAR(cooking recipes, 2)", "near cooking recipes 2"),
        ("NEAR", "near"),
        ("near", "near"),
        ("mystery <-> poetry", "mystery poetry"),
        ("mystery:*", "mystery"),
        ("^mystery", "mystery"),
        ("mystery + poetry - history", "mystery poetry history"),
        ("{mystery}", "mystery"),
        ("'mystery'", "mystery"),
        ("mystery\\", "mystery"),
        ("mystery;", "mystery"),
        ("mystery' OR 1=1 --", "mystery 1"),
    ],
)
async def test_engine_syntax_is_plain_text(
    gql: GraphQLClient, search: str, plain: str | None
) -> None:
    body = await gql.execute(SEARCH, {"search": search, "first": 100})
    if plain is None:  # no words at all
        assert error_codes(body) == ["BAD_USER_INPUT"]
        return
    assert "errors" not in body, body["errors"]
    expected = await page(gql, search=plain, first=100)
    assert body["data"]["books"] == expected


async def test_near_is_a_word(gql: GraphQLClient) -> None:
    found = await walk(gql, search="NEAR")
    assert found[0] > 0
    assert await walk(gql, search="near") == found
    for upc in found[1]:
        book = next(b for b in snapshot_books() if b["upc"] == upc)
        assert re.search(r"\bnear", text_of(book), re.IGNORECASE)


ADMIN_BOOK = "upc title description removedAt"
CREATE = f"""mutation($input: CreateBookInput!) {{
    createBook(input: $input) {{ book {{ {ADMIN_BOOK} }} }} }}"""
UPDATE = f"""mutation($input: UpdateBookInput!) {{
    updateBook(input: $input) {{ book {{ {ADMIN_BOOK} }} }} }}"""
DELETE = f"mutation($id: ID!) {{ deleteBook(input: {{id: $id}}) {{ book {{ {ADMIN_BOOK} }} }} }}"


async def found(client: AdminClient, search: str) -> list[str]:
    return (await walk(client, search=search))[1]


@pytest.mark.slow
async def test_the_index_follows_writes(empty_db: ScratchDatabase) -> None:
    async with admin_session(empty_db) as client:
        assert await found(client, "zyzzyva") == []
        created = await client.admin(
            CREATE,
            {
                "input": {
                    "upc": "fts-1",
                    "title": "The Zyzzyva Chronicles",
                    "description": "A quixotic xylophonist tours the fjords.",
                    "priceExclTax": 10,
                    "availability": 1,
                    "rating": 3,
                    "category": "poetry",
                }
            },
        )
        book_id = global_book_id("fts-1")
        assert created["createBook"]["book"]["upc"] == "fts-1"
        assert await found(client, "zyzzyva") == ["fts-1"]
        assert await found(client, "Xylophonist fjords") == ["fts-1"]
        assert await found(client, "zyzzyva chronicle") == ["fts-1"]  # stemmed

        await client.admin(UPDATE, {"input": {"id": book_id, "title": "Quokka Almanac"}})
        assert await found(client, "zyzzyva") == []
        assert await found(client, "quokka") == ["fts-1"]
        assert await found(client, "xylophonist") == ["fts-1"]  # the description stayed

        await client.admin(
            UPDATE, {"input": {"id": book_id, "description": "Wombats in the snow."}}
        )
        assert await found(client, "xylophonist") == []
        assert await found(client, "wombats snow") == ["fts-1"]
        assert await found(client, "quokka") == ["fts-1"]

        await client.admin(UPDATE, {"input": {"id": book_id, "description": None}})
        assert await found(client, "wombats") == []
        assert await found(client, "quokka") == ["fts-1"]

        await client.admin(UPDATE, {"input": {"id": book_id, "description": "Narwhal tales."}})
        assert await found(client, "narwhal") == ["fts-1"]

        # a snapshot book (a poetry match) gets a description without "poetry" in it
        first = snapshot_books()[0]
        assert first["upc"] in POETRY
        await client.admin(
            UPDATE,
            {"input": {"id": global_book_id(first["upc"]), "description": "Narwhal songs."}},
        )
        assert set(await found(client, "narwhal")) == {first["upc"], "fts-1"}
        poetry = await found(client, "poetry")
        assert set(poetry) == POETRY - {first["upc"]}
        # a deleted book disappears, and the count follows
        gone = poetry[0]
        deleted = await client.admin(DELETE, {"id": global_book_id(gone)})
        assert deleted["deleteBook"]["book"]["removedAt"] is not None
        assert set(await found(client, "poetry")) == POETRY - {first["upc"], gone}
        counted = await page(client, search="poetry", first=1)
        assert counted["totalCount"] == len(POETRY) - 2
        await client.admin(DELETE, {"id": book_id})
        assert await found(client, "quokka") == []
        assert await found(client, "narwhal") == [first["upc"]]


def global_book_id(upc: str) -> str:
    return base64.urlsafe_b64encode(f"Book:{upc}".encode()).decode().rstrip("=")


def site_order(found: set[str]) -> list[str]:
    """``found`` in site order: the snapshot's, in which the seed inserts."""
    return [book["upc"] for book in snapshot_books() if book["upc"] in found]


async def test_relevance_ranks_the_first_matches_in_site_order(
    gql: GraphQLClient, seeded_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relevance order ranks only the listing's first ``RANKED_MATCHES`` matches: with a
    bound below the matches, the pages hold those (the same on both databases), in the
    order the unbounded ranking gives them; counts still count every match; a search with
    fewer matches than the bound is ranked exactly as without one."""
    _, mystery = await walk(gql, search="mystery", size=100)  # 129 matches, all ranked
    _, dragon = await walk(gql, search="dragon", size=100)  # 13
    by_price = [{"field": "PRICE", "direction": "ASC"}]
    in_category = {"category": "mystery"}
    _, mystery_mysteries = await walk(gql, search="mystery", filter=in_category, size=100)
    assert len(mystery) == 129 and len(dragon) == 13 and 10 < len(mystery_mysteries) < 129

    monkeypatch.setattr(search_module, "RANKED_MATCHES", 10)
    candidates = site_order(set(mystery))[:10]
    for forward, size in ((True, 3), (False, 4)):
        total, bounded = await walk(gql, search="mystery", size=size, forward=forward)
        assert total == 129  # totalCount: every match
        assert bounded == [upc for upc in mystery if upc in candidates]
    assert digest(bounded) == "0026110e144cd5df"  # the same books on both databases
    counted = await gql.data(
        '{ books(first: 1, search: "mystery") { count(limit: 1000) { count precision } } }'
    )
    assert counted["books"]["count"] == {"count": 129, "precision": "EXACT"}
    # another order lists every match
    total, priced = await walk(gql, search="mystery", orderBy=by_price, size=50)
    assert total == len(priced) == 129
    # the candidates are the first matches of the whole listing, its filter included
    total, filtered = await walk(gql, search="mystery", filter=in_category, size=4)
    assert total == len(mystery_mysteries)
    first = site_order(set(mystery_mysteries))[:10]
    assert filtered == [upc for upc in mystery_mysteries if upc in first]
    # no more matches than the bound: the best matches, exactly as before
    monkeypatch.setattr(search_module, "RANKED_MATCHES", len(dragon))
    assert (await walk(gql, search="dragon", size=5))[1] == dragon
