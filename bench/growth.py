"""How the catalogue queries grow with the catalogue: the real 1000 books against a large
synthetic catalogue (1,000,000 books on PostgreSQL, 100,000 on SQLite) loaded with
``bookql import`` from ``bench.catalogue_generator`` (issue 17).

Per back end, two databases: a small one, migrated and seeded with the bundled 1000 books
(created for the run, dropped after it), and a large one, kept for reuse under a name keyed
by the generator's version, its seed, the size and the schema's head revision
(``bookql_bench_growth_<books>_<key>``: a PostgreSQL database beside ``--postgres``, or a
SQLite file in ``bench/scratch/``). Building the large one measures the import: books/s of
``bookql import`` (the command's wall time), beside a plain ``COPY`` of the same rows (read
and parsed from the same file) into a bare table without index or trigger on PostgreSQL,
and on SQLite beside a plain ``executemany`` insert into such a table. PostgreSQL's two
databases are then ``VACUUM ANALYZE``d, as autovacuum would after a bulk load; SQLite's are
left as the app leaves them.

The requests go through the real server: four ``bookql serve`` processes, one uvicorn worker
each (as the issue measured), all pinned to core 0: each database served by bookql as
configured (compiled queries) and by the standard executor (``BOOKQL_COMPILED_QUERIES=false``).
This process sends one request at a time over a keep-alive connection from core 1 and times
it until the last byte of the answer (the answer is decoded afterwards, untimed, and checked
for errors). Each round sends every query to every server once, in an order shuffled per
round, so a shared machine's drift falls on all alike; the first rounds warm up. Figures:
p50 and p95 per query and server, the growth ratio (large p50 over small p50) and its target.

    python -m bench.growth [--quick] [--rounds 20] [--only sqlite|postgresql]
        [--postgres-books 1000000] [--sqlite-books 100000] [--fresh]
        [--postgres postgresql+psycopg://root@127.0.0.1:5432/test]
    python -m bench.growth --drop      # drop every kept bookql_bench_growth_* database
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy.engine import make_url

from bench.catalog_queries import BOOK_FIELDS
from bench.catalogue_generator import GENERATOR_VERSION, SEED, search_word, upc, write_file
from bench.harness import (
    ROOT,
    Server,
    bookql_server,
    code_version,
    connect,
    percentile,
    pin_self,
    recreate_database,
    scratch_database,
    set_up,
    table,
    write_results,
)
from bookql.db.migrate import head_revision

PREFIX = "bookql_bench_growth"
SCRATCH = ROOT / "bench" / "scratch"
DEFAULT_POSTGRES = "postgresql+psycopg://root@127.0.0.1:5432/test"
SMALL_UPC = "a897fe39b1053632"  # A Light in the Attic
CATEGORY = "mystery"  # 32 of the real books, ~3% of the synthetic ones
SIZES = {"postgresql": 1_000_000, "sqlite": 100_000}
QUICK_SIZES = {"postgresql": 20_000, "sqlite": 10_000}
PAGE = 50  # the deep page: page 50 of 20 books, books 981-1000 on both databases
PAGE_SIZE = 20
EXECUTORS = {"compiled": "true", "standard": "false"}

STATS_FIELDS = (
    "totalBooks totalCategories totalStock averagePrice medianPrice minPrice maxPrice"
    " averageRating ratingDistribution { rating count } priceHistogram { low high count }"
)
CATEGORY_STATS = (
    "categories { category { name slug } bookCount averagePrice minPrice maxPrice"
    " averageRating totalStock }"
)
EDGES = f"edges {{ cursor node {{ {BOOK_FIELDS} }} }}"


@dataclass(frozen=True)
class Query:
    """One catalogue query of the issue's table, and the growth it may show."""

    name: str
    label: str
    document: str
    target: float
    variables: tuple[str, ...] = ()  # taken from the database's own values (upc, after)


FIXED_PAGE = 1.5  # fixed-size pages, and categories { bookCount books(first: 5) }
FILTERED_COUNT = 3.0  # with totalCount over category, price and rating filters
STATS = 2.0
SEARCH = 5.0


def _search_label() -> str:
    return f'search "{search_word()}" by relevance, first 20'


