"""Catalogue queries over GraphQL against a hand-written Starlette + orjson endpoint.

Three servers run at once, each pinned to core 0 with one uvicorn worker, on one database
prepared with the project's own migrations and bundled snapshot: bookql as configured
(``BOOKQL_COMPILED_QUERIES=true``), bookql with plain Strawberry execution
(``BOOKQL_COMPILED_QUERIES=false``) and ``bench.handwritten`` (reading as bookql's compiled
queries read, with the same driver and SQL, and no GraphQL). A load generator in a process
of its own on core 1 (``bench.loadgen``) runs each query for a fixed time with 1 and with 16
keep-alive clients; every round visits each (query, clients) cell once and rotates the
order of the three servers, so drift in a shared machine's speed falls on all of them.
Figures are medians over rounds of each block's p50, p99 and requests/s. No side caches
responses.

Before measuring, the three servers' answers must be equal, and the statements and driver
each GraphQL side uses are captured in this process and compared with the hand-written
side's (a warning names whatever bookql does differently). Targets: ``books(first: 100)``
p50 within 3x of the hand-written one, ``book(upc:)`` within 2x, requests/s at 16 clients
within 3x, ``stats`` within 2x.

Side by side on the bookql server, ``books(first: 100)`` over GET answered in full and
revalidated with its ``ETag`` (a ``304``, nothing executed): the ``304``'s p50 must be under a
third of the full answer's.

    python -m bench.catalog_queries [--rounds 5] [--seconds 1.2] [--quick]
        [--database-url postgresql+psycopg://root@127.0.0.1:5432/test]
    python -m bench.catalog_queries --profile books [--side plain]   # where the time goes
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import Connection, Engine, event
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message

from bench import handwritten
from bench.harness import (
    ROOT,
    Server,
    bookql_server,
    code_version,
    http_server,
    pin_self,
    scratch_database,
    table,
    write_results,
)
from bench.loadgen import Block, LoadProcess, Request, new_loop
from bookql.core.config import Settings, get_settings
from bookql.server.app import create_app
from bookql.server.prepare import prepare_database

UPC = "a897fe39b1053632"
BOOK_FIELDS = (
    "id upc title price priceExclTax availability inStock rating numReviews imageUrl"
    " category { name slug }"
)
STATS_FIELDS = (
    "totalBooks totalCategories totalStock averagePrice medianPrice minPrice maxPrice"
    " averageRating ratingDistribution { rating count } priceHistogram { low high count }"
    " categories { category { name slug } bookCount averagePrice minPrice maxPrice"
    " averageRating totalStock }"
)
SETTING = "BOOKQL_COMPILED_QUERIES"
SIDES = ("handwritten", "bookql", "plain")
LABELS = {"handwritten": "hand-written", "bookql": "bookql", "plain": "plain Strawberry"}
CLIENTS = (1, 16)


def _graphql(query: str, variables: dict[str, Any] | None = None) -> Request:
    return Request("POST", "/graphql", orjson.dumps({"query": query, "variables": variables}))


@dataclass(frozen=True)
class Scenario:
    """One query: the GraphQL request, and the hand-written endpoint's equivalent."""

    name: str
    label: str
    graphql: Request
    handwritten: Request


BOOKS_QUERY = f"query Books {{ books(first: 100) {{ edges {{ node {{ {BOOK_FIELDS} }} }} }} }}"
SCENARIOS = (
    Scenario(
        "books",
        "books(first: 100)",
        _graphql(BOOKS_QUERY),
        Request("GET", "/books?first=100"),
    ),
    Scenario(
        "book",
        "book(upc:)",
        _graphql(
            f"query Book($upc: String!) {{ book(upc: $upc) {{ {BOOK_FIELDS} }} }}", {"upc": UPC}
        ),
        Request("GET", f"/book?upc={UPC}"),
    ),
    Scenario(
        "stats",
        "stats",
        _graphql(f"query Stats {{ stats {{ {STATS_FIELDS} }} }}"),
        Request("GET", "/stats"),
    ),
)


@dataclass(frozen=True)
class Target:
    """A done-when figure: bookql's ``measure`` of ``scenario`` within ``limit`` times the
    hand-written one (requests/s compare the other way round: hand-written over bookql)."""

    scenario: str
    clients: int
    measure: str
    limit: float


