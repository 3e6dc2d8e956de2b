"""Mixed load against two API workers on PostgreSQL and Redis: errors, latency, memory drift.

A real ``bookql serve --workers 2`` (core 0) over a scratch PostgreSQL database with the
bundled catalogue, an active price model and Redis for the shared limits; a load process of
its own (core 1) runs ``--clients`` keep-alive connections for ``--seconds``, each sending
the mix below in turn: catalogue pages, single books, searches, logins and predictions.
An error is any response that is not 200 or whose body carries GraphQL ``errors``. Memory
is the resident set of the server's processes (the supervisor and its workers) after a
warm-up and at the end; the target is no errors and a drift under 10%.

    python -m bench.load [--seconds 60] [--clients 32]
        [--database-url postgresql+psycopg://root@127.0.0.1:5432/bookql_bench_load]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.harness import (
    bookql_server,
    code_version,
    login,
    percentile,
    pin,
    pin_self,
    recreate_database,
    set_up,
    table,
    tree_rss_mib,
)
from bench.harness import write_results as write_result_file
from bench.loadgen import new_loop

DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/bookql_bench_load"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
PASSWORD = "load bench password"
# the floor the settings accept (OWASP's minimum for argon2id): logins stay a real cost
ARGON2 = {"ARGON2_TIME_COST": "2", "ARGON2_MEMORY_KIB": "19456", "ARGON2_PARALLELISM": "1"}
MAX_DRIFT = 0.10
# Ten users sign in from 32 addresses, several at once: correct logins in flight must
# never be refused (only failures count against the login limits).
USERS = 10


def _mix(token: str, upcs: list[str]) -> list[tuple[str, dict[str, Any], bool]]:
    """(kind, body, signed in) in the order each client sends them."""
    page = "query Page($a: String) { books(first: 20, after: $a) { edges { node { title price"
    page += " rating category { name } } } pageInfo { endCursor } } }"
    book = "query Book($u: String!) { book(upc: $u) { title price description category { slug } } }"
    search = (
        "query Search($s: String!) { books(first: 10, search: $s) { edges { node { title } } } }"
    )
    login = "mutation Login($u: String!, $p: String!) { login(input: {username: $u,"
    login += " password: $p}) { accessToken } }"
    predict = "mutation Predict($u: String!) { predictPrice(input: {upc: $u}) { price } }"
    words = ["light", "night", "history", "love", "world", "secret", "house", "life"]
    mix: list[tuple[str, dict[str, Any], bool]] = []
    for i in range(40):
        upc = upcs[(i * 37) % len(upcs)]
        mix.append(("page", {"query": page, "variables": {"a": None}}, False))
        mix.append(("book", {"query": book, "variables": {"u": upc}}, False))
        mix.append(("search", {"query": search, "variables": {"s": words[i % len(words)]}}, False))
        mix.append(("predict", {"query": predict, "variables": {"u": upc}}, True))
        if i % 4 == 0:  # a login costs ~20 ms of argon2: a few, as a real mix has
            user = f"loader{i // 4 % USERS}"
            mix.append(("login", {"query": login, "variables": {"u": user, "p": PASSWORD}}, False))
    return mix


def _encode(host: str, body: dict[str, Any], token: str | None) -> bytes:
    data = json.dumps(body).encode()
    head = [
        "POST /graphql HTTP/1.1",
        f"host: {host}",
        "content-type: application/json",
        "accept: application/json",
        f"content-length: {len(data)}",
    ]
    if token:
        head.append(f"authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def _client(
    url: str, requests: list[tuple[str, bytes]], number: int, offset: int, deadline: float
) -> dict[str, Any]:
    parts = urlsplit(url)
    # Each client is a user on a machine of its own, as the server sees it (uvicorn trusts
    # X-Forwarded-For from 127.0.0.1): 32 people behind one address would be refused logins
    # by the per-address limit, rightly.
    forwarded = f"\r\nx-forwarded-for: 10.0.{number // 250}.{number % 250 + 1}\r\n\r\n".encode()
    requests = [(kind, raw.replace(b"\r\n\r\n", forwarded, 1)) for kind, raw in requests]
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    timings: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    samples: list[str] = []
    index = offset
    try:
        while time.perf_counter() < deadline:
            kind, raw = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line[15:])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            timings[kind].append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200 ") or b'"errors"' in body:
                errors[kind] += 1
                if len(samples) < 3:
                    samples.append(f"{kind}: {head.split(b' ', 2)[1].decode()} {body[:300]!r}")
    finally:
        writer.close()
    return {"timings": timings, "errors": errors, "samples": samples}


async def _load(
    url: str, requests: list[tuple[str, bytes]], clients: int, seconds: float
) -> dict[str, Any]:
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    spread = max(1, len(requests) // clients)
    results = await asyncio.gather(
        *(_client(url, requests, i, i * spread, deadline) for i in range(clients))
    )
    elapsed = time.perf_counter() - started
    timings: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    samples: list[str] = []
    for result in results:
        for kind, values in result["timings"].items():
            timings[kind].extend(values)
        for kind, count in result["errors"].items():
            errors[kind] += count
        samples.extend(result["samples"])
    every = [t for values in timings.values() for t in values]
    per_kind = {
        kind: {
            "requests": len(values),
            "errors": errors.get(kind, 0),
            "p50_ms": percentile([v * 1000 for v in values], 50),
            "p99_ms": percentile([v * 1000 for v in values], 99),
        }
        for kind, values in sorted(timings.items())
    }
    return {
        "seconds": elapsed,
        "requests": len(every),
        "errors": sum(errors.values()),
        "rps": len(every) / elapsed,
        "p50_ms": percentile([t * 1000 for t in every], 50),
        "p99_ms": percentile([t * 1000 for t in every], 99),
        "kinds": per_kind,
        "error_samples": samples[:5],
    }


def _generator() -> None:
    """The load process: one order on stdin, its report on stdout."""
    order = json.loads(sys.stdin.readline())
    requests = [(kind, bytes.fromhex(raw)) for kind, raw in order["requests"]]
    loop = new_loop()
    report = loop.run_until_complete(
        _load(order["url"], requests, order["clients"], order["seconds"])
    )
    sys.stdout.write(json.dumps(report) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warm-up", type=float, default=5)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="created and dropped here")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    pin_self(1)
    recreate_database(args.database_url)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {
                "BOOKQL_DATABASE_URL": args.database_url,
                "BOOKQL_REDIS_URL": args.redis_url,
                "BOOKQL_DATA_DIR": data_dir,
                "BOOKQL_ACCESS_TOKEN_TTL_SECONDS": "3600",
                "BOOKQL_RUN_JOBS_IN_SERVER": "false",
                **{f"BOOKQL_{name}": value for name, value in ARGON2.items()},
            }
            users = [f"loader{number}" for number in range(USERS)]
            set_up(env, model=True, users=users, password=PASSWORD)
            report = _run(args, env)
    finally:
        recreate_database(args.database_url, drop_only=True)
    _print(report)
    write_result_file("load", report)


def _run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with bookql_server(env, core=0, workers=2) as server:
        token = login(server.url, "loader0", PASSWORD)
        upcs = [
            edge["node"]["upc"]
            for edge in httpx.post(
                f"{server.url}/graphql",
                json={"query": "{ books(first: 100) { edges { node { upc } } } }"},
            ).json()["data"]["books"]["edges"]
        ]
        host = urlsplit(server.url).netloc
        requests = [
            (kind, _encode(host, body, token if signed else None).hex())
            for kind, body, signed in _mix(token, upcs)
        ]
        order = {"url": server.url, "requests": requests, "clients": args.clients}
        _generate({**order, "seconds": args.warm_up})
        start = tree_rss_mib(server.process.pid)
        report = _generate({**order, "seconds": args.seconds})
        end = tree_rss_mib(server.process.pid)
        metrics = httpx.get(f"{server.url}/metrics").text
    drift = sum(end.values()) / sum(start.values()) - 1
    return {
        **report,
        "clients": args.clients,
        "workers": 2,
        "memory_mib": {"start": start, "end": end, "drift": drift},
        "metrics_lines": len(metrics.splitlines()),
        "ok": report["errors"] == 0 and drift < MAX_DRIFT,
        "code": code_version(),
    }


def _generate(order: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        pin([sys.executable, "-m", "bench.load", "--generator"], 1),
        input=json.dumps(order) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _print(report: dict[str, Any]) -> None:
    rows = [["kind", "requests", "errors", "p50 ms", "p99 ms"]]
    for kind, figures in report["kinds"].items():
        rows.append(
            [
                kind,
                f"{figures['requests']:,}",
                str(figures["errors"]),
                f"{figures['p50_ms']:.1f}",
                f"{figures['p99_ms']:.1f}",
            ]
        )
    rows.append(
        [
            "all",
            f"{report['requests']:,}",
            str(report["errors"]),
            f"{report['p50_ms']:.1f}",
            f"{report['p99_ms']:.1f}",
        ]
    )
    print(table(rows))
    memory = report["memory_mib"]
    print(
        f"{report['clients']} clients, {report['workers']} workers, {report['seconds']:.0f} s:"
        f" {report['rps']:,.0f} requests/s; server RSS {sum(memory['start'].values()):,.0f} MiB"
        f" after warm-up, {sum(memory['end'].values()):,.0f} MiB at the end"
        f" (drift {memory['drift']:+.1%}, target < {MAX_DRIFT:.0%})"
    )
    for sample in report["error_samples"]:
        print(f"error: {sample}")
    print("PASS" if report["ok"] else "FAIL")


if __name__ == "__main__":
    if sys.argv[1:] == ["--generator"]:
        _generator()
    else:
        main()
