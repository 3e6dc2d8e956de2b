"""Relay pagination, by properties: keyset pages over any listing, and their cursors.

Whatever the listing (filter, order, search, a category's books, the users), the page size
or the direction, pages must visit every row once in the listing's order, with a right
``pageInfo``; any ``first``/``last``/``after``/``before`` combination gives exactly the
slice a reference computes, or ``BAD_USER_INPUT``. Cursors are positions of one ordering:
another ordering's cursor is refused, and a forged or damaged one is refused or read as a
position, never a server error. Below the API, the cursor functions round-trip every value a
sort column can hold and refuse everything else without raising.

The default run is bounded and reproducible; ``BOOKQL_TEST_PROPERTY_EXAMPLES=N`` runs N
random examples per property instead.
"""

from __future__ import annotations

import asyncio
import base64
import math
import string
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert

from bookql.accounts.tables import users
from bookql.catalog.listing import BookListing, BookOrderField, OrderDirection
from bookql.core.errors import BadUserInput
from bookql.db.cursors import decode_cursor, encode_cursor
from bookql.db.engine import create_sync_engine
from bookql.db.keyset import Ordering
from bookql.db.types import UTCDateTime
from tests.catalog.test_properties_filters import (
    CHARACTERS,
    FIELDS,
    SEARCH_WORDS,
    Checker,
    Order,
    Request,
    chance,
    checker_over,
    faults_of,
    fetch,
    property_settings,
    requests,
    search_words,
)
from tests.conftest import GraphQLClient, ScratchDatabase, error_codes
from tests.support.admin_session import AdminClient, admin_session

pytestmark = pytest.mark.slow  # hypothesis properties

MAX_PAGES = 12  # a walk reads at most about this many pages (the page size follows)

# -- the reference slice of a page request --------------------------------------------------


@dataclass(frozen=True)
class PageArgs:
    """``first``/``last`` as sizes, ``after``/``before`` as positions in the listing."""

    first: int | None = None
    after: int | None = None
    last: int | None = None
    before: int | None = None


@dataclass(frozen=True)
class Slice:
    start: int
    end: int
    has_next: bool
    has_previous: bool


def page_reference(args: PageArgs, n: int) -> Slice | str:
    """The rows ``args`` ask of a listing of ``n``, or the label of the refusal: Relay's
    rules, at most 100 rows, 20 when no size is given, and "more" known only in the paging
    direction (behind a cursor there is always a row: the cursor's)."""
    first, after, last, before = args.first, args.after, args.last, args.before
    if first is not None and last is not None:
        return "either"
    if after is not None and before is not None:
        return "either"
    if last is not None or (before is not None and first is None):
        if after is not None:
            return "goes with"
        if last is not None and not 0 <= last <= 100:
            return "last"
        end = before if before is not None else n
        start = max(0, end - (20 if last is None else last))
        return Slice(start, end, has_next=before is not None, has_previous=start > 0)
    if before is not None:
        return "goes with"
    if first is not None and not 0 <= first <= 100:
        return "first"
    start = 0 if after is None else after + 1
    end = min(n, start + (20 if first is None else first))
    return Slice(start, end, has_next=end < n, has_previous=after is not None)


def refusal_label(body: dict[str, Any]) -> str:
    """What a page refusal is about: its argument, or the words of its message."""
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    error = body["errors"][0]
    argument = error["extensions"].get("argument")
    if argument in ("first", "last"):
        return str(argument)
    message = error["message"]
    for words, label in (
        ("either", "either"),
        ("goes with", "goes with"),
        ("not a cursor of this list", "another list"),
        ("not a valid cursor", "malformed"),
    ):
        if words in message:
            return label
    return f"? {message}"


# -- reading pages ------------------------------------------------------------------------------

Edge = tuple[str, str]  # (upc, cursor)


async def read_page(
    gql: GraphQLClient, request: Request, **args: Any
) -> tuple[list[Edge], dict[str, Any], int]:
    body, connection = await fetch(gql, request, **args)
    assert connection is not None and "errors" not in body, (request, args, body.get("errors"))
    edges = [(edge["node"]["upc"], edge["cursor"]) for edge in connection["edges"]]
    info = connection["pageInfo"]
    assert info["startCursor"] == (edges[0][1] if edges else None)
    assert info["endCursor"] == (edges[-1][1] if edges else None)
    return edges, info, connection["totalCount"]


