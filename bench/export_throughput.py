"""The training data in bulk, side by side: a bare ``COPY … TO STDOUT`` of the exported
columns read by psycopg in this process (the baseline), the ``trainingData`` subscription
over SSE, and ``GET /export/training-data`` as JSON Lines and as CSV; and the server's peak
memory while it streams the last 100k rows and while it streams all of them.

The catalogue is synthetic (``--rows`` books, 50 categories, varied titles and descriptions)
in a fresh PostgreSQL database, loaded by ``bench.synthetic`` (``INSERT … SELECT``); the
stored features are then filled by the project's own ``refresh_features`` (setup, not
measured: about 4 minutes for a million books). The server is a real ``bookql serve`` (one
worker, core 0); the client, on core 1, counts rows without decoding them (``rowCount`` of
each event, newlines of each file) and checks only the last batch, so the figures are the
server's. Each round runs the four side by side, then, for where the time goes, the
server's own batch queries and ``TrainingData.stream`` in this process, without HTTP.
Peak memory is the largest ``VmRSS`` of the server sampled every 20 ms, each kind of stream
on a server of its own. Target: the subscription and the export at >= 50% of the COPY rate;
memory flat (the peak for all rows close to the peak for the last 100k).

    python -m bench.export_throughput [--rows 1000000] [--rounds 2] [--keep] [--reuse]
        [--database-url postgresql+psycopg://root@127.0.0.1:5432/bookql_bench_export]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.harness import (
    RssSampler,
    Server,
    bookql_server,
    code_version,
    connect,
    create_users,
    login,
    median,
    pin_self,
    recreate_database,
    run_bookql,
    status_kib,
    table,
    times,
    write_results,
)
from bench.synthetic import load_catalog
from bookql.core.config import Settings
from bookql.db.engine import create_async_db_engine
from bookql.ml.dataset import (
    COLUMN_NAMES,
    COLUMNS,
    Shape,
    TrainingData,
    batch_statement,
    cursor_after,
    refresh_features,
)
from bookql.ml.features import FEATURES, LABEL

DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/bookql_bench_export"
BATCH_FIELDS = """{ __type(name: "TrainingDataBatch") { fields { name } } }"""
SUBSCRIPTION = """subscription($n: Int!, $a: String) {
    trainingData(batchSize: $n, after: $a) { rowCount cursor %s } }"""
WARM_UP_ROWS = 1_000

# The baseline reads what the server reads, where it reads it, minus the row rendering.
_EXPRESSIONS = {
    "upc": "b.upc",
    "category": "c.name",
    LABEL: "(b.price_incl_tax_pence / 100.0)::float8",
}
_FROM = "FROM book_features f JOIN books b ON b.id = f.book_id"
_SOURCE = (
    f" {_FROM} JOIN categories c ON c.id = b.category_id"
    " WHERE b.removed_at IS NULL AND f.book_id > "
)


def bare_copy(after: int) -> str:
    assert list(COLUMN_NAMES) == ["upc", "category", *FEATURES[1:], LABEL], COLUMN_NAMES
    columns = ", ".join(_EXPRESSIONS.get(c.name, f"f.{c.name}") for c in COLUMNS)
    return f"COPY (SELECT f.book_id, {columns}{_SOURCE}{after} ORDER BY f.book_id) TO STDOUT"


# -- the database -----------------------------------------------------------------------------


def _reusable(url: str, rows: int) -> bool:
    """Whether the database exists with ``rows`` listed books, every one with features."""
    try:
        with connect(url) as conn:
            found = conn.execute(
                "SELECT (SELECT count(*) FROM books WHERE removed_at IS NULL),"
                " (SELECT count(*) FROM book_features), (SELECT count(*) FROM users"
                " WHERE username = 'bench')"
            ).fetchone()
    except psycopg.Error:
        return False
    return found == (rows, rows, 1)


async def _refresh(settings: Settings) -> int:
    engine = create_async_db_engine(settings)
    try:
        return await refresh_features(engine)
    finally:
        await engine.dispose()


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Run:
    """One stream: how many rows in how long, the wait for the first, the client's CPU."""

    rows: int
    seconds: float
    first_row_s: float
    client_cpu_s: float
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    hwm_mib: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _measured(pid: int | None, stream: Callable[[], Run]) -> Run:
    if pid is None:
        return stream()
    with RssSampler(pid).running() as sampler:
        run = stream()
    run.rss_start_mib = sampler.start_kib / 1024
    run.rss_peak_mib = sampler.peak_kib / 1024
    run.hwm_mib = None if sampler.hwm_kib is None else sampler.hwm_kib / 1024
    return run