TARGETS = (
    Target("books", 1, "p50_ms", 3.0),
    Target("book", 1, "p50_ms", 2.0),
    Target("books", 16, "rps", 3.0),
    Target("book", 16, "rps", 3.0),
    Target("stats", 1, "p50_ms", 2.0),
)


def request_for(scenario: Scenario, side: str) -> Request:
    return scenario.handwritten if side == "handwritten" else scenario.graphql


def compiled_setting_known() -> bool:
    """Whether this build has the setting; without it both GraphQL sides run the same code."""
    return "compiled_queries" in Settings.model_fields


# -- the database -----------------------------------------------------------------------------


@contextmanager
def prepared_database(base_url: str | None) -> Iterator[dict[str, str]]:
    """A migrated, seeded catalogue (a SQLite file, or a scratch PostgreSQL database created
    beside ``base_url`` and dropped afterwards); yields the servers' environment."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(base_url, Path(tmp), "bookql_bench_catalog") as url,
    ):
        env = {"BOOKQL_DATA_DIR": tmp, "BOOKQL_DATABASE_URL": url}
        prepare_database(Settings(data_dir=Path(tmp), database_url=url))
        yield env


def side_env(side: str) -> dict[str, str]:
    return {SETTING: "false" if side == "plain" else "true"}


# -- the checks: equal answers, the same SQL --------------------------------------------------

_SQL_NOISE = (
    (re.compile(r"::\w+"), ""),  # PostgreSQL casts on bound parameters
    (re.compile(r"%\(\w+\)s|\?|:\w+|\$\d+"), "?"),  # every placeholder style
    (re.compile(r"\s+"), " "),
    (re.compile(r"\(\?(?:, \?)*\)"), "(?)"),  # expanded IN lists
    (re.compile(r" AS \w+"), ""),  # labels
    (re.compile(r" OFFSET \?"), ""),  # SQLite renders OFFSET 0 with every LIMIT
)
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)


def normalized_sql(statement: str) -> str:
    for pattern, replacement in _SQL_NOISE:
        statement = pattern.sub(replacement, statement)
    return statement.strip()


@dataclass
class Captured:
    """One request's response body, the catalogue statements its server ran, the
    connections they ran on and through which drivers; and how many other statements ran
    meanwhile (background work such as a job queue's polling, not the request's)."""

    body: Any = None
    statements: list[str] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    drivers: set[str] = field(default_factory=set)
    background: int = 0


_CATALOG = re.compile(r"\b(?:FROM|JOIN)\s+(?:books|categories)\b", re.IGNORECASE)


@contextmanager
def recording() -> Iterator[Captured]:
    """Every engine's statements in this process, whichever engine the server reads
    through (the async one, or a blocking one on a worker thread)."""
    found = Captured()

    def statement(conn: Connection, _cursor: Any, sql: str, *_args: Any) -> None:
        if not _CATALOG.search(sql):
            found.background += 0 if _TRANSACTION.match(sql) else 1
            return
        found.statements.append(sql)
        if not any(conn is seen for seen in found.connections):
            found.connections.append(conn)  # kept alive: ids must not be reused meanwhile
        found.drivers.add(f"{conn.dialect.driver} ({'async' if conn.dialect.is_async else 'sync'})")

    event.listen(Engine, "before_cursor_execute", statement)
    try:
        yield found
    finally:
        event.remove(Engine, "before_cursor_execute", statement)


@contextmanager
def _compiled(side: str) -> Iterator[None]:
    """``BOOKQL_COMPILED_QUERIES`` as ``side`` wants it while an app is built in-process."""
    before = os.environ.get(SETTING)
    os.environ.update(side_env(side))
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SETTING, None)
        else:
            os.environ[SETTING] = before
        get_settings.cache_clear()


def build_app(side: str, env: Mapping[str, str]) -> Starlette:
    """The ASGI app of ``side`` in this process."""
    paths = {"data_dir": env["BOOKQL_DATA_DIR"], "database_url": env["BOOKQL_DATABASE_URL"]}
    if side == "handwritten":
        return handwritten.create_app(Settings.model_validate(paths))
    with _compiled(side):
        return create_app(Settings.model_validate(paths))


async def capture(side: str, env: Mapping[str, str]) -> dict[str, Captured]:
    """Each scenario's answer and SQL from ``side``, run in this process."""
    app = build_app(side, env)
    found: dict[str, Captured] = {}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        for scenario in SCENARIOS:
            request = request_for(scenario, side)
            with recording() as captured:
                response = await client.request(
                    request.method,
                    request.path,
                    content=request.body or None,
                    headers={"content-type": "application/json"},
                )
            assert response.status_code == 200, (side, scenario.name, response.text)
            captured.body = response.json()
            found[scenario.name] = captured
    return found