async def walk_pages(
    gql: GraphQLClient, request: Request, size: int, *, forward: bool
) -> list[Edge]:
    """Every edge, ``first: size`` from the start or ``last: size`` from the end, checking
    each page's size, count and ``pageInfo`` against its place."""
    seen: list[Edge] = []
    cursor: str | None = None
    totals = set()
    while True:
        if forward:
            edges, info, total = await read_page(gql, request, first=size, after=cursor)
            seen.extend(edges)
            more, behind = info["hasNextPage"], info["hasPreviousPage"]
            cursor = info["endCursor"]
        else:
            edges, info, total = await read_page(gql, request, last=size, before=cursor)
            seen[:0] = edges
            more, behind = info["hasPreviousPage"], info["hasNextPage"]
            cursor = info["startCursor"]
        totals.add(total)
        assert behind is (len(seen) > len(edges)), (request, size, forward)
        assert more is (len(seen) < total), (request, size, forward, len(seen), total)
        if not more:
            break
        assert len(edges) == size, (request, size, forward)
    assert len(totals) == 1 and totals == {len(seen)}, (request, totals, len(seen))
    return seen


# -- strategies ---------------------------------------------------------------------------------


def valid_requests(checker: Checker) -> st.SearchStrategy[Request]:
    catalog = checker.catalog
    return requests(catalog).filter(lambda r: not faults_of(r, catalog))


def sizes() -> st.SearchStrategy[int | None]:
    """Page sizes: none (the default), 0 to 100, or one to refuse: negative or over the cap
    (far over it, the cost limit speaks first: see test_a_huge_page_size_is_bad_user_input)."""
    refused = st.one_of(
        st.sampled_from([-1, 101, -(2**31)]),
        st.integers(101, 5000),
        st.integers(-(2**31), -1),
    )
    return st.one_of(st.none(), st.integers(0, 100), st.sampled_from([0, 1, 100]), refused)


def positions() -> st.SearchStrategy[int | None]:
    """A cursor's position, as a number to take modulo the listing's length."""
    return st.one_of(st.none(), st.integers(0, 10**6))


@st.composite
def page_args(draw: st.DrawFn) -> PageArgs:
    """``first``/``after`` or ``last``/``before`` (each perhaps absent), or now and then any
    mix of the four (positions to be taken modulo a listing's length)."""

    def maybe(strategy: st.SearchStrategy[int | None]) -> int | None:
        return draw(strategy) if not chance(draw, 4) else None

    mode = draw(st.integers(0, 4))
    if mode < 2:
        return PageArgs(first=maybe(sizes()), after=maybe(positions()))
    if mode < 4:
        return PageArgs(last=maybe(sizes()), before=maybe(positions()))
    return PageArgs(
        first=draw(sizes()) if chance(draw, 2) else None,
        after=draw(positions()) if chance(draw, 2) else None,
        last=draw(sizes()) if chance(draw, 2) else None,
        before=draw(positions()) if chance(draw, 2) else None,
    )


def placed(args: PageArgs, n: int) -> PageArgs:
    """``args`` with positions inside a listing of ``n`` (none when it is empty)."""

    def at(position: int | None) -> int | None:
        return None if position is None or n == 0 else position % n

    return PageArgs(args.first, at(args.after), args.last, at(args.before))


# -- walks, slices and page arguments over books and a category's books ----------------------


def test_pages_walk_every_listing_both_ways(seeded_db: ScratchDatabase) -> None:
    with checker_over(seeded_db) as (runner, checker):
        walked = {"rows": 0, "slices": 0, "refused": 0}

        @property_settings(60)
        @given(
            request=valid_requests(checker),
            pages=st.integers(1, MAX_PAGES),
            jitter=st.integers(-3, 3),
            slices=st.lists(page_args(), min_size=1, max_size=5),
        )
        # 100 a page, the last one full; one book a page; size 0 and the default size
        @example(request=Request({}), pages=10, jitter=0, slices=[PageArgs(first=0), PageArgs()])
        @example(
            request=Request({"category": "Poetry"}),
            pages=19,
            jitter=0,
            slices=[
                PageArgs(last=0, before=3),
                PageArgs(last=5, before=12),
                PageArgs(last=4),
                PageArgs(before=18),
                PageArgs(first=2, before=1),
            ],
        )
        def pages_agree(request: Request, pages: int, jitter: int, slices: list[PageArgs]) -> None:
            runner.run(walk_and_slice(checker, request, pages, jitter, slices, walked))

        pages_agree()
    print(f"\npages on {seeded_db.backend}: {walked}")
    assert walked["rows"] > 1000 and walked["slices"] and walked["refused"], walked