def copy_rows(url: str, statement: Any) -> Run:
    """A COPY read row by row by a plain (blocking) psycopg connection; nothing else done."""
    with connect(url) as conn, conn.cursor() as cursor:
        rows = 0
        first = 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        with cursor.copy(statement) as copy:
            for _row in copy:
                if rows == 0:
                    first = time.perf_counter() - started
                rows += 1
        seconds = time.perf_counter() - started
        return Run(rows, seconds, first, time.process_time() - cpu)


def batch_rows(url: str, statement: str, batch_size: int) -> Run:
    """The server's batch query, looped by a plain psycopg connection in one snapshot:
    what the database itself costs, without the server's event loop or HTTP."""
    with connect(url) as conn, conn.cursor() as cursor:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rows = 0
        first = 0.0
        after = 0
        cpu = time.process_time()
        started = time.perf_counter()
        while True:
            found = cursor.execute(statement, {"after": after, "size": batch_size}).fetchone()
            if found is None or not found[1]:
                break
            if rows == 0:
                first = time.perf_counter() - started
            after, count = found[0], found[1]
            rows += count
        seconds = time.perf_counter() - started
        return Run(rows, seconds, first, time.process_time() - cpu)


async def _stream_rows(settings: Settings, shape: Shape, batch_size: int) -> Run:
    engine = create_async_db_engine(settings)
    try:
        async with engine.connect():
            pass  # a warm pool, as in the server
        data = TrainingData(engine, limit=1)
        rows = 0
        first = 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        async for chunk in data.stream(shape, after=0, batch_size=batch_size):
            if rows == 0:
                first = time.perf_counter() - started
            rows += chunk.rows
        seconds = time.perf_counter() - started
        return Run(rows, seconds, first, time.process_time() - cpu)
    finally:
        await engine.dispose()


def stream_rows(settings: Settings, shape: Shape, batch_size: int) -> Run:
    """``TrainingData.stream`` in this process: the server's batches without the server."""
    return asyncio.run(_stream_rows(settings, shape, batch_size))


_ROW_COUNT = re.compile(rb'"rowCount":\s*(\d+)')
_EVENT_END = b"\r\n\r\n"
_NEXT = b"event: next\r\ndata: "
_COMPLETE = b"event: complete\r\n"