def check(env: Mapping[str, str]) -> dict[str, Any]:
    """Equal answers everywhere; each GraphQL side's statements against the hand-written.

    Raises when answers differ (a ratio between different answers means nothing); returns
    the SQL comparison, which only warns: the compiled path may change its SQL first.
    bookql's SQL is the one that must match (its ratios are the targets).
    """
    captured = {side: asyncio.run(capture(side, env)) for side in SIDES}
    report: dict[str, Any] = {}
    for scenario in SCENARIOS:
        baseline = captured["handwritten"][scenario.name]
        assert "errors" not in baseline.body, baseline.body
        entry: dict[str, Any] = {
            "handwritten": {
                "statements": len(baseline.statements),
                "connections": len(baseline.connections),
                "drivers": sorted(baseline.drivers),
            }
        }
        want = Counter(normalized_sql(s) for s in baseline.statements)
        for side in SIDES[1:]:
            got = captured[side][scenario.name]
            if got.body != baseline.body:
                raise AssertionError(
                    f"{LABELS[side]} answers {scenario.label} differently from the hand-written"
                    f" endpoint:\n{str(got.body)[:500]}\n{str(baseline.body)[:500]}"
                )
            have = Counter(normalized_sql(s) for s in got.statements)
            entry[side] = {
                "statements": len(got.statements),
                "connections": len(got.connections),
                "background_statements": got.background,
                "drivers": sorted(got.drivers),
                "same_sql": have == want,
                "same_driver": got.drivers == baseline.drivers,
                "only_graphql": sorted((have - want).elements()),
                "only_handwritten": sorted((want - have).elements()),
            }
        report[scenario.name] = entry
    return report


def print_check(report: dict[str, Any]) -> None:
    """Warns where bookql's SQL differs from the baseline's; plain Strawberry's resolvers
    run their own statements (every column, a DataLoader for the category), as they do."""
    for name, entry in report.items():
        found = entry["bookql"]
        if not found["same_driver"]:
            print(
                f"warning: bookql reads {name} through {', '.join(found['drivers'])}, the"
                f" hand-written endpoint through {', '.join(entry['handwritten']['drivers'])}"
            )
        if found["same_sql"]:
            continue
        print(f"warning: bookql runs other SQL than the hand-written {name}:")
        for statement in found["only_graphql"]:
            print(f"  only bookql: {statement[:400]}")
        for statement in found["only_handwritten"]:
            print(f"  only hand-written: {statement[:400]}")
    rows = [["a request: statements, connections, driver", *(LABELS[s] for s in SIDES)]]
    for name, entry in report.items():
        rows.append(
            [
                name,
                *(
                    f"{entry[s]['statements']}, {entry[s]['connections']},"
                    f" {' '.join(entry[s]['drivers'])}"
                    for s in SIDES
                ),
            ]
        )
    print(table(rows))


# -- revalidation: a 304 beside the full answer ----------------------------------------------

REVALIDATION_LIMIT = 0.33
BOOKS_GET = "/graphql?" + urlencode({"query": BOOKS_QUERY})


def revalidation_requests(server: Server) -> tuple[Request, Request] | None:
    """``books(first: 100)`` over GET in full, and with its tag (a 304); None when the
    server gives no tag (a build without HTTP caching)."""
    full = Request("GET", BOOKS_GET)
    response = httpx.get(server.url + BOOKS_GET, headers={"accept": "application/json"})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    etag = response.headers.get("etag")
    if etag is None:
        return None
    return full, Request("GET", BOOKS_GET, headers=(f"if-none-match: {etag}",), status=304)


def measure_revalidation(
    load: LoadProcess, server: Server, rounds: int, seconds: float
) -> dict[str, list[Block]] | None:
    """Blocks of each, one client, alternating which goes first every round."""
    requests = revalidation_requests(server)
    if requests is None:
        print("note: this build gives no ETag: the 304 is not measured")
        return None
    pairs = list(zip(("full", "not_modified"), requests, strict=True))
    for _, request in pairs:  # warm up
        load.run(server.url, request, 1, seconds / 3)
    blocks: dict[str, list[Block]] = {"full": [], "not_modified": []}
    for number in range(rounds):
        for name, request in pairs if number % 2 == 0 else pairs[::-1]:
            block = load.run(server.url, request, 1, seconds)
            assert block.failures == 0, (name, block)
            blocks[name].append(block)
    return blocks


