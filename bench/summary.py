"""``make bench``: every benchmark of the project, one after another, then one table of ratios.

Each benchmark runs in a process of its own (``python -m bench.<module>``), prints its own
detailed tables and writes ``bench/results/<name>.json``; this runner reads those files
back and prints one table: each figure against its baseline (both measured side by side in
the same run), the ratio, the target and whether it is met, and for the catalogue the plain
Strawberry ratio beside bookql's. Everything also lands in
``bench/results/summary-<commit>.json``, for comparing commits (``--compare``).

    python -m bench [catalog auth predict crawl export load growth tallies] [--quick] [--strict]
        [--compare FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, ROOT, code_version, table

Results = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One figure against its baseline; ``limit`` is None where there is no target."""

    benchmark: str
    measure: str
    baseline: str
    measured: str
    ratio: float
    limit: float | None = None
    higher_is_better: bool = False
    plain_ratio: float | None = None

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {self.limit:g}x"

    @property
    def ok(self) -> bool | None:
        if self.limit is None:
            return None
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    results: str  # a glob under bench/results: some name their file after the back end
    quick: tuple[str, ...]
    rows: Callable[[Results], list[Row]]


def _catalog(data: Results) -> list[Row]:
    rows = []
    for target in data["targets"]:
        digits = 0 if target["unit"] == "req/s" else 2
        unit = target["unit"].split()[-1]
        rows.append(
            Row(
                "catalog",
                target["measure"],
                f"{target['handwritten']:,.{digits}f} {unit} hand-written",
                f"{target['bookql']:,.{digits}f} {unit}",
                target["ratio"],
                target["limit"],
                plain_ratio=target["plain_ratio"],
            )
        )
    revalidation = data.get("revalidation")
    if revalidation:
        full, not_modified = revalidation["full"]["p50_ms"], revalidation["not_modified"]["p50_ms"]
        rows.append(
            Row(
                "catalog",
                "books(first: 100) GET 304 p50 ms @1",
                f"{full:.2f} ms full answer",
                f"{not_modified:.2f} ms",
                revalidation["ratio"],
                revalidation["limit"],
            )
        )
    for name, label in (("books", "books(first: 100)"), ("book", "book(upc:)"), ("stats", "stats")):
        found = data["figures"][name]["1"]
        hand, bookql, plain = (found[s]["p99_ms"] for s in ("handwritten", "bookql", "plain"))
        rows.append(
            Row(
                "catalog",
                f"{label} p99 ms @1",
                f"{hand:.2f} ms hand-written",
                f"{bookql:.2f} ms",
                bookql / hand,
                plain_ratio=plain / hand,
            )
        )
    return rows


def catalog_warnings(data: Results) -> list[str]:
    """Where bookql reads differently from the hand-written baseline: the ratio then
    measures more than the API layer."""
    warnings = []
    for what in ("sql", "driver"):
        drifted = [n for n, entry in data["check"].items() if not entry["bookql"][f"same_{what}"]]
        if drifted:
            warnings.append(
                f"catalog: bookql's {what} differs from hand-written: {', '.join(drifted)}"
            )
    return warnings


def _auth(data: Results) -> list[Row]:
    return [
        Row(
            "auth",
            "{ __typename } p50 while 16 logins run",
            f"{data['idle_p50_ms']:.2f} ms idle",
            f"{data['loaded_p50_ms']:.2f} ms",
            data["p50_ratio"],
            5.0,
        ),
        *(
            Row(
                "auth",
                f"catalogue query signed in, {what}",
                f"{data[f'{key}_anonymous_p50_ms']:.2f} ms anonymous",
                f"{data[f'{key}_signed_in_p50_ms']:.2f} ms",
                data[f"{key}_signed_in_p50_ms"] / data[f"{key}_anonymous_p50_ms"],
            )
            for key, what in (("http", "HTTP"), ("ws", "per WebSocket operation"))
            if f"{key}_signed_in_p50_ms" in data
        ),
    ]


def _crawl(data: Results) -> list[Row]:
    return [
        Row(
            "crawl",
            "full offline crawl, storing",
            f"{data['bare_s']:.2f} s not storing",
            f"{data['stored_s']:.2f} s",
            data["ratio"],
            1.2,
        )
    ]


