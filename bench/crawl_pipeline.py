"""A full offline crawl (50 listing pages, 1000 product pages) with and without the database.

Both crawls validate every item; the difference is the pipeline that stores them (batched
upserts into a fresh database each round). Target: storing adds at most 20% to the crawl.

    python -m bench.crawl_pipeline [--rounds 3] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import (
    median,
    pin,
    pin_self,
    run_bookql,
    scratch_database,
    table,
    times,
    write_results,
)
from tests.support.mirror import MirrorSite, serve_mirror

CRAWLER = Path(__file__).parents[1] / "crawler"
EXTRA = [f for s in os.environ.get("BENCH_CRAWL_SETTINGS", "").split(",") if s for f in ("-s", s)]
FAST = ["-s", "AUTOTHROTTLE_ENABLED=0", "-s", "DOWNLOAD_DELAY=0", "-s", "LOG_LEVEL=WARNING"]


CPU: dict[bool, list[float]] = {True: [], False: []}  # the crawler process's own CPU seconds


def _crawl(mirror_url: str, database_url: str, data_dir: Path, *, store: bool) -> float:
    env = {**os.environ, "BOOKQL_DATABASE_URL": database_url, "BOOKQL_DATA_DIR": str(data_dir)}
    if store:
        run_bookql(["db", "upgrade"], env)
    command = [
        sys.executable, "-m", "scrapy", "crawl", "books", "-a", f"start_url={mirror_url}/",
        *FAST, "-s", f"BOOKQL_STORE={'1' if store else '0'}", *EXTRA,
    ]  # fmt: skip
    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(pin(command, 0), cwd=CRAWLER, env=env, check=True, capture_output=True)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[store].append(
        cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BOOKQL_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    pin_self(1)  # the mirror answers from the other core
    seconds: dict[str, list[float]] = {"without the database": [], "with the database": []}
    with tempfile.TemporaryDirectory() as tmp, serve_mirror(MirrorSite()) as mirror_url:
        data_dir = Path(tmp)
        for _ in range(args.rounds):
            with scratch_database(args.database_url, data_dir, "bookql_bench") as url:
                seconds["without the database"].append(
                    _crawl(mirror_url, url, data_dir, store=False)
                )
                seconds["with the database"].append(_crawl(mirror_url, url, data_dir, store=True))
    bare = median(seconds["without the database"])
    stored = median(seconds["with the database"])
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        table(
            [
                [f"full offline crawl ({backend})", "median s", "ratio"],
                ["pipeline disabled", f"{bare:.2f}", times(bare, bare)],
                ["batched upserts", f"{stored:.2f}", f"{times(stored, bare)} (target <= 1.20x)"],
            ]
        )
    )
    cpu_bare, cpu_stored = median(CPU[False]), median(CPU[True])
    print(
        f"crawler CPU: {cpu_bare:.2f} s without, {cpu_stored:.2f} s with the database "
        f"({times(cpu_stored, cpu_bare)}); the rest of the difference is the database server"
    )
    write_results(
        f"crawl_pipeline_{backend.lower()}",
        {
            "bare_s": bare,
            "stored_s": stored,
            "ratio": stored / bare,
            "crawler_cpu_bare_s": median(CPU[False]),
            "crawler_cpu_stored_s": median(CPU[True]),
            "rounds": args.rounds,
        },
    )


if __name__ == "__main__":
    main()