def revalidation_figures(blocks: dict[str, list[Block]]) -> dict[str, Any]:
    full, not_modified = medians(blocks["full"]), medians(blocks["not_modified"])
    ratio_ = not_modified["p50_ms"] / full["p50_ms"]
    return {
        "full": full,
        "not_modified": not_modified,
        "ratio": ratio_,
        "limit": REVALIDATION_LIMIT,
        "ok": ratio_ < REVALIDATION_LIMIT,
    }


def print_revalidation(found: dict[str, Any]) -> None:
    rows = [["books(first: 100) over GET, 1 client", "p50 ms", "p99 ms", "req/s"]]
    for name, label in (("full", "full answer"), ("not_modified", "304 (If-None-Match)")):
        figures = found[name]
        rows.append(
            [
                label,
                f"{figures['p50_ms']:.2f}",
                f"{figures['p99_ms']:.2f}",
                f"{figures['rps']:,.0f}",
            ]
        )
    print(table(rows))
    verdict = "PASS" if found["ok"] else "MISS"
    print(f"304 / full answer p50: {found['ratio']:.2f}x (target < {found['limit']:g}x) {verdict}")


# -- the measurement --------------------------------------------------------------------------


@contextmanager
def servers(env: dict[str, str]) -> Iterator[dict[str, Server]]:
    """The three servers, one after another (two bookql servers must not race to create
    the development secret), all on core 0."""
    with ExitStack() as stack:
        started = {
            "handwritten": stack.enter_context(
                http_server([sys.executable, "-m", "bench.handwritten"], env, core=0, cwd=ROOT)
            ),
            "bookql": stack.enter_context(bookql_server({**env, **side_env("bookql")}, core=0)),
            "plain": stack.enter_context(bookql_server({**env, **side_env("plain")}, core=0)),
        }
        yield started


def verify_live(started: Mapping[str, Server]) -> None:
    """The running servers answer alike (the in-process check built its own apps)."""
    for scenario in SCENARIOS:
        bodies = {}
        for side, server in started.items():
            request = request_for(scenario, side)
            response = httpx.request(
                request.method,
                server.url + request.path,
                content=request.body or None,
                headers={"content-type": "application/json"},
            )
            bodies[side] = response.json()
        assert bodies["bookql"] == bodies["handwritten"] == bodies["plain"], scenario.name


Measured = dict[str, dict[int, dict[str, list[Block]]]]  # scenario -> clients -> side -> blocks


def measure(
    load: LoadProcess, started: Mapping[str, Server], rounds: int, seconds: float
) -> Measured:
    blocks: Measured = {
        s.name: {c: {side: [] for side in SIDES} for c in CLIENTS} for s in SCENARIOS
    }
    cells = [(scenario, clients) for scenario in SCENARIOS for clients in CLIENTS]
    for scenario, clients in cells:  # warm up: parse and statement caches, pools, connections
        for side in SIDES:
            load.run(started[side].url, request_for(scenario, side), clients, seconds / 3)
    for number in range(rounds):
        for cell, (scenario, clients) in enumerate(cells):
            shift = (number + cell) % len(SIDES)  # each cell's order changes every round
            for side in SIDES[shift:] + SIDES[:shift]:
                block = load.run(started[side].url, request_for(scenario, side), clients, seconds)
                assert block.failures == 0, (side, scenario.name, block)
                blocks[scenario.name][clients][side].append(block)
        print(f"round {number + 1} of {rounds} done", flush=True)
    return blocks


def medians(blocks: list[Block]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(b.p50_ms for b in blocks),
        "p99_ms": statistics.median(b.p99_ms for b in blocks),
        "rps": statistics.median(b.rps for b in blocks),
        "requests": sum(b.requests for b in blocks),
    }


def ratio(figures: Mapping[str, float], baseline: Mapping[str, float], measure: str) -> float:
    """How many times worse than the baseline: slower latency, or fewer requests/s."""
    if measure == "rps":
        return baseline[measure] / figures[measure]
    return figures[measure] / baseline[measure]


Figures = dict[str, dict[int, dict[str, dict[str, float]]]]  # scenario -> clients -> side
UNITS = {"p50_ms": "p50 ms", "p99_ms": "p99 ms", "rps": "req/s"}