async def walk_and_slice(
    checker: Checker,
    request: Request,
    pages: int,
    jitter: int,
    slices: list[PageArgs],
    walked: dict[str, int],
) -> None:
    """Both walks give the reference's rows, with the same cursors; then each slice."""
    gql = checker.gql
    expected = await checker.expected(request)
    n = len(expected)
    size = min(100, max(1, math.ceil(n / pages) + jitter))
    forward = await walk_pages(gql, request, size, forward=True)
    assert [upc for upc, _ in forward] == expected, (request, size)
    backward = await walk_pages(gql, request, size, forward=False)
    assert backward == forward, (request, size)  # the same rows, and the same cursors
    walked["rows"] += n
    cursors = [cursor for _, cursor in forward]
    for unplaced in slices:
        args = placed(unplaced, n)
        reference = page_reference(args, n)
        variables = {
            "first": args.first,
            "last": args.last,
            "after": None if args.after is None else cursors[args.after],
            "before": None if args.before is None else cursors[args.before],
        }
        if isinstance(reference, str):
            body, _ = await fetch(gql, request, **variables)
            assert refusal_label(body) == reference, (request, args, body)
            walked["refused"] += 1
            continue
        edges, info, total = await read_page(gql, request, **variables)
        assert edges == forward[reference.start : reference.end], (request, args)
        assert (info["hasNextPage"], info["hasPreviousPage"]) == (
            reference.has_next,
            reference.has_previous,
        ), (request, args)
        assert total == n
        walked["slices"] += 1


async def test_a_huge_page_size_is_bad_user_input(gql: GraphQLClient) -> None:
    for size in (2**31 - 1, 10**6):
        for name in ("first", "last"):
            body = await gql.execute(
                f"query($n: Int) {{ books({name}: $n) {{ edges {{ node {{ upc }} }} }} }}",
                {"n": size},
            )
            assert error_codes(body) == ["BAD_USER_INPUT"], (name, size, body)


# -- the first pages of every category at once (one batched statement) ------------------------

CATEGORY_PAGES = """query($first: Int, $last: Int, $orderBy: [BookOrder!], $filter: BookFilter) {
  categories { name books(first: $first, last: $last, orderBy: $orderBy, filter: $filter) {
    totalCount pageInfo { hasNextPage hasPreviousPage } edges { cursor node { upc } } } } }"""


@st.composite
def book_orders(draw: st.DrawFn) -> Order:
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True))
    return tuple((name, draw(st.sampled_from(["ASC", "DESC"]))) for name in names)


def test_every_categorys_first_page_at_once(seeded_db: ScratchDatabase) -> None:
    """The first (or last) page of all categories' books comes from one statement; each must
    still be that category's own page, with its cursors leading on to the rest."""
    with checker_over(seeded_db) as (runner, checker):

        @property_settings(12)
        @given(
            size=st.integers(0, 40),
            forward=st.booleans(),
            order=book_orders(),
            rating_min=st.one_of(st.none(), st.integers(1, 5)),
        )
        def category_pages(size: int, forward: bool, order: Order, rating_min: int | None) -> None:
            runner.run(check_category_pages(checker, size, forward, order, rating_min))

        category_pages()


async def check_category_pages(
    checker: Checker, size: int, forward: bool, order: Order, rating_min: int | None
) -> None:
    book_filter = {"ratingMin": rating_min} if rating_min is not None else None
    variables = {
        "first" if forward else "last": size,
        "orderBy": Request({}, order).order_variable(),
        "filter": book_filter,
    }
    data = await checker.gql.data(CATEGORY_PAGES, variables)
    catalog = checker.catalog
    for category in data["categories"]:
        request = Request(book_filter or {}, order, via_category=catalog.slugs[category["name"]])
        expected = await checker.expected(request)
        connection = category["books"]
        got = [edge["node"]["upc"] for edge in connection["edges"]]
        window = expected[:size] if forward else expected[max(0, len(expected) - size) :]
        assert got == window, (category["name"], variables)
        assert connection["totalCount"] == len(expected)
        more = len(expected) > size
        assert connection["pageInfo"] == {
            "hasNextPage": more if forward else False,
            "hasPreviousPage": False if forward else more,
        }
        if got and more:  # the page's end cursor goes on, one category at a time
            cursor = connection["edges"][-1 if forward else 0]["cursor"]
            step = {"first": 5, "after": cursor} if forward else {"last": 5, "before": cursor}
            edges, _, _ = await read_page(checker.gql, request, **step)
            position = expected.index(got[-1 if forward else 0])
            window = (
                expected[position + 1 : position + 6]
                if forward
                else expected[max(0, position - 5) : position]
            )
            assert [upc for upc, _ in edges] == window, (category["name"], step)


