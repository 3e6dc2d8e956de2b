"""``predictPrice`` over HTTP against a bare ``inplace_predict`` of one row, side by side;
and one ``predictPrices`` batch of 1000 against 1000 single requests.

The client is one keep-alive standard-library connection (see ``LeanClient``). The
server is a real ``bookql serve`` (one worker, its own core) on a seeded catalogue with a
trained, active model; the bare figure is the same model predicting the same book's features
in this process. Target: the HTTP p50 within 3x of the bare p50.

    python -m bench.predict_latency [--samples 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.harness import (
    Latency,
    LeanClient,
    bookql_server,
    login,
    pin_self,
    set_up,
    table,
    timed,
    times,
    write_results,
)
from bookql.ml.features import FEATURES, book_features
from bookql.ml.store import ModelStore
from tests.support.snapshot_truth import snapshot_books

PREDICT = """mutation($u: String!) { predictPrice(input: {upc: $u}) { price modelVersion } }"""
PREDICT_MANY = """mutation($items: [PredictPriceInput!]!) {
    predictPrices(input: {items: $items}) { results { prediction { price } } } }"""
UPC = "a897fe39b1053632"
BLOCK = 10


def _bare_predictor(models_dir: Path) -> Callable[[], object]:
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
    return lambda: booster.inplace_predict(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1000, help="calls a side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BOOKQL_DATA_DIR": tmp}
        set_up(env, model=True, users=["bench"])
        pin_self(1)
        bare = _bare_predictor(Path(tmp) / "models_store")
        with bookql_server(env, core=0) as server:
            client = LeanClient(server.url, login(server.url, "bench"))

            def single(upc: str = UPC) -> None:
                body = client.post(PREDICT, {"u": upc})
                assert "errors" not in body, body

            timed(single, 30)  # warm up
            timed(bare, 30)
            # side by side, in blocks of ten: the drift of a shared virtual machine's speed
            # falls on both sides alike, and the bare calls still run warm, back to back
            bare_times: list[float] = []
            served_times: list[float] = []
            for _ in range(max(1, args.samples // BLOCK)):
                bare_times += timed(bare, BLOCK)
                served_times += timed(single, BLOCK)
            bare_latency = Latency.of(bare_times)
            http_latency = Latency.of(served_times)
            ratio = http_latency.p50_ms / bare_latency.p50_ms

            upcs = [b["upc"] for b in snapshot_books()]
            started = time.perf_counter()
            for upc in upcs:
                single(upc)
            singles_s = time.perf_counter() - started
            started = time.perf_counter()
            body = client.post(PREDICT_MANY, {"items": [{"upc": u} for u in upcs]})
            batch_s = time.perf_counter() - started
            assert len(body["data"]["predictPrices"]["results"]) == 1000
            client.close()
    print(
        table(
            [
                ["one prediction", "p50 ms", "p99 ms", "ratio"],
                [
                    "bare inplace_predict",
                    f"{bare_latency.p50_ms:.3f}",
                    f"{bare_latency.p99_ms:.3f}",
                    "1.00x",
                ],
                [
                    "predictPrice (HTTP)",
                    f"{http_latency.p50_ms:.3f}",
                    f"{http_latency.p99_ms:.3f}",
                    times(http_latency.p50_ms, bare_latency.p50_ms),
                ],
            ]
        )
    )
    print(
        f"{len(bare_times)} calls a side, alternating in blocks of {BLOCK};"
        " target: predictPrice p50 within 3x of the bare p50"
    )
    print(
        table(
            [
                ["1000 books", "seconds", "ratio"],
                ["1000 predictPrice requests", f"{singles_s:.2f}", "1.00x"],
                ["one predictPrices batch", f"{batch_s:.2f}", times(batch_s, singles_s, 3)],
            ]
        )
    )
    write_results(
        "predict_latency",
        {
            "bare_p50_ms": bare_latency.p50_ms,
            "http_p50_ms": http_latency.p50_ms,
            "http_p99_ms": http_latency.p99_ms,
            "p50_ratio": ratio,
            "singles_s": singles_s,
            "batch_s": batch_s,
        },
    )


if __name__ == "__main__":
    main()