def _number(value: float, measure: str) -> str:
    return f"{value:,.0f}" if measure == "rps" else f"{value:,.2f}"


def print_figures(figures: Figures) -> None:
    rows = [["query", "clients", "", *(LABELS[s] for s in SIDES), "bookql", "plain"]]
    for scenario in SCENARIOS:
        for clients in CLIENTS:
            found = figures[scenario.name][clients]
            for measure, unit in UNITS.items():
                rows.append(
                    [
                        scenario.label,
                        str(clients),
                        unit,
                        *(_number(found[side][measure], measure) for side in SIDES),
                        f"{ratio(found['bookql'], found['handwritten'], measure):.2f}x",
                        f"{ratio(found['plain'], found['handwritten'], measure):.2f}x",
                    ]
                )
    print(table(rows))


def evaluate(figures: Figures) -> list[dict[str, Any]]:
    """Each target with both sides' figures and ratios, as ``bench.summary`` reads them."""
    targets = []
    for target in TARGETS:
        found = figures[target.scenario][target.clients]
        label = next(s.label for s in SCENARIOS if s.name == target.scenario)
        bookql_ratio = ratio(found["bookql"], found["handwritten"], target.measure)
        targets.append(
            {
                "measure": f"{label} {UNITS[target.measure]} @{target.clients}",
                "unit": UNITS[target.measure],
                "handwritten": found["handwritten"][target.measure],
                "bookql": found["bookql"][target.measure],
                "plain": found["plain"][target.measure],
                "ratio": bookql_ratio,
                "plain_ratio": ratio(found["plain"], found["handwritten"], target.measure),
                "limit": target.limit,
                "ok": bookql_ratio <= target.limit,
            }
        )
    return targets


def print_targets(targets: list[dict[str, Any]]) -> None:
    rows = [["target", "hand-written", "bookql", "ratio", "limit", "", "plain Strawberry"]]
    for target, found in zip(TARGETS, targets, strict=True):
        rows.append(
            [
                found["measure"],
                _number(found["handwritten"], target.measure),
                _number(found["bookql"], target.measure),
                f"{found['ratio']:.2f}x",
                f"<= {target.limit:g}x",
                "PASS" if found["ok"] else "MISS",
                f"{found['plain_ratio']:.2f}x",
            ]
        )
    print(table(rows))


def report(
    blocks: Measured,
    args: argparse.Namespace,
    check_report: dict[str, Any],
    revalidation: dict[str, list[Block]] | None = None,
) -> None:
    figures: Figures = {
        name: {
            c: {side: medians(found) for side, found in by_side.items()}
            for c, by_side in by_clients.items()
        }
        for name, by_clients in blocks.items()
    }
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print_figures(figures)
    print(
        f"medians of {args.rounds} rounds of {args.seconds:g} s blocks a side, sides rotating;"
        f" {backend}; ratios: times slower than hand-written (req/s: hand-written over side)"
    )
    if not compiled_setting_known():
        print(f"note: this build has no {SETTING}: bookql and plain Strawberry run the same code")
    targets = evaluate(figures)
    print_targets(targets)
    revalidated = revalidation_figures(revalidation) if revalidation else None
    if revalidated is not None:
        print_revalidation(revalidated)
    write_results(
        f"catalog_queries_{backend.lower()}",
        {
            "backend": backend,
            "rounds": args.rounds,
            "seconds_per_block": args.seconds,
            "compiled_setting_known": compiled_setting_known(),
            "code": code_version(),
            "check": check_report,
            "targets": targets,
            "revalidation": revalidated,
            "figures": {
                name: {str(c): by_side for c, by_side in by_clients.items()}
                for name, by_clients in figures.items()
            },
            "blocks": {
                name: {
                    str(c): {side: [asdict(b) for b in found] for side, found in by_side.items()}
                    for c, by_side in by_clients.items()
                }
                for name, by_clients in blocks.items()
            },
        },
    )


# -- where the time goes ----------------------------------------------------------------------


def _asgi_call(app: ASGIApp, request: Request) -> Callable[[], Awaitable[None]]:
    """One request straight into the ASGI app: no HTTP, no client, nothing else profiled."""
    path, _, query = request.path.partition("?")
    headers = [(b"host", b"bench"), (b"accept", b"application/json")]
    if request.body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request.body)).encode()),
        ]

    async def receive() -> Message:
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    async def call() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        await app(scope, receive, send)

    return call