QUERIES = (
    Query(
        "page",
        "books(first: 100)",
        f"query Page {{ books(first: 100) {{ {EDGES} }} }}",
        FIXED_PAGE,
    ),
    Query(
        "page_total",
        "books(first: 100) + totalCount",
        f"query PageTotal {{ books(first: 100) {{ totalCount {EDGES} }} }}",
        FIXED_PAGE,
    ),
    Query(
        "page_50_total",
        f"books page {PAGE} of {PAGE_SIZE} + totalCount",
        "query DeepPage($after: String) {"
        f" books(first: {PAGE_SIZE}, after: $after) {{ totalCount {EDGES} }} }}",
        FIXED_PAGE,
        ("after",),
    ),
    Query(
        "last_total",
        "books(last: 100) + totalCount",
        f"query LastPage {{ books(last: 100) {{ totalCount {EDGES} }} }}",
        FIXED_PAGE,
    ),
    Query(
        "price_rating_total",
        "price 20-30, rating >= 4, PRICE ASC, first 20 + totalCount",
        "query PriceRating { books(first: 20,"
        " filter: {priceMin: 20, priceMax: 30, ratingMin: 4},"
        f" orderBy: [{{field: PRICE, direction: ASC}}]) {{ totalCount {EDGES} }} }}",
        FILTERED_COUNT,
    ),
    Query(
        "category_rating",
        f'category "{CATEGORY}", RATING DESC, first 20',
        f'query CategoryRating {{ books(first: 20, filter: {{category: "{CATEGORY}"}},'
        f" orderBy: [{{field: RATING, direction: DESC}}]) {{ {EDGES} }} }}",
        FIXED_PAGE,
    ),
    Query("search", "", "", SEARCH),  # the word is the generator's: see ``queries()``
    Query(
        "stats",
        "stats (totals, median, ratings, histogram)",
        f"query Stats {{ stats {{ {STATS_FIELDS} }} }}",
        STATS,
    ),
    Query(
        "stats_categories",
        "stats { categories }",
        f"query StatsCategories {{ stats {{ {CATEGORY_STATS} }} }}",
        STATS,
    ),
    Query(
        "categories_books",
        "categories { bookCount books(first: 5) }",
        f"query CategoriesBooks {{ categories {{ name slug bookCount"
        f" books(first: 5) {{ {EDGES} }} }} }}",
        FIXED_PAGE,
    ),
    Query(
        "book",
        "book(upc:)",
        f"query Book($upc: String!) {{ book(upc: $upc) {{ {BOOK_FIELDS} }} }}",
        FIXED_PAGE,
        ("upc",),
    ),
)


def queries() -> tuple[Query, ...]:
    """The queries, the search one for the generator's common word."""
    word = search_word()
    found = Query(
        "search",
        _search_label(),
        f'query Search {{ books(first: 20, search: "{word}") {{ {EDGES} }} }}',
        SEARCH,
    )
    return tuple(found if q.name == "search" else q for q in QUERIES)


# -- the large database: kept, keyed --------------------------------------------------------


def key(books: int, seed: int = SEED) -> dict[str, Any]:
    """What the large database's content depends on: a different key, a different database."""
    return {"generator": GENERATOR_VERSION, "seed": seed, "books": books, "schema": head_revision()}


def scratch_name(books: int, seed: int = SEED) -> str:
    digest = hashlib.sha256(json.dumps(key(books, seed), sort_keys=True).encode()).hexdigest()
    return f"{PREFIX}_{books}_{digest[:10]}"


@dataclass
class Load:
    """How the large database was built (stored with it, printed again on reuse)."""

    books: int
    key: dict[str, Any]
    built_at: str
    generate_s: float
    import_s: float
    baseline_s: float
    baseline: str  # what the baseline was: plain COPY, or plain executemany
    import_output: str
    reused: bool = False

    @property
    def import_rate(self) -> float:
        return self.books / self.import_s

    @property
    def baseline_rate(self) -> float:
        return self.books / self.baseline_s


def _postgres_url(base: str, name: str) -> str:
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def _postgres_marker(base: str, name: str) -> Load | None:
    with connect(base) as conn:
        found = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if found is None or not found[0]:
        return None
    return Load(**{**json.loads(found[0]), "reused": True})


def _sqlite_paths(name: str) -> tuple[Path, Path]:
    return SCRATCH / f"{name}.db", SCRATCH / f"{name}.json"