def _predict(data: Results) -> list[Row]:
    return [
        Row(
            "predict",
            "predictPrice p50 over HTTP",
            f"{data['bare_p50_ms']:.3f} ms inplace_predict",
            f"{data['http_p50_ms']:.3f} ms",
            data["p50_ratio"],
            3.0,
        ),
        Row(
            "predict",
            "1000 books: one predictPrices batch",
            f"{data['singles_s']:.2f} s in 1000 requests",
            f"{data['batch_s']:.2f} s",
            data["batch_s"] / data["singles_s"],
        ),
    ]


EXPORTS = {
    "subscription": "trainingData subscription",
    "export_jsonl": "GET /export jsonl",
    "export_csv": "GET /export csv",
}
FLAT_MEMORY = 1.25  # "memory flat": the peak for every row within 25% of the peak for the tail


def _export(data: Results) -> list[Row]:
    rates = data["rows_per_s"]
    rows = [
        Row(
            "export",
            f"{label} rows/s ({data['rows']:,} rows)",
            f"{rates['copy']:,.0f} COPY",
            f"{rates[method]:,.0f}",
            data["ratio_to_copy"][method],
            0.5,
            higher_is_better=True,
        )
        for method, label in EXPORTS.items()
    ]
    for method, memory in data["memory_mib"].items():
        tail, every = memory["tail"]["rss_peak_mib"], memory["all"]["rss_peak_mib"]
        rows.append(
            Row(
                "export",
                f"{EXPORTS.get(method, method)} peak RSS, all rows",
                f"{tail:,.0f} MiB for {data['tail_rows']:,}",
                f"{every:,.0f} MiB",
                every / tail,
                FLAT_MEMORY,
            )
        )
    return rows


def _load(data: Results) -> list[Row]:
    memory = data["memory_mib"]
    start, end = sum(memory["start"].values()), sum(memory["end"].values())
    shape = f"{data['clients']} clients, {data['workers']} workers, {data['seconds']:.0f} s"
    return [
        Row(
            "load",
            f"errors ({shape})",
            f"{data['requests']:,} requests",
            f"{data['errors']:,} errors, p99 {data['p99_ms']:.0f} ms",
            data["errors"] / max(1, data["requests"]),
            0.0,
        ),
        Row(
            "load",
            "server RSS, end vs after warm-up",
            f"{start:,.0f} MiB",
            f"{end:,.0f} MiB",
            end / start,
            1.1,
        ),
    ]


def _growth(data: Results) -> list[Row]:
    rows = []
    for backend in data["backends"]:
        books = f"{backend['books']:,}"
        for query in backend["queries"]:
            found, standard = query["compiled"], query["standard"]
            rows.append(
                Row(
                    "growth",
                    f"{backend['backend']} {query['label']} p50",
                    f"{found['small_p50_ms']:,.2f} ms @1,000",
                    f"{found['large_p50_ms']:,.2f} ms @{books}",
                    found["growth"],
                    query["target"],
                    plain_ratio=standard["growth"],
                )
            )
        load = backend["load"]
        rows.append(
            Row(
                "growth",
                f"{backend['backend']} bookql import books/s ({books})",
                f"{load['baseline_rate']:,.0f} {load['baseline']}",
                f"{load['import_rate']:,.0f}",
                load["import_rate"] / load["baseline_rate"],
                higher_is_better=True,
            )
        )
    return rows


def _tallies(data: Results) -> list[Row]:
    rows = []
    for backend in data["backends"]:
        for kind, limit, labels in (
            ("writes", TALLY_WRITE_LIMIT, ("without", "with tallies")),
            ("reads", None, ("scan", "tallies")),
        ):
            for name, figures in backend[kind].items():
                rows.append(
                    Row(
                        "tallies",
                        f"{backend['backend']} {name}",
                        f"{figures['off_p50_ms']:,.2f} ms {labels[0]}",
                        f"{figures['on_p50_ms']:,.2f} ms {labels[1]}",
                        figures["on_p50_ms"] / figures["off_p50_ms"],
                        limit,
                    )
                )
    return rows


TALLY_WRITE_LIMIT = 1.3  # a crawl batch or an admin update with the tallies' upkeep

BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark(
            "catalog", "bench.catalog_queries", "catalog_queries_*.json", ("--quick",), _catalog
        ),
        Benchmark(
            "auth",
            "bench.auth_latency",
            "auth_latency.json",
            ("--rounds", "1", "--samples", "100"),
            _auth,
        ),
        Benchmark(
            "predict",
            "bench.predict_latency",
            "predict_latency.json",
            ("--samples", "200"),
            _predict,
        ),
        Benchmark(
            "crawl", "bench.crawl_pipeline", "crawl_pipeline_*.json", ("--rounds", "1"), _crawl
        ),
        Benchmark(
            "export",
            "bench.export_throughput",
            "export_throughput.json",
            ("--rows", "100000", "--tail", "10000", "--rounds", "1"),
            _export,
        ),
        Benchmark("load", "bench.load", "load.json", ("--seconds", "20"), _load),
        Benchmark("growth", "bench.growth", "growth*.json", ("--quick",), _growth),
        Benchmark(
            "tallies",
            "bench.tallies_write",
            "tallies_write.json",
            ("--rounds", "3", "--large", "10000"),
            _tallies,
        ),
    )
}


@dataclass
class Outcome:
    status: str
    seconds: float
    arguments: list[str]
    results_file: str | None = None
    results: Results | None = None


def run(benchmark: Benchmark, quick: bool) -> Outcome:
    """Runs one benchmark in its own process; its results are the file it wrote meanwhile."""
    arguments = list(benchmark.quick) if quick else []
    print(f"\n== python -m {benchmark.module} {' '.join(arguments)}".rstrip(), flush=True)
    started = time.time()
    finished = subprocess.run(
        [sys.executable, "-m", benchmark.module, *arguments], cwd=ROOT, check=False
    )
    seconds = time.time() - started
    if finished.returncode != 0:
        return Outcome(f"failed (exit {finished.returncode})", seconds, arguments)
    written = [p for p in RESULTS.glob(benchmark.results) if p.stat().st_mtime >= started]
    if not written:
        return Outcome("wrote no results", seconds, arguments)
    path = max(written, key=lambda p: p.stat().st_mtime)
    return Outcome(
        "ok", seconds, arguments, str(path.relative_to(ROOT)), json.loads(path.read_text())
    )


def _before(path: Path | None) -> dict[tuple[str, str], float]:
    if path is None:
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {(row["benchmark"], row["measure"]): row["ratio"] for row in rows}


def render(
    rows: Sequence[Row], failed: dict[str, str], before: dict[tuple[str, str], float]
) -> str:
    header = [
        "benchmark",
        "measure",
        "baseline",
        "measured",
        "ratio",
        "target",
        "",
        "plain Strawberry",
    ]
    if before:
        header.append("before")
    lines = [header]
    for row in rows:
        verdict = {True: "PASS", False: "MISS", None: ""}[row.ok]
        plain = "" if row.plain_ratio is None else f"{row.plain_ratio:.2f}x"
        line = [row.benchmark, row.measure, row.baseline, row.measured, f"{row.ratio:.2f}x"]
        line += [row.target, verdict, plain]
        if before:
            found = before.get((row.benchmark, row.measure))
            line.append("" if found is None else f"{found:.2f}x")
        lines.append(line)
    for name, status in failed.items():
        lines.append([name, status, *([""] * (len(header) - 2))])
    return table(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="a summary JSON of another run: its ratios beside",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    selected = [BENCHMARKS[name] for name in args.names or BENCHMARKS]
    code = code_version()
    started = datetime.now(UTC)
    outcomes = {b.name: run(b, args.quick) for b in selected}
    rows: list[Row] = []
    failed: dict[str, str] = {}
    warnings: list[str] = []
    for benchmark in selected:
        outcome = outcomes[benchmark.name]
        if outcome.results is None:
            failed[benchmark.name] = outcome.status
            continue
        try:
            rows += benchmark.rows(outcome.results)
            if benchmark.name == "catalog":
                warnings += catalog_warnings(outcome.results)
        except (KeyError, TypeError, ZeroDivisionError) as exc:  # a script changed its JSON
            failed[benchmark.name] = f"{outcome.results_file} not understood: {exc!r}"
    print(f"\n== summary: commit {code['commit']}{' (src/ edited)' if code['src_dirty'] else ''}")
    print(render(rows, failed, _before(args.compare)))
    print(
        "ratio: measured over baseline, both in this run (catalog: bookql; plain Strawberry beside)"
    )
    for warning in warnings:
        print(f"warning: {warning}")
    path = RESULTS / f"summary-{code['commit']}.json"
    RESULTS.mkdir(exist_ok=True)
    summary = {
        "code": code,
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "rows": [{**asdict(row), "target": row.target, "ok": row.ok} for row in rows],
        "warnings": warnings,
        "benchmarks": {name: asdict(outcome) for name, outcome in outcomes.items()},
    }
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    if failed:
        return 1
    return 1 if args.strict and any(row.ok is False for row in rows) else 0