# -- cursors of one listing in another ---------------------------------------------------------


def ordering_key(request: Request) -> tuple[Any, ...]:
    """What a cursor is a position of: the order (a search's default is relevance), and the
    search's words when relevance is part of it."""
    order = request.order or ((("RELEVANCE", "DESC"),) if request.search else ())
    if any(name == "RELEVANCE" for name, _ in order):
        return (order, search_words(request.search or ""))
    return (order,)


@st.composite
def related_requests(draw: st.DrawFn, checker: Checker) -> tuple[Request, Request]:
    """Two listings, often of one ordering (then the cursor of one is a position in the
    other), sometimes not; a category's books take part too."""
    first = draw(valid_requests(checker))
    if not chance(draw, 3):  # a cursor needs a row: mostly the whole of its ordering
        first = Request({}, first.order, first.search)
    if chance(draw, 2):
        second = draw(valid_requests(checker))
    else:  # the same ordering, another filter (or category, or search of the same words)
        other = draw(valid_requests(checker))
        search = first.search if any(n == "RELEVANCE" for n, _ in first.order) else other.search
        if not first.order and first.search:
            search = first.search.upper()
        via = other.via_category if search is None else None
        kept = {k: v for k, v in other.filter.items() if via is None or k != "category"}
        second = Request(kept, first.order, search, via)
    return first, second


async def check_crossing(checker: Checker, source: Request, target: Request, pick: int) -> str:
    """A cursor of ``source`` used in ``target``: refused unless both are one ordering, and
    then the rows of ``target`` past that position."""
    edges, _, _ = await read_page(checker.gql, source, first=10)
    if not edges:
        return "empty"
    upc, cursor = edges[pick % len(edges)]
    body, connection = await fetch(checker.gql, target, first=4, after=cursor)
    if ordering_key(source) != ordering_key(target):
        assert refusal_label(body) == "another list", (source, target, body)
        return "refused"
    assert connection is not None and "errors" not in body, (source, target, body)
    # the position of ``upc`` in the shared ordering: over every book, or over the matches
    # of the search (both listings have its words) when it orders by relevance
    relevant = len(ordering_key(target)) == 2
    everything = await checker.expected(
        Request({}, target.order, target.search if relevant else None)
    )
    rank = {book: index for index, book in enumerate(everything)}
    wanted = [b for b in await checker.expected(target) if rank[b] > rank[upc]][:4]
    assert [edge["node"]["upc"] for edge in connection["edges"]] == wanted, (source, target)
    return "followed"


def test_cursors_are_positions_of_one_ordering(seeded_db: ScratchDatabase) -> None:
    with checker_over(seeded_db) as (runner, checker):
        outcomes: dict[str, int] = {}

        @property_settings(80)
        @given(pair=related_requests(checker), pick=st.integers(0, 9))
        @example(pair=(Request({}, search="love"), Request({}, search="LOVE")), pick=3)
        @example(pair=(Request({}, search="love"), Request({}, search="dark")), pick=0)
        @example(pair=(Request({}, (("PRICE", "ASC"),)), Request({}, (("PRICE", "DESC"),))), pick=0)
        @example(pair=(Request({}), Request({}, via_category="poetry")), pick=9)
        def crossing(pair: tuple[Request, Request], pick: int) -> None:
            outcome = runner.run(check_crossing(checker, *pair, pick))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        crossing()
    print(f"\ncursor crossings on {seeded_db.backend}: {outcomes}")
    assert outcomes.get("refused") and outcomes.get("followed"), outcomes


# -- forged, damaged and random cursors --------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def aware_datetimes() -> st.SearchStrategy[str]:
    """ISO times with any offset, from year 1 to 9999: some fall outside UTC's range."""
    offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
    edges = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)])
    return st.builds(
        lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
        st.one_of(moments, edges),
        offsets,
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),  # what JSON numbers hold as integers here
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=4)