def _columns(line: str) -> tuple[Any, ...]:
    """A line's values as a plain table stores them: what the baselines load."""
    r = json.loads(line)
    return (
        r["upc"], r["title"], r["product_type"], r["price_excl_tax"], r["price_incl_tax"],
        r["tax"], r["currency"], r["availability_count"], r["rating"], r["num_reviews"],
        r["description"], r["category"], r["image_url"], r["product_url"],
    )  # fmt: skip


BARE_TABLE = (
    "CREATE TABLE bench_plain (upc text, title text, product_type text, price_excl_tax"
    " numeric, price_incl_tax numeric, tax numeric, currency text, availability integer,"
    " rating integer, num_reviews integer, description text, category text, image_url text,"
    " product_url text)"
)


def plain_copy(url: str, path: Path) -> float:
    """Seconds to read, parse and ``COPY`` the file's rows into a bare table (then dropped)."""
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain")
        conn.execute(BARE_TABLE)
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            path.open(encoding="utf-8") as lines,
            cursor.copy("COPY bench_plain FROM STDIN") as copy,
        ):
            for line in lines:
                copy.write_row(_columns(line))
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_plain")
    return seconds


def plain_insert(database: Path, path: Path) -> float:
    """Seconds to read, parse and insert the file's rows with one ``executemany`` into a bare
    table of a SQLite file of its own (then removed)."""
    database.unlink(missing_ok=True)
    conn = sqlite3.connect(database)
    try:
        conn.execute(BARE_TABLE)
        started = time.perf_counter()
        with path.open(encoding="utf-8") as lines:
            conn.executemany(
                "INSERT INTO bench_plain VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_columns(line) for line in lines),
            )
        conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()
        database.unlink(missing_ok=True)


def bookql_import(env: Mapping[str, str], path: Path) -> tuple[float, str]:
    """``bookql import PATH``'s wall time and summary line."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bookql", "import", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bookql import failed: {done.stderr[-2000:]}")
    return seconds, done.stdout.strip()


def build(url: str, books: int, seed: int, data_dir: Path, baseline: str) -> Load:
    """A migrated database (``url``, existing and empty) filled with ``books`` generated
    books through ``bookql import``, and the import's figures."""
    env = {"BOOKQL_DATABASE_URL": url, "BOOKQL_DATA_DIR": str(data_dir)}
    set_up(env, seed=False)
    with tempfile.TemporaryDirectory(prefix="bookql-bench-growth-") as tmp:
        path = Path(tmp) / "catalogue.jsonl"
        print(f"generating {books:,} books (seed {seed}) ...", flush=True)
        started = time.perf_counter()
        write_file(path, books, seed)
        generated = time.perf_counter() - started
        print(f"importing them with `bookql import` ({path.stat().st_size / 2**20:,.0f} MiB) ...",
              flush=True)  # fmt: skip
        imported, output = bookql_import(env, path)
        print(f"  {output} in {imported:.1f} s; now the {baseline} baseline ...", flush=True)
        if baseline == "plain COPY":
            floor = plain_copy(url, path)
        else:
            floor = plain_insert(Path(tmp) / "plain.db", path)
    return Load(
        books=books,
        key=key(books, seed),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        generate_s=generated,
        import_s=imported,
        baseline_s=floor,
        baseline=baseline,
        import_output=output,
    )


def vacuum_analyze(url: str) -> None:
    with connect(url) as conn:
        conn.execute("VACUUM ANALYZE")


@contextmanager
def large_postgres(base: str, books: int, seed: int, fresh: bool) -> Iterator[tuple[str, Load]]:
    name = scratch_name(books, seed)
    url = _postgres_url(base, name)
    found = None if fresh else _postgres_marker(base, name)
    if found is None:
        recreate_database(url)
        with tempfile.TemporaryDirectory() as data_dir:
            found = build(url, books, seed, Path(data_dir), "plain COPY")
        vacuum_analyze(url)
        marker = json.dumps(asdict(found) | {"reused": False}).replace("'", "''")
        with connect(base) as conn:
            conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{marker}'")
    yield url, found


