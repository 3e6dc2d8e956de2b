"""``books``' filters, orders and searches against a reference model, on both databases.

test_listing.py checks chosen filters one by one; here Hypothesis combines every field of
``BookFilter`` (values taken from the catalogue itself, its boundaries and just past them,
and values the API must refuse) with ``orderBy``, ``search`` and the ``Category.books``
path. Every answer, read page by page, must be exactly what a reference computed in Python
from the snapshot file says: the same books, in the order asked for with ties broken by
ascending id (the snapshot's order), or a ``BAD_USER_INPUT`` naming a value at fault.

A search's matches come from the engine (stemming is its business), so a search is checked
by composition: with a filter it must give its unfiltered matches that pass the filter, in
the same relevance order. The default run is bounded and reproducible;
``BOOKQL_TEST_PROPERTY_EXAMPLES=N`` runs N random examples per property instead.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bookql.catalog.search import STOP_WORDS
from tests.conftest import GraphQLClient, ScratchDatabase, app_client, error_codes
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # hypothesis properties

PROPERTY_EXAMPLES = os.environ.get("BOOKQL_TEST_PROPERTY_EXAMPLES")
MAX_PENCE = 2**31 - 1  # prices are 32-bit pence: 21474836.47 is the dearest a filter can say
FIELDS = ("PRICE", "RATING", "TITLE", "AVAILABILITY", "LAST_SEEN_AT")
# text a database can hold: no NUL, no lone surrogate (both refused or failing before SQL;
# see test_a_lone_surrogate_is_bad_user_input)
CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")


def property_settings(default: int) -> settings:
    """``default`` examples, derandomized; or the environment's count, at random."""
    examples = int(PROPERTY_EXAMPLES) if PROPERTY_EXAMPLES else default
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=examples <= default,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- the reference: the snapshot, as the API should list it ------------------------------------


@dataclass(frozen=True)
class Book:
    """A snapshot book; ``id`` is its place in the snapshot, which the seed keeps as its id."""

    id: int
    upc: str
    title: str
    category: str
    pence: int
    rating: int
    availability: int


def _pence(amount: float) -> int:
    return int(Decimal(str(amount)) * 100)


BOOKS: tuple[Book, ...] = tuple(
    Book(
        id=index,
        upc=row["upc"],
        title=row["title"],
        category=row["category"],
        pence=_pence(row["price_incl_tax"]),
        rating=row["rating"],
        availability=row["availability_count"],
    )
    for index, row in enumerate(snapshot_books())
)
BY_UPC = {book.upc: book for book in BOOKS}
PRICES = sorted({book.pence for book in BOOKS})
CATEGORY_NAMES = sorted({book.category for book in BOOKS})

Order = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Catalog:
    """What the reference needs beyond the snapshot: the categories' slugs and the one time
    the seed stamped as every book's ``lastSeenAt``."""

    slugs: dict[str, str]  # name -> slug
    last_seen: dict[str, datetime]  # upc -> lastSeenAt

    def sort_key(self, name: str) -> Callable[[Book], Any]:
        return {
            "PRICE": lambda b: b.pence,
            "RATING": lambda b: b.rating,
            "TITLE": lambda b: b.title,  # code points: binary order on both databases
            "AVAILABILITY": lambda b: b.availability,
            "LAST_SEEN_AT": lambda b: self.last_seen[b.upc],
        }[name]

    def ordered(self, books: Sequence[Book], order: Order) -> list[Book]:
        """``books`` in ``order``, ties by ascending id: stable sorts from the last key
        (``reverse`` keeps equal elements in their order, so ids stay ascending)."""
        result = sorted(books, key=lambda b: b.id)
        for name, direction in reversed(order):
            result.sort(key=self.sort_key(name), reverse=direction == "DESC")
        return result

    def category_of(self, key: str) -> str | None:
        """The category a filter names: its slug exactly, or its name in any case."""
        for name, slug in self.slugs.items():
            if key == slug or key.lower() == name.lower():
                return name
        return None


def price_in_pence(value: float) -> int | None:
    """Pence of a price bound, or None when the API must refuse it: GBP in whole pence,
    neither negative nor past the 32-bit column."""
    try:
        amount = Decimal(repr(float(value)))
        whole = amount == amount.quantize(Decimal("0.01"))
    except InvalidOperation:  # too many digits to hold to the penny
        return None
    if not whole or amount < 0 or amount * 100 > MAX_PENCE:
        return None
    return int(amount * 100)