def forged_like(value: Any) -> st.SearchStrategy[Any]:
    """Forged values for a cursor's place that holds ``value`` (or a value of its type):
    mostly of that kind, at and past its column's limits; now and then any JSON."""
    kind: st.SearchStrategy[Any]
    if isinstance(value, int) or value is int:
        kind = st.one_of(
            st.integers(-(2**31), 2**31 - 1),
            st.sampled_from([2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63]),
            st.floats(allow_nan=False, allow_infinity=False),
        )
    elif isinstance(value, float) or value is float:
        kind = st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**64 - 1),
            st.sampled_from([1.7976931348623157e308, -0.0, 5e-324]),
        )
    elif value is datetime or (isinstance(value, str) and value[:4].isdigit() and "T" in value):
        naive = st.datetimes().map(datetime.isoformat)
        kind = st.one_of(aware_datetimes(), aware_datetimes(), naive, st.text(max_size=30))
    else:
        kind = st.text(max_size=20)  # NUL included
    return st.one_of(kind, kind, kind, json_values())


@st.composite
def forged_payloads(draw: st.DrawFn, name: str, like: Sequence[Any]) -> list[Any]:
    """``[name, *values]`` with values shaped like ``like`` (perhaps one too few or many);
    a real value of ``like`` (not a type) is kept now and then."""
    values = [
        value if not isinstance(value, type) and chance(draw, 2) else draw(forged_like(value))
        for value in like
    ]
    if chance(draw, 6):
        values.pop(draw(st.integers(0, len(values) - 1)))
    elif chance(draw, 6):
        values.insert(draw(st.integers(0, len(values))), draw(json_values()))
    return [name, *values]


@st.composite
def bad_cursors(draw: st.DrawFn, cursor: str, payload: str) -> str:
    """Text that is not a cursor, one damaged, or one forged for this ordering (or not)."""
    name, *like = orjson.loads(payload)
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return draw(st.text(max_size=40))
    if kind == 1:
        return b64(draw(st.binary(max_size=60)))
    if kind == 2:  # truncated
        return cursor[: draw(st.integers(0, len(cursor) - 1))]
    if kind == 3:  # a character of the text changed
        at = draw(st.integers(0, len(cursor) - 1))
        replacement = draw(st.sampled_from(string.ascii_letters + string.digits + "-_=+/!"))
        return cursor[:at] + replacement + cursor[at + 1 :]
    if kind == 4:  # a bit of the payload flipped
        raw = bytearray(payload.encode())
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << draw(st.integers(0, 7))
        return b64(bytes(raw))
    if kind == 8:
        name = draw(st.sampled_from([name, "site", "users", name + "x", name.lower()]))
    return b64(orjson.dumps(draw(forged_payloads(name, like))))


async def check_bad_cursor(
    checker: Checker, request: Request, full: list[str], cursor: str, forward: bool
) -> str:
    size = 3
    args = {"first": size, "after": cursor} if forward else {"last": size, "before": cursor}
    body, connection = await fetch(checker.gql, request, **args)
    if "errors" in body:
        assert error_codes(body) == ["BAD_USER_INPUT"], (request, cursor, body)
        assert body.get("data") in (None, {"category": None}), body
        return "refused"
    assert connection is not None
    got = [edge["node"]["upc"] for edge in connection["edges"]]
    info = connection["pageInfo"]
    # accepted: a position, so the page is a run of the listing, ending it if short
    assert (info["hasPreviousPage"] if forward else info["hasNextPage"]) is True
    if got:
        start = full.index(got[0])
        assert got == full[start : start + len(got)], (request, cursor)
        if len(got) < size:
            assert (start + len(got) == len(full)) if forward else start == 0, (request, cursor)
    return "position"


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "standard"])
def test_bad_cursors_are_refused_or_positions(seeded_db: ScratchDatabase, compiled: bool) -> None:
    """Both executors read cursors (the compiled plans their own way): each must refuse."""
    with checker_over(seeded_db, compiled_queries=compiled) as (runner, checker):
        outcomes: dict[str, int] = {}
        listings = [
            Request({}),
            Request({}, (("LAST_SEEN_AT", "ASC"),)),
            Request({}, (("TITLE", "DESC"), ("PRICE", "ASC"))),
            Request({"ratingMin": 4}, (("AVAILABILITY", "DESC"),)),
            Request({}, search=SEARCH_WORDS[0]),
            Request({}, (("RATING", "ASC"),), via_category="mystery"),
        ]

        @property_settings(150)
        @given(listing=st.sampled_from(listings), data=st.data(), forward=st.booleans())
        def bad_cursor(listing: Request, data: st.DataObject, forward: bool) -> None:
            full = runner.run(checker.expected(listing))
            edges, _, _ = runner.run(read_page(checker.gql, listing, first=3))
            cursor = edges[-1][1]
            bad = data.draw(bad_cursors(cursor, decode_cursor(cursor)), label="cursor")
            outcome = runner.run(check_bad_cursor(checker, listing, full, bad, forward))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        # a time past UTC's range once moved to UTC (year 1 east of Greenwich, 9999 west)
        for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            forged = b64(orjson.dumps(["LAST_SEEN_AT:ASC", moment, 5]))
            full = runner.run(checker.expected(listings[1]))
            for forward in (True, False):
                outcome = check_bad_cursor(checker, listings[1], full, forged, forward)
                assert runner.run(outcome) == "refused", moment  # it was a server error
        bad_cursor()
    print(f"\nbad cursors on {seeded_db.backend}, compiled={compiled}: {outcomes}")
    assert outcomes.get("refused") and outcomes.get("position"), outcomes


