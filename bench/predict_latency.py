"""``predictPrice`` over HTTP against a bare ``inplace_predict`` of one row, side by side;
and one ``predictPrices`` batch of 1000 against 1000 single requests.

The server is a real ``bookql serve`` (one worker, its own core) on a seeded catalogue with a
trained, active model; the bare figure is the same model predicting the same book's features
in this process. Target: the HTTP p50 within 3x of the bare p50.

    python -m bench.predict_latency [--samples 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from bench.harness import Latency, bookql_server, pin_self, table, write_results
from bookql.ml.features import FEATURES, book_features
from bookql.ml.store import ModelStore
from tests.catalogue import snapshot_books

LOGIN = """mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken } }"""
PREDICT = """mutation($u: String!) { predictPrice(input: {upc: $u}) { price modelVersion } }"""
PREDICT_MANY = """mutation($items: [PredictPriceInput!]!) {
    predictPrices(input: {items: $items}) { results { prediction { price } } } }"""
PASSWORD = "benchmark password"
UPC = "a897fe39b1053632"


def _prepare(env: dict[str, str]) -> None:
    bookql = [sys.executable, "-m", "bookql"]
    full = {**os.environ, **env}
    for args in (["db", "upgrade"], ["seed"], ["train", "--activate"]):
        subprocess.run([*bookql, *args], env=full, check=True, capture_output=True)
    subprocess.run(
        [*bookql, "users", "create", "bench"],
        input=PASSWORD + "\n",
        env=full,
        check=True,
        capture_output=True,
        text=True,
    )


def _bare(models_dir: Path, samples: int) -> Latency:
    """The same model, the same book, no server: ``inplace_predict`` on one prepared row."""
    model = ModelStore(models_dir).active()
    assert model is not None
    booster = model.load()
    book = next(b for b in snapshot_books() if b["upc"] == UPC)
    frame = pd.DataFrame([{
        "title": book["title"], "category": book["category"], "rating": book["rating"],
        "availability": book["availability_count"], "description": book["description"],
    }])  # fmt: skip
    features = book_features(frame, model.bookql["categories"])[list(FEATURES)]
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        booster.inplace_predict(features)
        timings.append(time.perf_counter() - started)
    return Latency.of(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BOOKQL_DATA_DIR": tmp}
        _prepare(env)
        pin_self(1)
        bare = _bare(Path(tmp) / "models_store", args.samples)
        with bookql_server(env, core=0) as server, httpx.Client(timeout=60) as http:
            token = http.post(
                f"{server.url}/graphql",
                json={"query": LOGIN, "variables": {"u": "bench", "p": PASSWORD}},
            ).json()["data"]["login"]["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}

            def single() -> None:
                body = http.post(
                    f"{server.url}/graphql",
                    json={"query": PREDICT, "variables": {"u": UPC}},
                    headers=headers,
                ).json()
                assert "errors" not in body, body

            for _ in range(30):
                single()  # warm up
            timings = []
            for _ in range(args.samples):
                started = time.perf_counter()
                single()
                timings.append(time.perf_counter() - started)
            http_latency = Latency.of(timings)

            upcs = [b["upc"] for b in snapshot_books()]
            started = time.perf_counter()
            for upc in upcs:
                http.post(
                    f"{server.url}/graphql",
                    json={"query": PREDICT, "variables": {"u": upc}},
                    headers=headers,
                )
            singles_s = time.perf_counter() - started
            started = time.perf_counter()
            body = http.post(
                f"{server.url}/graphql",
                json={"query": PREDICT_MANY, "variables": {"items": [{"upc": u} for u in upcs]}},
                headers=headers,
            ).json()
            batch_s = time.perf_counter() - started
            assert len(body["data"]["predictPrices"]["results"]) == 1000
    ratio = http_latency.p50_ms / bare.p50_ms
    served = http_latency
    print(
        table(
            [
                ["one prediction", "p50 ms", "p99 ms", "ratio"],
                ["bare inplace_predict", f"{bare.p50_ms:.3f}", f"{bare.p99_ms:.3f}", "1.00x"],
                [
                    "predictPrice (HTTP)",
                    f"{served.p50_ms:.3f}",
                    f"{served.p99_ms:.3f}",
                    f"{ratio:.2f}x",
                ],
            ]
        )
    )
    print("target: predictPrice within 3x of the bare prediction")
    print(
        table(
            [
                ["1000 books", "seconds", "ratio"],
                ["1000 predictPrice requests", f"{singles_s:.2f}", "1.00x"],
                ["one predictPrices batch", f"{batch_s:.2f}", f"{batch_s / singles_s:.3f}x"],
            ]
        )
    )
    write_results(
        "predict_latency",
        {
            "bare_p50_ms": bare.p50_ms,
            "http_p50_ms": http_latency.p50_ms,
            "http_p99_ms": http_latency.p99_ms,
            "p50_ratio": ratio,
            "singles_s": singles_s,
            "batch_s": batch_s,
        },
    )


if __name__ == "__main__":
    main()