# -- requests and what they must give -----------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One ``books`` listing: filter (GraphQL names), order, search, and whether it is asked
    as ``category(slug) { books }`` (the slug; the filter then names no category unless the
    request tests that refusal)."""

    filter: dict[str, Any]
    order: Order = ()
    search: str | None = None
    via_category: str | None = None

    def order_variable(self) -> list[dict[str, str]] | None:
        if not self.order:
            return None
        return [{"field": name, "direction": direction} for name, direction in self.order]


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def faults_of(request: Request, catalog: Catalog) -> set[str]:
    """Every value of ``request`` the API refuses, as the label its error carries: the
    filter's ``field``, the ``argument``, or the words of a message naming no field."""
    f, faults = request.filter, set()
    if any(_has_nul(value) for value in [*f.values(), request.search]):
        faults.add("NUL")  # refused for the whole request, before any resolver runs
    for name in ("ratingMin", "ratingMax"):
        value = f.get(name)
        if value is not None and not -(2**31) <= value < 2**31:
            faults.add("Int")  # not a GraphQL Int at all: the variable is refused
        elif value is not None and not 1 <= value <= 5:
            faults.add(name)
    low, high = f.get("ratingMin"), f.get("ratingMax")
    if low is not None and high is not None and 1 <= low <= 5 and 1 <= high <= 5 and low > high:
        faults.add("ratingMin")
    if f.get("category") is not None and (
        request.via_category is not None or catalog.category_of(f["category"]) is None
    ):
        faults.add("category")
    bounds = {name: f[name] for name in ("priceMin", "priceMax") if f.get(name) is not None}
    pence = {name: price_in_pence(value) for name, value in bounds.items()}
    faults.update(name for name, value in pence.items() if value is None)
    low_pence, high_pence = pence.get("priceMin"), pence.get("priceMax")
    if low_pence is not None and high_pence is not None and low_pence > high_pence:
        faults.add("priceMin")
    fields = [name for name, _ in request.order]
    if len(set(fields)) != len(fields) or ("RELEVANCE" in fields and request.search is None):
        faults.add("orderBy")
    if request.search is not None:
        words = search_words(request.search)
        if not words or len(words) > 16 or len(request.search) > 500:
            faults.add("search")
    return faults


def search_words(search: str) -> tuple[str, ...]:
    """What a search looks for: its words (letters and digits), in lower case, once each,
    without English stop words."""
    words = (word.lower() for word in re.findall(r"[^\W_]+", search))
    return tuple(dict.fromkeys(word for word in words if word not in STOP_WORDS))


def passes(book: Book, request: Request, catalog: Catalog) -> bool:
    """Whether ``book`` passes every condition of a valid request's filter."""
    f = request.filter
    category = request.via_category or f.get("category")
    if category is not None and book.category != catalog.category_of(category):
        return False
    if f.get("priceMin") is not None and book.pence < (price_in_pence(f["priceMin"]) or 0):
        return False
    if f.get("priceMax") is not None and book.pence > (price_in_pence(f["priceMax"]) or 0):
        return False
    if f.get("ratingMin") is not None and book.rating < f["ratingMin"]:
        return False
    if f.get("ratingMax") is not None and book.rating > f["ratingMax"]:
        return False
    if f.get("inStock") is not None and (book.availability > 0) != f["inStock"]:
        return False
    needle = f.get("titleContains")
    return not needle or needle.lower() in book.title.lower()


# -- reading listings over GraphQL ----------------------------------------------------------------

CONNECTION = """totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { upc } }"""
BOOKS_QUERY = f"""query($first: Int, $after: String, $last: Int, $before: String,
    $filter: BookFilter, $orderBy: [BookOrder!], $search: String) {{
  books(first: $first, after: $after, last: $last, before: $before, filter: $filter,
        orderBy: $orderBy, search: $search) {{ {CONNECTION} }} }}"""
CATEGORY_QUERY = f"""query($slug: String!, $first: Int, $after: String, $last: Int,
    $before: String, $filter: BookFilter, $orderBy: [BookOrder!]) {{
  category(slug: $slug) {{
    books(first: $first, after: $after, last: $last, before: $before, filter: $filter,
          orderBy: $orderBy) {{ {CONNECTION} }} }} }}"""