# -- the users, for an administrator -------------------------------------------------------------

USERS = """query($first: Int, $after: String, $last: Int, $before: String) {
  users(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { username } } } }"""


def _add_users(database: ScratchDatabase, count: int) -> None:
    engine = create_sync_engine(database.settings())
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(users),
            [
                {
                    "username": f"user-{n:03d}",
                    "password_hash": "not a hash: nobody signs in as these",
                    "role": "USER",
                    "is_active": n % 7 != 0,
                    "token_version": 0,
                    "created_at": now - timedelta(minutes=n % 5),  # not the order: the id is
                }
                for n in range(count)
            ],
        )
    engine.dispose()


def test_users_pages(empty_db: ScratchDatabase) -> None:
    """``users`` pages the same way (an administrator's list, by id): walks both ways, any
    slice; its cursors and the books' do not mix; only an administrator may list."""
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        client = runner.run(stack.enter_async_context(admin_session(empty_db, seeded=False)))
        try:
            _add_users(empty_db, 61)
            everyone = ["root", "reader", *(f"user-{n:03d}" for n in range(61))]
            cursors = runner.run(walk_users(client, everyone, 100, forward=True))

            @property_settings(25)
            @given(size=st.integers(1, 64), forward=st.booleans(), slices=st.lists(page_args()))
            def users_pages(size: int, forward: bool, slices: list[PageArgs]) -> None:
                assert runner.run(walk_users(client, everyone, size, forward=forward)) == cursors
                for unplaced in slices:
                    args = placed(unplaced, len(everyone))
                    runner.run(slice_users(client, everyone, cursors, args))

            users_pages()
            runner.run(users_apart(client, cursors))
        finally:
            runner.run(stack.aclose())


async def walk_users(
    client: AdminClient, everyone: list[str], size: int, *, forward: bool
) -> list[str]:
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        args = {"first": size, "after": cursor} if forward else {"last": size, "before": cursor}
        connection = (await client.admin(USERS, args))["users"]
        edges = [(e["node"]["username"], e["cursor"]) for e in connection["edges"]]
        info = connection["pageInfo"]
        seen = seen + edges if forward else edges + seen
        assert connection["totalCount"] == len(everyone)
        assert info["hasPreviousPage" if forward else "hasNextPage"] is (cursor is not None)
        more = info["hasNextPage" if forward else "hasPreviousPage"]
        assert more is (len(seen) < len(everyone)), (size, forward)
        if not more:
            break
        assert len(edges) == size
        cursor = info["endCursor" if forward else "startCursor"]
    assert [name for name, _ in seen] == everyone, (size, forward)
    return [cursor for _, cursor in seen]