@contextmanager
def large_sqlite(books: int, seed: int, fresh: bool) -> Iterator[tuple[str, Load]]:
    name = scratch_name(books, seed)
    database, marker = _sqlite_paths(name)
    url = f"sqlite:///{database}"
    reused = not fresh and database.exists() and marker.exists()
    if not reused:
        SCRATCH.mkdir(exist_ok=True)
        marker.unlink(missing_ok=True)
        for stale in SCRATCH.glob(f"{name}.db*"):
            stale.unlink()
        with tempfile.TemporaryDirectory() as data_dir:
            load = build(url, books, seed, Path(data_dir), "plain executemany")
        marker.write_text(json.dumps(asdict(load), indent=2) + "\n")
    yield url, Load(**{**json.loads(marker.read_text()), "reused": reused})


@contextmanager
def small_database(backend: str, base: str, directory: Path) -> Iterator[str]:
    """The real 1000 books in a database created for this run and dropped after it."""
    with scratch_database(
        base if backend == "postgresql" else None, directory, f"{PREFIX}_small"
    ) as url:
        set_up({"BOOKQL_DATABASE_URL": url, "BOOKQL_DATA_DIR": str(directory)})
        if backend == "postgresql":
            vacuum_analyze(url)
        yield url


def drop_all(base: str, prefix: str = PREFIX) -> list[str]:
    """Every kept growth database whose name starts with ``prefix``: PostgreSQL's beside
    ``base``, SQLite's in bench/scratch."""
    dropped = []
    try:
        with connect(base) as conn:
            names = [
                n
                for (n,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
                )
            ]
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
    except psycopg.OperationalError as error:
        print(f"PostgreSQL not reached ({error}); only SQLite files dropped")
    if SCRATCH.exists():
        for path in sorted(SCRATCH.glob(f"{prefix}*")):
            path.unlink()
            dropped.append(str(path))
    return dropped


# -- measuring ------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection; a request is timed until its answer's last byte."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self._headers = {"content-type": "application/json", "accept": "application/json"}

    def timed(self, body: bytes) -> tuple[float, bytes]:
        try:
            return self._timed(body)
        except (ConnectionError, http.client.RemoteDisconnected):
            # The server closed the idle connection (uvicorn's keep-alive lasts 5 s, and a
            # slow round leaves a server idle longer): connect again, time the request anew.
            self._conn.close()
            return self._timed(body)

    def _timed(self, body: bytes) -> tuple[float, bytes]:
        started = time.perf_counter()
        self._conn.request("POST", "/graphql", body, self._headers)
        response = self._conn.getresponse()
        answer = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {answer[:500]!r}")
        return seconds, answer

    def data(self, body: bytes) -> Any:
        _, answer = self.timed(body)
        found = json.loads(answer)
        if "errors" in found:
            raise RuntimeError(f"errors: {found['errors']}")
        return found["data"]

    def close(self) -> None:
        self._conn.close()