async def fetch(
    gql: GraphQLClient, request: Request, **page: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The whole response to one page of ``request`` and its connection (None on errors)."""
    variables: dict[str, Any] = {
        "filter": request.filter or None,
        "orderBy": request.order_variable(),
        **page,
    }
    if request.via_category is not None:
        body = await gql.execute(CATEGORY_QUERY, {"slug": request.via_category, **variables})
        data = body.get("data") or {}
        connection = (data.get("category") or {}).get("books")
    else:
        body = await gql.execute(BOOKS_QUERY, {"search": request.search, **variables})
        connection = (body.get("data") or {}).get("books")
    return body, connection


async def walk(gql: GraphQLClient, request: Request, size: int = 100) -> list[str]:
    """Every book of a valid request, ``first: size`` after the last cursor until the end,
    checking each page's count and ``pageInfo`` on the way."""
    seen: list[str] = []
    totals: set[int] = set()
    after = None
    while True:
        body, connection = await fetch(gql, request, first=size, after=after)
        assert connection is not None and "errors" not in body, (request, body.get("errors"))
        edges, info = connection["edges"], connection["pageInfo"]
        totals.add(connection["totalCount"])
        seen.extend(edge["node"]["upc"] for edge in edges)
        assert info["hasPreviousPage"] is (after is not None), request  # behind a cursor: yes
        cursors = [edge["cursor"] for edge in edges]
        assert info["startCursor"] == (cursors[0] if cursors else None)
        assert info["endCursor"] == (cursors[-1] if cursors else None)
        if not info["hasNextPage"]:
            break
        assert len(edges) == size, request  # only the last page is short
        after = info["endCursor"]
    assert len(totals) == 1 and totals == {len(seen)}, (request, totals, len(seen))
    assert len(set(seen)) == len(seen), f"a book was listed twice: {request}"
    return seen


# errors that name no field, by what their message says
MESSAGE_LABELS = {
    "NUL": "NUL",
    "Int cannot represent": "Int",
    "`search`": "search",
    "`filter.category`": "category",
}


def error_label(error: dict[str, Any]) -> str:
    extensions = error["extensions"]
    label = extensions.get("field") or extensions.get("argument")
    if label is not None:
        return str(label)
    message = error["message"]
    return next((name for words, name in MESSAGE_LABELS.items() if words in message), message)


def assert_refused(body: dict[str, Any], request: Request, faults: set[str]) -> None:
    """One ``BAD_USER_INPUT`` naming one of the faults (graphql-core lists every variable
    value that is no Int), and no data below it."""
    codes = error_codes(body)
    labels = [error_label(error) for error in body.get("errors", [])]
    assert codes == ["BAD_USER_INPUT"] * len(codes), (request, body)
    assert len(codes) == 1 or set(labels) == {"Int"}, (request, body)
    assert codes and set(labels) <= faults, (request, faults, body)
    data = body.get("data")
    assert data is None or data == {"category": None}, (request, data)


async def load_catalog(gql: GraphQLClient) -> Catalog:
    categories = (await gql.data("{ categories { name slug } }"))["categories"]
    slugs = {category["name"]: category["slug"] for category in categories}
    assert sorted(slugs) == CATEGORY_NAMES
    last_seen: dict[str, datetime] = {}
    after = None
    while True:
        page = (
            await gql.data(
                """query($after: String) { books(first: 100, after: $after) {
                     pageInfo { hasNextPage endCursor } edges { node { upc lastSeenAt } } } }""",
                {"after": after},
            )
        )["books"]
        for edge in page["edges"]:
            last_seen[edge["node"]["upc"]] = datetime.fromisoformat(edge["node"]["lastSeenAt"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert last_seen.keys() == BY_UPC.keys()
    return Catalog(slugs=slugs, last_seen=last_seen)


# -- strategies -----------------------------------------------------------------------------


def _common_words() -> list[str]:
    """Title words a search can look for: frequent ones, not stop words."""
    counts = Counter(
        word
        for book in BOOKS
        for word in re.findall(r"[^\W_]+", book.title.lower())
        if word not in STOP_WORDS and len(word) > 3
    )
    return sorted(word for word, _ in counts.most_common(24))


SEARCH_WORDS = _common_words()
BAD_SEARCHES = [
    "the",
    "of the, and",
    "",
    " ! ",
    " ".join(f"w{n}" for n in range(17)),  # one word more than a search takes
    "love " + "x" * 500,  # longer than 500 characters
]
PRICE_BOUNDS = [0, 1000, 999, 1001, 5999, 6000, 5998, MAX_PENCE]


def random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(text, flips, strict=True))


@st.composite
def title_parts(draw: st.DrawFn) -> str:
    """A piece of a real title (perhaps a whole one) in random case."""
    title = draw(st.sampled_from(BOOKS)).title
    start = draw(st.integers(0, len(title) - 1))
    length = draw(st.integers(1, 12))
    return random_case(draw, title[start : start + length])


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True once in ``one_in`` draws (shrinking towards False)."""
    return draw(st.integers(1, one_in)) == one_in


def sometimes(
    valid: st.SearchStrategy[Any], refused: st.SearchStrategy[Any], one_in: int
) -> st.SearchStrategy[Any]:
    """Mostly ``valid``; one draw in ``one_in`` from ``refused``."""
    return st.integers(1, one_in).flatmap(lambda n: refused if n == one_in else valid)


def prices() -> st.SearchStrategy[float]:
    """GBP bounds: real prices, pence around and past the catalogue's range, whole pounds,
    negative zero; now and then one to refuse (below zero, part of a penny, too large)."""
    in_pence = st.one_of(
        st.sampled_from(PRICES),
        st.integers(900, 6100),
        st.sampled_from(PRICE_BOUNDS),
    ).map(lambda p: p / 100)
    pounds = st.integers(0, 70)  # sent as JSON integers
    refused = st.one_of(
        st.sampled_from([-0.01, -1, -1e9, 1e-7, 0.005, 21474836.48, 1e20, 1e300]),
        st.integers(0, 6000).map(lambda p: p / 100 + 0.001),
    )
    return sometimes(st.one_of(in_pence, in_pence, pounds, st.just(-0.0)), refused, 8)


def ratings() -> st.SearchStrategy[int]:
    refused = st.one_of(
        st.sampled_from([-1, 0, 6, 7, 2**31 - 1, -(2**31)]),
        st.just(2**31),  # no GraphQL Int at all
    )
    return sometimes(st.integers(1, 5), refused, 8)


@st.composite
def names_in_any_case(draw: st.DrawFn) -> str:
    return random_case(draw, draw(st.sampled_from(CATEGORY_NAMES)))


def category_keys(catalog: Catalog) -> st.SearchStrategy[str]:
    """Slugs as they are, names in any case; now and then a key that names no category."""
    known = st.one_of(
        st.sampled_from(sorted(catalog.slugs.values())),
        st.sampled_from(CATEGORY_NAMES),
        names_in_any_case(),
    )
    unknown = st.one_of(
        st.sampled_from(["no such category", "", "poetry ", " Poetry", "Historical-Fiction"]),
        st.text(CHARACTERS, max_size=6),
    )
    return sometimes(known, unknown, 6)


def title_needles() -> st.SearchStrategy[str]:
    return st.one_of(
        title_parts(),
        title_parts(),
        st.sampled_from(["%", "_", "\\", "", " ", "10%", "a_b", "\u2019", "É", "CAFÉ", "zzz"]),
        st.text(CHARACTERS, max_size=4),
    )


@st.composite
def filters(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    if chance(draw, 3):
        chosen["category"] = draw(category_keys(catalog))
    for name in ("priceMin", "priceMax"):
        if chance(draw, 3):
            chosen[name] = draw(prices())
    for name in ("ratingMin", "ratingMax"):
        if chance(draw, 3):
            chosen[name] = draw(ratings())
    if chance(draw, 4):
        chosen["inStock"] = draw(st.booleans())
    if chance(draw, 3):
        chosen["titleContains"] = draw(title_needles())
    if chance(draw, 31):  # NUL in any text is refused
        name = draw(st.sampled_from(["category", "titleContains"]))
        chosen[name] = draw(st.sampled_from(["\x00", "a\x00b", "poetry\x00"]))
    for name in list(chosen):
        if chance(draw, 13):
            chosen[name] = None  # an explicit null: the condition is absent
    return chosen


@st.composite
def orders(draw: st.DrawFn, searching: bool) -> Order:
    fields = [*FIELDS, "RELEVANCE"] if searching or chance(draw, 16) else FIELDS
    names = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True))
    if names and chance(draw, 16):
        names.append(draw(st.sampled_from(names)))  # a field twice is refused
    return tuple((name, draw(st.sampled_from(["ASC", "DESC"]))) for name in names)


@st.composite
def requests(draw: st.DrawFn, catalog: Catalog) -> Request:
    book_filter = draw(filters(catalog))
    search = None
    if chance(draw, 3):
        words = st.lists(st.sampled_from(SEARCH_WORDS), min_size=1, max_size=2, unique=True)
        valid = st.one_of(words.map(" ".join), words.map(" and the ".join).map(str.upper))
        search = draw(sometimes(valid, st.sampled_from(BAD_SEARCHES), 6))
    order = draw(orders(search is not None)) if draw(st.booleans()) else ()
    via = None
    named = book_filter.get("category")
    if search is None and isinstance(named, str) and not chance(draw, 3):
        name = catalog.category_of(named)
        if name is not None:
            via = catalog.slugs[name]
            if not chance(draw, 6):  # usually: a category's books take no category
                book_filter = {k: v for k, v in book_filter.items() if k != "category"}
    return Request(filter=book_filter, order=order, search=search, via_category=via)


# -- the property -----------------------------------------------------------------------------


@dataclass
class Tally:
    refused: int = 0
    empty: int = 0
    listed: int = 0
    several_pages: int = 0
    searched: int = 0
    via_category: int = 0


class Checker:
    """Runs requests and compares them with the reference; unfiltered searches are read
    once per (search, order) and kept."""

    def __init__(self, gql: GraphQLClient, catalog: Catalog) -> None:
        self.gql = gql
        self.catalog = catalog
        self.searches: dict[tuple[str, Order], list[str]] = {}
        self.tally = Tally()

    async def unfiltered(self, search: str, order: Order) -> list[str]:
        key = (search, order)
        if key not in self.searches:
            self.searches[key] = await walk(self.gql, Request({}, order, search))
        return self.searches[key]

    async def expected(self, request: Request) -> list[str]:
        catalog = self.catalog
        if request.search is None:
            chosen = [b for b in BOOKS if passes(b, request, catalog)]
            return [b.upc for b in catalog.ordered(chosen, request.order)]
        fields = [name for name, _ in request.order]
        if request.order and "RELEVANCE" not in fields:
            # the engine decides what matches; the order is the reference's own
            found = [BY_UPC[upc] for upc in await self.unfiltered(request.search, ())]
            chosen = [b for b in found if passes(b, request, catalog)]
            return [b.upc for b in catalog.ordered(chosen, request.order)]
        # a relevance does not depend on the filter: the same order, restricted
        everything = await self.unfiltered(request.search, request.order)
        return [upc for upc in everything if passes(BY_UPC[upc], request, catalog)]

    async def check(self, request: Request) -> None:
        faults = faults_of(request, self.catalog)
        if faults:
            body, _ = await fetch(self.gql, request, first=100)
            assert_refused(body, request, faults)
            self.tally.refused += 1
            return
        seen = await walk(self.gql, request)
        assert seen == await self.expected(request), request
        tally = self.tally
        tally.listed += 1
        tally.empty += not seen
        tally.several_pages += len(seen) > 100
        tally.searched += request.search is not None
        tally.via_category += request.via_category is not None


@contextmanager
def checker_over(
    database: ScratchDatabase, **settings: Any
) -> Iterator[tuple[asyncio.Runner, Checker]]:
    """An app over ``database`` in-process, and a checker of its listings; the runner drives
    the async client from Hypothesis' synchronous tests."""
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        http = runner.run(stack.enter_async_context(app_client(database.settings(**settings))))
        try:
            gql = GraphQLClient(http)
            yield runner, Checker(gql, runner.run(load_catalog(gql)))
        finally:
            runner.run(stack.aclose())


def test_books_match_the_reference(seeded_db: ScratchDatabase) -> None:
    with checker_over(seeded_db) as (runner, checker):

        @property_settings(200)
        @given(requests(checker.catalog))
        # corners: ties under every order, boundaries, literal wildcards, case, refusals
        @example(Request({"priceMin": 10, "priceMax": 10.0}, (("RATING", "DESC"),)))
        @example(Request({"priceMin": -0.0, "titleContains": "%"}, (("TITLE", "ASC"),)))
        @example(Request({"titleContains": "CAFÉ"}))
        @example(Request({"ratingMin": 4, "ratingMax": 3}))
        @example(Request({"category": "Historical-Fiction"}))
        @example(Request({}, (("LAST_SEEN_AT", "DESC"), ("AVAILABILITY", "ASC"))))
        def listing_matches_the_reference(request: Request) -> None:
            runner.run(checker.check(request))

        listing_matches_the_reference()
    tally = checker.tally
    print(f"\nfilters on {seeded_db.backend}: {tally}")
    # the generator must reach every kind of outcome, or the property proves little
    assert tally.refused and tally.empty and tally.several_pages, tally
    assert tally.listed - tally.empty > tally.refused, tally
    assert tally.searched and tally.via_category, tally