async def slice_users(
    client: AdminClient, everyone: list[str], cursors: list[str], args: PageArgs
) -> None:
    variables = {
        "first": args.first,
        "last": args.last,
        "after": None if args.after is None else cursors[args.after],
        "before": None if args.before is None else cursors[args.before],
    }
    body = await client.execute(USERS, variables, token=client.admin_token)
    reference = page_reference(args, len(everyone))
    if isinstance(reference, str):
        assert refusal_label(body) == reference, (args, body)
        return
    assert "errors" not in body, (args, body)
    connection = body["data"]["users"]
    names = [edge["node"]["username"] for edge in connection["edges"]]
    assert names == everyone[reference.start : reference.end], args
    info = connection["pageInfo"]
    assert (info["hasNextPage"], info["hasPreviousPage"]) == (
        reference.has_next,
        reference.has_previous,
    ), args


async def users_apart(client: AdminClient, cursors: list[str]) -> None:
    """A user's cursor is no book's, a book's (even forged) no user's; users are private."""
    books = await client.execute(
        "query($a: String) { books(first: 1, after: $a) { totalCount } }", {"a": cursors[3]}
    )
    assert refusal_label(books) == "another list"
    site = encode_cursor(orjson.dumps(["site", 3]).decode())
    for args in ({"first": 2, "after": site}, {"last": 2, "before": site}):
        body = await client.execute(USERS, args, token=client.admin_token)
        assert refusal_label(body) == "another list", args
    for token in (client.user_token, None):
        body = await client.execute(USERS, {"first": 1}, token=token)
        assert error_codes(body) in (["FORBIDDEN"], ["UNAUTHENTICATED"]), body
        assert body["data"] is None


# -- the cursor functions themselves --------------------------------------------------------------


def _orderings() -> list[Ordering]:
    """Every kind of books ordering, on both dialects: the site's, each field, a compound
    one, and a search's relevance (a float)."""
    found = []
    for dialect in ("sqlite", "postgresql"):
        found.append(BookListing().plan(dialect).ordering)
        for field in BookOrderField:
            if field is BookOrderField.RELEVANCE:
                continue
            found.append(BookListing(order=((field, OrderDirection.DESC),)).plan(dialect).ordering)
        everything = tuple(
            (f, OrderDirection.ASC) for f in BookOrderField if f.value != "RELEVANCE"
        )
        found.append(BookListing(order=everything).plan(dialect).ordering)
        found.append(BookListing(search="love dark").plan(dialect).ordering)
    return found


ORDERINGS = _orderings()


def _python_type(column: Any) -> type:
    column_type = column.type
    if isinstance(column_type, UTCDateTime):
        return datetime
    return column_type.python_type  # type: ignore[no-any-return]


def utc_times() -> st.SearchStrategy[datetime]:
    """What a timestamp column gives back: aware, in UTC."""
    return st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )


def sort_values(column: Any) -> st.SearchStrategy[Any]:
    """Any value a row's sort column can hold (never null: sort columns are NOT NULL)."""
    kind = _python_type(column)
    if kind is int:
        return st.integers(-(2**31), 2**31 - 1)  # PostgreSQL's integer
    if kind is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind is str:
        return st.text(CHARACTERS)
    assert kind is datetime
    return utc_times()


@st.composite
def orderings_with_values(draw: st.DrawFn) -> tuple[Ordering, list[Any]]:
    ordering = draw(st.sampled_from(ORDERINGS))
    return ordering, [draw(sort_values(col.column)) for col in ordering.columns]


def same(left: Sequence[Any], right: Sequence[Any]) -> bool:
    """Equal values of equal types (floats to the bit, so -0.0 is not 0.0)."""
    return len(left) == len(right) and all(
        type(a) is type(b) and (repr(a) == repr(b) if isinstance(a, float) else a == b)
        for a, b in zip(left, right, strict=True)
    )


@property_settings(400)
@given(orderings_with_values())
@example((ORDERINGS[0], [2**31 - 1]))
def test_a_cursor_payload_round_trips(case: tuple[Ordering, list[Any]]) -> None:
    ordering, values = case
    payload = ordering.cursor_payload(values)
    parsed = ordering.parse_cursor_payload(payload)
    assert parsed is not None and same(parsed, values), (payload, parsed, values)
    assert decode_cursor(encode_cursor(payload)) == payload
    for other in ORDERINGS:  # another ordering refuses it (one ordering per name)
        if other.name != ordering.name:
            assert other.parse_cursor_payload(payload) is None


DIALECTS = [create_engine(url).dialect for url in ("sqlite://", "postgresql+psycopg://")]