def _body(query: str, variables: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps({"query": query, "variables": dict(variables or {})}).encode()


def deep_cursor(client: Client) -> tuple[str | None, int]:
    """The cursor after the first ``(PAGE - 1) * PAGE_SIZE`` books in site order, and the
    page it opens: ``PAGE``, or the last full page of a smaller catalogue."""
    after: str | None = None
    document = (
        f"query($a: String) {{ books(first: {PAGE_SIZE}, after: $a)"
        " { pageInfo { endCursor hasNextPage } } }"
    )
    for page in range(1, PAGE):
        info = client.data(_body(document, {"a": after}))["books"]["pageInfo"]
        if not info["hasNextPage"]:
            return after, page
        after = info["endCursor"]
    return after, PAGE


def search_matches(client: Client) -> int:
    document = "query($w: String!) { books(first: 1, search: $w) { totalCount } }"
    data = client.data(_body(document, {"w": search_word()}))
    return int(data["books"]["totalCount"])


@dataclass
class Side:
    """One database (small or large) served by one executor."""

    size: str
    executor: str
    client: Client
    variables: dict[str, Any]
    samples: dict[str, list[float]] = field(default_factory=dict)


def measure(
    sides: list[Side], chosen: tuple[Query, ...], rounds: int, warm_up: int
) -> dict[str, Any]:
    """Every query on every side once a round, in a shuffled order; the warm-up rounds
    dropped. Returns the answers compared between the two executors."""
    cells = [(q, s) for q in chosen for s in sides]
    bodies = {
        (q.name, id(s)): _body(q.document, {v: s.variables[v] for v in q.variables})
        for q, s in cells
    }
    answers: dict[tuple[str, str, str], Any] = {}
    order = random.Random(17)
    for number in range(warm_up + rounds):
        order.shuffle(cells)
        for query, side in cells:
            seconds, answer = side.client.timed(bodies[(query.name, id(side))])
            if number == 0:
                found = json.loads(answer)
                if "errors" in found:
                    raise RuntimeError(f"{query.name} on {side.size}/{side.executor}: {found}")
                answers[(query.name, side.size, side.executor)] = found["data"]
            if number >= warm_up:
                side.samples.setdefault(query.name, []).append(seconds * 1000)
        if number >= warm_up:
            print(f"  round {number - warm_up + 1} of {rounds}", flush=True)
    different = sorted(
        f"{name} ({size})"
        for (name, size, executor), data in answers.items()
        if executor == "compiled" and answers[(name, size, "standard")] != data
    )
    return {"answers_differ": different}


@contextmanager
def serving(env: Mapping[str, str]) -> Iterator[dict[str, Server]]:
    """The database served by each executor, one after another (they share a data dir)."""
    with ExitStack() as stack:
        yield {
            executor: stack.enter_context(
                bookql_server({**env, "BOOKQL_COMPILED_QUERIES": flag}, core=0)
            )
            for executor, flag in EXECUTORS.items()
        }


def run_backend(
    backend: str, base: str, books: int, rounds: int, warm_up: int, fresh: bool, seed: int
) -> dict[str, Any]:
    chosen = queries()
    print(f"\n== {backend}: 1,000 real books against {books:,} synthetic ones", flush=True)
    with ExitStack() as stack:
        if backend == "postgresql":
            large_url, load = stack.enter_context(large_postgres(base, books, seed, fresh))
        else:
            large_url, load = stack.enter_context(large_sqlite(books, seed, fresh))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bookql-bench-")))
        (tmp / "small").mkdir()
        (tmp / "large").mkdir()
        small_url = stack.enter_context(small_database(backend, base, tmp / "small"))
        urls = {"small": small_url, "large": large_url}
        sides: list[Side] = []
        matches: dict[str, int] = {}
        pages: dict[str, int] = {}
        for size, url in urls.items():
            env = {"BOOKQL_DATABASE_URL": url, "BOOKQL_DATA_DIR": str(tmp / size)}
            servers = stack.enter_context(serving(env))
            variables: dict[str, Any] = {
                "upc": SMALL_UPC if size == "small" else upc(books // 2, seed)
            }
            for executor, server in servers.items():
                client = Client(server.url)
                stack.callback(client.close)
                sides.append(Side(size, executor, client, variables))
            variables["after"], pages[size] = deep_cursor(sides[-1].client)
            matches[size] = search_matches(sides[-1].client)
        print(
            f"measuring {len(chosen)} queries x {len(sides)} servers, {rounds} rounds", flush=True
        )
        checked = measure(sides, chosen, rounds, warm_up)
    if len(set(pages.values())) > 1:
        print(f"note: the deep page is page {pages['large']} of the large catalogue (too small)")
    return report(backend, books, chosen, sides, load, matches, checked)


def _p(samples: list[float], q: float) -> float:
    return statistics.median(samples) if q == 50 else percentile(samples, q)


def report(
    backend: str,
    books: int,
    chosen: tuple[Query, ...],
    sides: list[Side],
    load: Load,
    matches: Mapping[str, int],
    checked: Mapping[str, Any],
) -> dict[str, Any]:
    by = {(s.size, s.executor): s for s in sides}
    rows: list[dict[str, Any]] = []
    for query in chosen:
        row: dict[str, Any] = {"name": query.name, "label": query.label, "target": query.target}
        for executor in EXECUTORS:
            small = by[("small", executor)].samples[query.name]
            large = by[("large", executor)].samples[query.name]
            row[executor] = {
                "small_p50_ms": _p(small, 50),
                "small_p95_ms": _p(small, 95),
                "large_p50_ms": _p(large, 50),
                "large_p95_ms": _p(large, 95),
                "growth": _p(large, 50) / _p(small, 50),
            }
        row["ok"] = row["compiled"]["growth"] <= query.target
        rows.append(row)
    big = f"{books // 1000:,}k" if books < 1_000_000 else f"{books / 1e6:g}M"
    lines = [
        ["query", "1k p50", "1k p95", f"{big} p50", f"{big} p95", "growth", "target", "",
         "standard: 1k p50", f"{big} p50", "growth"],
    ]  # fmt: skip
    for row in rows:
        c, s = row["compiled"], row["standard"]
        lines.append(
            [
                row["label"],
                f"{c['small_p50_ms']:,.2f}",
                f"{c['small_p95_ms']:,.2f}",
                f"{c['large_p50_ms']:,.2f}",
                f"{c['large_p95_ms']:,.2f}",
                f"{c['growth']:,.1f}x",
                f"<= {row['target']:g}x",
                "met" if row["ok"] else "MISSED",
                f"{s['small_p50_ms']:,.2f}",
                f"{s['large_p50_ms']:,.2f}",
                f"{s['growth']:,.1f}x",
            ]
        )
    word = search_word()
    share = matches["large"] / books
    print(f"\n{backend}: ms per request, {len(sides[0].samples[chosen[0].name])} rounds;"
          f" bookql as configured (compiled), the standard executor beside")  # fmt: skip
    print(table(lines))
    print(
        f'search word "{word}" (bench.catalogue_generator.search_word()): matches'
        f" {matches['large']:,} of {books:,} synthetic books ({share:.0%}),"
        f" {matches['small']} of the 1,000 real ones"
    )
    print(f"category filter: {CATEGORY}; deep page: page {PAGE} of {PAGE_SIZE} books")
    if checked["answers_differ"]:
        print("warning: the executors answer differently: " + ", ".join(checked["answers_differ"]))
    when = f"built {load.built_at}" + (", reused" if load.reused else "")
    print(
        f"import of {books:,} books ({when}): `bookql import` {load.import_rate:,.0f} books/s"
        f" ({load.import_s:,.1f} s: {load.import_output}), {load.baseline} of the same rows"
        f" {load.baseline_rate:,.0f} books/s ({load.baseline_s:,.1f} s):"
        f" {load.import_rate / load.baseline_rate:.2f}x; generating them took"
        f" {load.generate_s:,.1f} s"
    )
    return {
        "backend": backend,
        "books": books,
        "search_word": word,
        "search_matches": dict(matches),
        "category": CATEGORY,
        "load": asdict(load)
        | {"import_rate": load.import_rate, "baseline_rate": load.baseline_rate},
        "answers_differ": checked["answers_differ"],
        "queries": rows,
        "samples": {f"{s.size}/{s.executor}": s.samples for s in sides},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="20k books on PostgreSQL, 10k on SQLite, 6 rounds"
    )
    parser.add_argument("--rounds", type=int, help="measured rounds (default 20, quick 6)")
    parser.add_argument("--warm-up", type=int, default=2, help="rounds not counted")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--postgres-books", type=int)
    parser.add_argument("--sqlite-books", type=int)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--fresh", action="store_true", help="rebuild the large database even if kept"
    )
    parser.add_argument("--drop", action="store_true", help="drop the kept databases and exit")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BOOKQL_BENCH_DATABASE_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL database beside which the scratch ones are created",
    )
    args = parser.parse_args(argv)
    base = make_url(args.postgres).set(drivername="postgresql+psycopg")
    postgres = base.render_as_string(hide_password=False)
    if args.drop:
        for name in drop_all(postgres):
            print(f"dropped {name}")
        return
    sizes = dict(QUICK_SIZES if args.quick else SIZES)
    if args.postgres_books:
        sizes["postgresql"] = args.postgres_books
    if args.sqlite_books:
        sizes["sqlite"] = args.sqlite_books
    rounds = args.rounds or (6 if args.quick else 20)
    backends = [b for b in ("postgresql", "sqlite") if args.only in (None, b)]
    pin_self(1)
    found = [
        run_backend(b, postgres, sizes[b], rounds, args.warm_up, args.fresh, args.seed)
        for b in backends
    ]
    path = write_results(
        "growth-quick" if args.quick else "growth",
        {
            "code": code_version(),
            "quick": args.quick,
            "rounds": rounds,
            "generator_version": GENERATOR_VERSION,
            "backends": found,
        },
    )
    print(f"\nwritten: {path}; kept databases: `python -m bench.growth --drop` drops them")


if __name__ == "__main__":
    main()