async def _in_process(
    side: str, env: Mapping[str, str], scenario: Scenario, requests: int
) -> tuple[int, float]:
    """``requests`` requests after a tenth as many to warm up; the warm-up count and the
    measured milliseconds a request."""
    app = build_app(side, env)
    call = _asgi_call(app, request_for(scenario, side))
    warm_up = max(20, requests // 10)
    async with app.router.lifespan_context(app):
        for _ in range(warm_up):
            await call()
        started = time.perf_counter()
        for _ in range(requests):
            await call()
        elapsed = time.perf_counter() - started
    return warm_up, elapsed / requests * 1000


@contextmanager
def _profiling_new_threads() -> Iterator[list[cProfile.Profile]]:
    """A profiler in each thread started meanwhile, such as the workers that blocking reads
    run on: a profiler sees only the thread that enabled it."""
    profiles: list[cProfile.Profile] = []

    def start(*_args: Any) -> None:
        sys.setprofile(None)
        profiles.append(cProfile.Profile())
        profiles[-1].enable()

    threading.setprofile(start)
    try:
        yield profiles
    finally:
        threading.setprofile(None)


_WAITS = (
    re.compile(r"^<method '(get|acquire|wait)' of '_(queue.SimpleQueue|thread.lock)' objects>$"),
    re.compile(r"^_worker$|^_connection_worker_thread$|^run$|^_bootstrap"),
)


def _without_waits(stats: pstats.Stats) -> pstats.Stats:
    """Drops the frames that only wait (a worker thread's loop and queue, ``asyncio.run``
    around the event loop's own waiting): heading every list, they would hide the work."""
    entries = stats.stats  # type: ignore[attr-defined]
    for key in list(entries):
        filename, _, function = key
        waits = _WAITS[0].match(function) or (
            _WAITS[1].match(function)
            and filename.endswith(("thread.py", "threading.py", "aiosqlite/core.py", "runners.py"))
        )
        if waits:
            del entries[key]
    return stats


def profile(env: Mapping[str, str], name: str, side: str, requests: int) -> None:
    """Each side's cost a request in this process (no HTTP, uvloop as the servers run), then
    a profile of ``side`` over every thread, warm-up included: the API layer's time."""
    scenario = next(s for s in SCENARIOS if s.name == name)
    for each in SIDES:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            _, ms = runner.run(_in_process(each, env, scenario, requests))
        print(f"{LABELS[each]}: {scenario.label} in-process {ms:.3f} ms a request")
    loop_profile = cProfile.Profile()
    with (
        _profiling_new_threads() as thread_profiles,
        asyncio.Runner(loop_factory=new_loop) as runner,
    ):
        loop_profile.enable()
        warm_up, _ = runner.run(_in_process(side, env, scenario, requests))
        loop_profile.disable()
    stats = pstats.Stats(loop_profile, stream=sys.stdout)
    for thread_profile in thread_profiles:
        thread_profile.disable()
        stats.add(thread_profile)
    _without_waits(stats)
    for sort in ("cumulative", "tottime"):
        print(
            f"\n{LABELS[side]}, {scenario.label}: {warm_up} + {requests} requests,"
            f" {1 + len(thread_profiles)} threads, waiting left out, by {sort}:"
        )
        stats.sort_stats(sort).print_stats(30)


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.2, help="length of one block")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 0.5 s blocks")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BOOKQL_BENCH_DATABASE_URL"),
        help="PostgreSQL: a scratch database is created beside this one (default: SQLite)",
    )
    parser.add_argument("--profile", choices=[s.name for s in SCENARIOS], help="profile only")
    parser.add_argument("--side", choices=SIDES, default="bookql", help="with --profile")
    parser.add_argument("--requests", type=int, default=500, help="with --profile")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.5
    with prepared_database(args.database_url) as env:
        if args.profile:
            profile(env, args.profile, args.side, args.requests)
            return
        check_report = check(env)
        print_check(check_report)
        pin_self(1)
        load = LoadProcess(core=1)
        try:
            with servers(env) as started:
                verify_live(started)
                blocks = measure(load, started, args.rounds, args.seconds)
                revalidation = measure_revalidation(
                    load, started["bookql"], args.rounds, args.seconds
                )
        finally:
            load.close()
    report(blocks, args, check_report, revalidation)


if __name__ == "__main__":
    main()