def _events(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Server-sent events, each as bytes, from a stream cut anywhere."""
    buffer = bytearray()
    scanned = 0
    for piece in pieces:
        buffer += piece
        start = 0
        while (end := buffer.find(_EVENT_END, scanned)) != -1:
            yield bytes(buffer[start:end])
            start = scanned = end + len(_EVENT_END)
        if start:
            del buffer[:start]
        scanned = max(0, len(buffer) - len(_EVENT_END) + 1)
    assert not buffer.strip(), f"a partial event at the end: {bytes(buffer[:200])!r}"


def _check_rows(lines: list[bytes], shape: Shape) -> None:
    for line in lines:
        if shape is Shape.ARRAYS:
            row = orjson.loads(line)
            assert isinstance(row, list) and len(row) == len(COLUMNS), line
        elif shape is Shape.OBJECTS:
            row = orjson.loads(line)
            assert isinstance(row, dict) and tuple(row) == COLUMN_NAMES, line
        else:
            (values,) = csv.reader([line.decode()])
            assert len(values) == len(COLUMNS), line


def subscription_rows(
    client: httpx.Client, rows_field: str, after: str | None, batch_size: int
) -> Run:
    """``trainingData`` over SSE; rows counted from each event's ``rowCount`` alone."""
    body = {"query": SUBSCRIPTION % rows_field, "variables": {"n": batch_size, "a": after}}
    rows = 0
    first = 0.0
    last: bytes | None = None
    completed = False
    cpu = time.process_time()
    started = time.perf_counter()
    with client.stream(
        "POST", "/graphql", json=body, headers={"accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200, response.read()
        for event in _events(response.iter_raw()):
            if event.startswith(_NEXT):
                # rowCount comes before the rows string in the (ordered) response
                found = _ROW_COUNT.search(event, len(_NEXT), len(_NEXT) + 200)
                if found is None:
                    raise RuntimeError(f"not a batch: {event[:2000]!r}")
                if rows == 0:
                    first = time.perf_counter() - started
                rows += int(found.group(1))
                last = event
            elif event.startswith(_COMPLETE):
                completed = True
            elif not event.startswith(b":"):  # ": ping" heartbeats
                raise RuntimeError(f"unexpected event: {event[:2000]!r}")
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    assert completed and last is not None, "the stream ended without `complete`"
    batch = orjson.loads(last[len(_NEXT) :])["data"]["trainingData"]
    lines = batch[rows_field].encode().splitlines()
    assert len(lines) == batch["rowCount"], (len(lines), batch["rowCount"])
    _check_rows(lines, Shape.ARRAYS)
    return Run(rows, seconds, first, client_cpu)


def export_rows(client: httpx.Client, file_format: str, after: str | None) -> Run:
    """``GET /export/training-data``; rows counted as newlines (CSV: less the header)."""
    params = {"format": file_format} | ({"after": after} if after else {})
    newlines = 0
    first = 0.0
    tail = b""
    cpu = time.process_time()
    started = time.perf_counter()
    with client.stream("GET", "/export/training-data", params=params) as response:
        assert response.status_code == 200, response.read()
        header = 1 if file_format == "csv" else 0  # sent before the stream even starts
        for piece in response.iter_raw():
            newlines += piece.count(b"\n")
            if not first and newlines > header:
                first = time.perf_counter() - started
            tail = (tail + piece)[-4096:] if len(piece) < 4096 else piece[-4096:]
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    lines = tail.splitlines()[-3:]
    _check_rows(lines, Shape.CSV if file_format == "csv" else Shape.OBJECTS)
    return Run(newlines - header, seconds, first, client_cpu)


# -- the bench ------------------------------------------------------------------------------

METHODS = ("copy", "subscription", "export_jsonl", "export_csv")
LABELS = {
    "copy": "COPY … TO STDOUT (psycopg, bare columns)",
    "subscription": "trainingData subscription (SSE)",
    "export_jsonl": "GET /export/training-data jsonl",
    "export_csv": "GET /export/training-data csv",
}
SHAPES = {"subscription": Shape.ARRAYS, "export_jsonl": Shape.OBJECTS, "export_csv": Shape.CSV}


@dataclass
class Streams:
    """The four streams against one server (a book id to start after, or all)."""

    database_url: str
    server: Server
    client: httpx.Client
    rows_field: str
    batch_size: int

    def run(self, method: str, after_id: int = 0, *, sample: bool = True) -> Run:
        after = cursor_after(after_id) if after_id else None
        streams: dict[str, Callable[[], Run]] = {
            "copy": lambda: copy_rows(self.database_url, bare_copy(after_id)),
            "subscription": lambda: subscription_rows(
                self.client, self.rows_field, after, self.batch_size
            ),
            "export_jsonl": lambda: export_rows(self.client, "jsonl", after),
            "export_csv": lambda: export_rows(self.client, "csv", after),
        }
        return _measured(self.server.process.pid if sample else None, streams[method])


@contextmanager
def serving(env: dict[str, str], database_url: str, batch_size: int) -> Iterator[Streams]:
    with bookql_server(env, core=0) as server:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        if children.exists() and children.read_text().strip():
            print(f"warning: the server has child processes ({children.read_text().strip()}):"
                  " only the parent's memory is sampled")  # fmt: skip
        token = login(server.url, "bench")
        with httpx.Client(
            base_url=server.url,
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(600, connect=10),
        ) as client:
            fields = client.post("/graphql", json={"query": BATCH_FIELDS}).json()
            batch_type = (fields.get("data") or {}).get("__type") or {}
            names = {f["name"] for f in batch_type.get("fields") or []}
            # the field that carries the rows: `rows`, or `jsonl` in the renamed schema
            rows_field = "jsonl" if "jsonl" in names else "rows"
            yield Streams(database_url, server, client, rows_field, batch_size)


def _diagnostics(url: str, settings: Settings, batch_size: int) -> dict[str, Callable[[], Run]]:
    """Where the time goes, in this process and without HTTP: the server's own batch
    queries looped by plain psycopg, and ``TrainingData.stream`` as the server runs it."""
    found: dict[str, Callable[[], Run]] = {}
    for method, shape in SHAPES.items():

        def queries(shape: Shape = shape) -> Run:
            return batch_rows(url, batch_statement(shape), batch_size)

        found[f"the server's batch query for {method}, plain psycopg"] = queries
    for method, shape in SHAPES.items():

        def batches(shape: Shape = shape) -> Run:
            return stream_rows(settings, shape, batch_size)

        found[f"TrainingData.stream({shape.value}) for {method}"] = batches
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic books")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each stream (best taken)")
    parser.add_argument("--tail", type=int, default=100_000, help="rows of the short streams")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="created and dropped here")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="use a database kept by --keep if it fits --rows"
    )
    args = parser.parse_args()
    url: str = args.database_url
    tail = args.tail if args.tail < args.rows else args.rows // 10
    code = code_version()  # what this process imported; each server imports afresh
    pin_self(1)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "BOOKQL_DATABASE_URL": url,
            "BOOKQL_DATA_DIR": tmp,
            "BOOKQL_ACCESS_TOKEN_TTL_SECONDS": "3600",
        }
        settings = Settings(database_url=url, data_dir=Path(tmp))
        setup: dict[str, float] = {}
        reused = args.reuse and _reusable(url, args.rows)
        if not reused:
            recreate_database(url)
        try:
            if not reused:
                setup = _set_up(url, env, settings, args.rows)
            started = time.perf_counter()
            assert asyncio.run(_refresh(settings)) == 0
            setup["check_features_s"] = time.perf_counter() - started  # what a stream does first
            with connect(url) as conn:
                found = conn.execute("SELECT max(book_id) FROM book_features").fetchone()
                max_id = int(found[0]) if found else 0
            server_source = " ".join(batch_statement(Shape.CSV).split())
            assert _FROM in server_source, "the baseline has drifted from the server"
            results = _bench(args, env, url, settings, max_id, tail)
        finally:
            if not args.keep:
                recreate_database(url, drop_only=True)
    _report(args, tail, setup, {**results, "code": code})