def usable(column: Any, value: Any) -> bool:
    """Whether either database takes ``value`` as a parameter compared with ``column``."""
    kind = _python_type(column)
    if kind is int:
        return type(value) is int and -(2**31) <= value < 2**31
    if kind is float:
        return type(value) is float and math.isfinite(value)
    if kind is str:
        return type(value) is str and "\x00" not in value
    if type(value) is not datetime or value.tzinfo is None:
        return False
    column_type: UTCDateTime = column.type
    for dialect in DIALECTS:
        column_type.process_bind_param(value, dialect)  # moves it to UTC: it must fit
    return True


@property_settings(600)
@given(ordering=st.sampled_from(ORDERINGS), data=st.data())
def test_a_forged_payload_is_refused_or_usable(ordering: Ordering, data: st.DataObject) -> None:
    """Whatever a client sends is refused (None) or values every database can take."""
    types = [_python_type(col.column) for col in ordering.columns]
    name = data.draw(st.sampled_from([ordering.name, ordering.name, "site", ordering.name[:-1]]))
    payload = orjson.dumps(data.draw(forged_payloads(name, types))).decode()
    forged = data.draw(st.sampled_from([payload, payload[:-1], payload + "]", " " + payload]))
    parsed = ordering.parse_cursor_payload(forged)
    if parsed is not None:
        assert len(parsed) == len(types)
        for col, value in zip(ordering.columns, parsed, strict=True):
            assert usable(col.column, value), (forged, value)


TIMED = [ordering for ordering in ORDERINGS if ordering.name.startswith("LAST_SEEN_AT")]


@property_settings(300)
@given(
    ordering=st.sampled_from(TIMED),
    moment=st.one_of(aware_datetimes(), st.datetimes().map(datetime.isoformat)),
    book_id=st.integers(1, 10**6),
)
# a time past UTC's range once moved to UTC (year 1 east of Greenwich, 9999 west)
@example(ordering=TIMED[0], moment="0001-01-01T00:00:00+01:00", book_id=5)
@example(ordering=TIMED[0], moment="9999-12-31T23:59:59-01:00", book_id=5)
def test_a_cursors_time_is_refused_or_usable(ordering: Ordering, moment: str, book_id: int) -> None:
    """A time in a cursor is taken exactly when a database can compare with it: aware, and
    still a time once in UTC (the columns hold UTC)."""
    given_time = datetime.fromisoformat(moment)
    try:
        fits = given_time.tzinfo is not None and given_time.astimezone(UTC) is not None
    except OverflowError:
        fits = False
    parsed = ordering.parse_cursor_payload(orjson.dumps([ordering.name, moment, book_id]).decode())
    if not fits:
        assert parsed is None, moment
        return
    assert parsed == [given_time, book_id]
    assert usable(ordering.columns[0].column, parsed[0])


@property_settings(300)
@given(st.text(max_size=60))
def test_parsing_any_text_never_raises(text: str) -> None:
    for ordering in ORDERINGS:
        parsed = ordering.parse_cursor_payload(text)
        assert parsed is None or len(parsed) == len(ordering.columns)


@property_settings(400)
@given(st.text())
def test_cursor_text_round_trips(text: str) -> None:
    cursor = encode_cursor(text)
    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")
    assert decode_cursor(cursor) == text


@property_settings(600)
@given(
    st.one_of(
        st.text(),
        st.binary().map(b64),
        st.binary().map(lambda raw: base64.b64encode(raw).decode()),
        st.text(string.ascii_letters + string.digits + "-_=", max_size=12),
    )
)
def test_decoding_any_text_raises_only_bad_user_input(text: str) -> None:
    try:
        payload = decode_cursor(text)
    except BadUserInput:  # the API's own refusal: BAD_USER_INPUT; anything else escapes
        return
    for ordering in ORDERINGS:
        parsed = ordering.parse_cursor_payload(payload)
        assert parsed is None or len(parsed) == len(ordering.columns)


def test_search_orderings_are_tied_to_their_words() -> None:
    """A relevance only compares within one search: the words, not their case or stop words,
    make the ordering."""
    plans = [
        BookListing(search=text).plan("sqlite").ordering.name
        for text in ("love", "LOVE", "the love", "dark")
    ]
    assert plans[0] == plans[1] == plans[2] != plans[3]
    with pytest.raises(BadUserInput):
        BookListing(search="the").plan("sqlite")