def _set_up(url: str, env: dict[str, str], settings: Settings, rows: int) -> dict[str, float]:
    setup: dict[str, float] = {}
    started = time.perf_counter()
    run_bookql(["db", "upgrade"], env)
    setup["migrate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    load_catalog(url, rows)
    setup["load_s"] = time.perf_counter() - started
    print(f"setup: loaded {rows:,} books in {setup['load_s']:.1f} s", flush=True)
    started = time.perf_counter()
    refreshed = asyncio.run(_refresh(settings))
    setup["refresh_features_s"] = time.perf_counter() - started
    print(
        f"setup: refresh_features computed {refreshed:,} rows in"
        f" {setup['refresh_features_s']:.1f} s",
        flush=True,
    )
    assert refreshed == rows, (refreshed, rows)
    with connect(url) as conn:
        conn.execute("VACUUM (ANALYZE) book_features, book_features_pending")
    create_users(env, ["bench"])
    return setup


def _bench(
    args: argparse.Namespace,
    env: dict[str, str],
    url: str,
    settings: Settings,
    max_id: int,
    tail: int,
) -> dict[str, Any]:
    rows: int = args.rows
    runs: dict[str, list[Run]] = {m: [] for m in METHODS}
    diagnostics = _diagnostics(url, settings, args.batch_size)
    diagnosed: dict[str, list[Run]] = {label: [] for label in diagnostics}
    with serving(env, url, args.batch_size) as streams:
        rows_field = streams.rows_field
        for method in METHODS:  # warm up: a thousand rows each
            streams.run(method, max_id - WARM_UP_ROWS, sample=False)
        for round_number in range(args.rounds):
            for method in METHODS:
                run = streams.run(method)
                assert run.rows == rows, (method, run.rows, rows)
                runs[method].append(run)
                print(
                    f"round {round_number + 1}: {method}: {run.rate:,.0f} rows/s"
                    f" ({run.seconds:.2f} s, first row {run.first_row_s * 1000:.0f} ms,"
                    f" client CPU {run.client_cpu_s:.2f} s, server peak RSS"
                    f" {run.rss_peak_mib:,.0f} MiB)",
                    flush=True,
                )
            for label, diagnostic in diagnostics.items():
                run = diagnostic()
                assert run.rows == rows, (label, run.rows, rows)
                diagnosed[label].append(run)
    # memory: each kind of stream on a fresh server, the tail first, then everything
    memory: dict[str, dict[str, Any]] = {}
    for method in METHODS[1:]:
        with serving(env, url, args.batch_size) as streams:
            streams.run(method, max_id - WARM_UP_ROWS, sample=False)
            start = status_kib(streams.server.process.pid, b"VmRSS:") / 1024
            short = streams.run(method, max_id - tail)
            assert short.rows == tail, (method, short.rows, tail)
            full = streams.run(method)
            assert full.rows == rows, (method, full.rows, rows)
        memory[method] = {"start_mib": start, "tail": asdict(short), "all": asdict(full)}
        print(
            f"memory: {method}: start {start:,.0f} MiB, peak {short.rss_peak_mib:,.0f} MiB"
            f" ({tail:,} rows), {full.rss_peak_mib:,.0f} MiB ({rows:,} rows)",
            flush=True,
        )
    return {"rows_field": rows_field, "runs": runs, "diagnosed": diagnosed, "memory": memory}


def _best(runs: list[Run]) -> Run:
    return max(runs, key=lambda run: run.rate)


def _report(
    args: argparse.Namespace, tail: int, setup: dict[str, float], results: dict[str, Any]
) -> None:
    runs: dict[str, list[Run]] = results["runs"]
    diagnosed: dict[str, list[Run]] = results["diagnosed"]
    memory: dict[str, dict[str, Any]] = results["memory"]
    baseline = _best(runs["copy"]).rate
    header = ["rows/s", "ratio", "s", "first row ms", "client CPU"]
    rows = [[f"{args.rows:,} rows (PostgreSQL)", *header]]
    for method in METHODS:
        best = _best(runs[method])
        rows.append([
            LABELS[method], f"{best.rate:,.0f}", times(best.rate, baseline),
            f"{best.seconds:.2f}", f"{best.first_row_s * 1000:.0f}",
            f"{best.client_cpu_s / best.seconds:.0%}",
        ])  # fmt: skip
    print(table(rows))
    print(
        f"best of {args.rounds} rounds, the four side by side in each; batch size"
        f" {args.batch_size:,}; subscription rows field `{results['rows_field']}`;"
        f" client CPU: the bench process's CPU time over the stream's"
    )
    rows = [["where the time goes: in this process, no HTTP", *header[:4], "CPU"]]
    for label, found in diagnosed.items():
        best = _best(found)
        rows.append([
            label, f"{best.rate:,.0f}", times(best.rate, baseline), f"{best.seconds:.2f}",
            f"{best.first_row_s * 1000:.0f}", f"{best.client_cpu_s / best.seconds:.0%}",
        ])  # fmt: skip
    print(table(rows))
    rows = [["server RSS MiB", "start", f"peak, last {tail:,}", f"peak, all {args.rows:,}",
             "VmHWM, all"]]  # fmt: skip
    for method, figures in memory.items():
        hwm = figures["all"]["hwm_mib"]
        rows.append([
            LABELS[method], f"{figures['start_mib']:,.0f}",
            f"{figures['tail']['rss_peak_mib']:,.0f}", f"{figures['all']['rss_peak_mib']:,.0f}",
            "-" if hwm is None else f"{hwm:,.0f}",
        ])  # fmt: skip
    print(table(rows))
    print(
        "target: subscription and export at >= 50% of the COPY rate;"
        " memory flat (1M peak close to 100k peak)"
    )
    code = code_version()
    if code["src"] != results["code"]["src"]:
        print(
            f"warning: src/ changed during the run ({results['code']['commit']} at the start,"
            f" {code['commit']} at the end): servers started later ran the newer code"
        )
    if "load_s" in setup:
        print(
            f"setup: migrate {setup['migrate_s']:.1f} s, load {setup['load_s']:.1f} s,"
            f" refresh_features {setup['refresh_features_s']:.1f} s", end="; "
        )  # fmt: skip
    else:
        print("setup: a kept database reused", end="; ")
    print(
        f"a stream's first step, the check for missing features (none missing):"
        f" {setup['check_features_s'] * 1000:.0f} ms"
    )
    write_results(
        "export_throughput",
        {
            "rows": args.rows,
            "tail_rows": tail,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "code": {"start": results["code"], "end": code},
            "rows_per_s": {m: _best(runs[m]).rate for m in METHODS},
            "ratio_to_copy": {m: _best(runs[m]).rate / baseline for m in METHODS},
            "median_rows_per_s": {m: median([r.rate for r in runs[m]]) for m in METHODS},
            "runs": {m: [asdict(r) for r in runs[m]] for m in METHODS},
            "diagnostics": {
                label: [asdict(r) for r in found] for label, found in diagnosed.items()
            },
            "memory_mib": memory,
            "setup_s": setup,
            "subscription_rows_field": results["rows_field"],
        },
    )


if __name__ == "__main__":
    main()
