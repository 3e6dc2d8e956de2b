"""The price model over GraphQL: training, activation, predictions, their log and live metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bookql.ml import serving as serving_module
from bookql.ml.features import book_features
from bookql.ml.price_model import predict
from bookql.ml.store import ModelStore
from tests.catalog.test_catalog_admin import global_id
from tests.conftest import ScratchDatabase, app_client, error_codes
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # trains price models

MODELS = """{ models { version status active
    metrics { model { mae } baselineMean { mae } intervalCoverage }
    liveMetrics { predictions mae } } }"""
TRAIN = "mutation($a: Boolean!) { trainModel(input: {seed: 3, activate: $a}) { version status } }"
PREDICT = """mutation($input: PredictPriceInput!) { predictPrice(input: $input) {
    id price lower upper modelVersion actualPrice book { upc } } }"""
PREDICT_MANY = """mutation($items: [PredictPriceInput!]!) { predictPrices(input: {items: $items}) {
    results { prediction { price modelVersion book { upc } } error { code message } } } }"""
LIGHT = "a897fe39b1053632"


JOBS_IN_SERVER: dict[str, Any] = {"run_jobs_in_server": True, "job_poll_seconds": 0.1}


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db, **JOBS_IN_SERVER) as session:
        yield session


async def train(client: AdminClient, *, activate: bool = True) -> str:
    started = await client.admin(TRAIN, {"a": activate})
    version: str = started["trainModel"]["version"]
    assert started["trainModel"]["status"] == "TRAINING"
    for _ in range(600):
        models = (await client.admin(MODELS))["models"]
        model = next(m for m in models if m["version"] == version)
        # A version is listed READY once stored, a moment before the job activates it.
        if model["status"] != "TRAINING" and (model["active"] or not activate):
            assert model["status"] == "READY", models
            return version
        await asyncio.sleep(0.05)
    raise AssertionError("training did not finish")


async def test_no_model_yet(client: AdminClient) -> None:
    body = await client.execute(PREDICT, {"input": {"upc": LIGHT}}, token=client.user_token)
    assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
    assert "train" in body["errors"][0]["message"]
    assert (await client.admin("{ activeModel { version } }")) == {"activeModel": None}


async def test_train_activate_and_predict(client: AdminClient, empty_db: ScratchDatabase) -> None:
    assert error_codes(await client.execute(TRAIN, {"a": True}, token=client.user_token)) == [
        "FORBIDDEN"
    ]
    version = await train(client)
    active = (await client.admin("{ activeModel { version active metrics { model { mae } } } }"))[
        "activeModel"
    ]
    assert active["version"] == version
    assert active["active"] is True

    by_upc = (await client.data(PREDICT, {"input": {"upc": LIGHT}}, token=client.user_token))[
        "predictPrice"
    ]
    by_id = (
        await client.data(
            PREDICT, {"input": {"bookId": global_id("Book", LIGHT)}}, token=client.user_token
        )
    )["predictPrice"]
    assert by_upc["modelVersion"] == version
    assert by_upc["price"] == by_id["price"]
    assert by_upc["lower"] <= by_upc["price"] <= by_upc["upper"]
    assert by_upc["actualPrice"] == 51.77
    assert by_upc["book"] == {"upc": LIGHT}
    assert by_upc["id"] != by_id["id"]

    # no train/serve skew: the served price is the stored model's on the feature function
    book = next(b for b in snapshot_books() if b["upc"] == LIGHT)
    frame = pd.DataFrame([{
        "title": book["title"], "category": book["category"], "rating": book["rating"],
        "availability": book["availability_count"], "description": book["description"],
    }])  # fmt: skip
    stored = ModelStore(empty_db.data_dir / "models_store").get(version)
    direct = predict(stored.load(), book_features(frame, stored.bookql["categories"]))
    assert by_upc["price"] == pytest.approx(float(direct[0]), abs=0.005)

    explicit = {
        "category": "poetry", "rating": 3, "availability": 22,
        "title": book["title"], "description": book["description"],
    }  # fmt: skip
    from_features = (
        await client.data(PREDICT, {"input": {"features": explicit}}, token=client.user_token)
    )["predictPrice"]
    assert from_features["price"] == by_upc["price"]
    assert from_features["actualPrice"] is None
    assert from_features["book"] is None


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"upc": "no-such-book"}, "NOT_FOUND"),
        (
            {"features": {"category": "Cookery", "rating": 3, "availability": 1, "title": "x"}},
            "BAD_USER_INPUT",
        ),
        (
            {"features": {"category": "poetry", "rating": 9, "availability": 1, "title": "x"}},
            "BAD_USER_INPUT",
        ),
        (
            {"features": {"category": "poetry", "rating": 3, "availability": -1, "title": "x"}},
            "BAD_USER_INPUT",
        ),
        (
            {"features": {"category": "poetry", "rating": 3, "availability": 1, "title": " "}},
            "BAD_USER_INPUT",
        ),
        ({"bookId": "Q2F0ZWdvcnk6MQ"}, "BAD_USER_INPUT"),
    ],
)
async def test_bad_items_are_refused_alone(
    client: AdminClient, item: dict[str, Any], code: str
) -> None:
    await train(client)
    single = await client.execute(PREDICT, {"input": item}, token=client.user_token)
    assert error_codes(single) == [code]
    batch = await client.data(
        PREDICT_MANY, {"items": [{"upc": LIGHT}, item, {"upc": LIGHT}]}, token=client.user_token
    )
    results = batch["predictPrices"]["results"]
    assert [r["error"]["code"] if r["error"] else None for r in results] == [None, code, None]
    assert results[0]["prediction"]["book"] == {"upc": LIGHT}


async def test_one_of_is_enforced(client: AdminClient) -> None:
    body = await client.execute(
        PREDICT, {"input": {"upc": LIGHT, "bookId": "x"}}, token=client.user_token
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    anonymous = await client.execute(PREDICT, {"input": {"upc": LIGHT}})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_predictions_are_logged_and_measured(client: AdminClient) -> None:
    version = await train(client)
    upcs = [b["upc"] for b in snapshot_books()[:20]]
    batch = await client.data(
        PREDICT_MANY, {"items": [{"upc": u} for u in upcs]}, token=client.user_token
    )
    made = [r["prediction"] for r in batch["predictPrices"]["results"]]
    await client.admin(PREDICT, {"input": {"upc": LIGHT}})
    truth = {b["upc"]: b["price"] for b in snapshot_books()}

    mine = await client.data(
        "{ predictions(first: 100) { totalCount"
        " edges { node { price actualPrice modelVersion } } } }",
        token=client.user_token,
    )
    assert mine["predictions"]["totalCount"] == 20  # the user's own only
    everyone = await client.admin("{ predictions(first: 100) { totalCount } }")
    assert everyone["predictions"]["totalCount"] == 21
    by_version = await client.admin(
        f'{{ predictions(modelVersion: "{version}") {{ totalCount }} }}'
    )
    assert by_version["predictions"]["totalCount"] == 21
    nothing = await client.admin('{ predictions(modelVersion: "other") { totalCount } }')
    assert nothing["predictions"]["totalCount"] == 0

    models = (await client.admin(MODELS))["models"]
    live = next(m for m in models if m["version"] == version)["liveMetrics"]
    errors = [abs(p["price"] - truth[u]) for p, u in zip(made, upcs, strict=True)]
    errors.append(abs(made[0]["price"] - truth[LIGHT]))
    assert live["predictions"] == 21
    assert live["mae"] == pytest.approx(float(np.mean(errors)), abs=0.01)


async def test_activation_reaches_every_worker(
    client: AdminClient, empty_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving_module, "ALIAS_CHECK_SECONDS", 0.0)
    first = await train(client)
    second = await train(client, activate=False)
    assert (await client.admin("{ activeModel { version } }"))["activeModel"]["version"] == first
    async with app_client(empty_db.settings(jwt_secret="k" * 64)) as other_worker:
        other = client.__class__(other_worker)
        token = client.admin_token

        async def served_by(worker: Any) -> str:
            body = await worker.data(PREDICT, {"input": {"upc": LIGHT}}, token=token)
            return str(body["predictPrice"]["modelVersion"])

        assert await served_by(other) == first
        activated = await client.admin(
            f'mutation {{ activateModel(input: {{version: "{second}"}}) {{ version active }} }}'
        )
        assert activated["activateModel"] == {"version": second, "active": True}
        assert await served_by(other) == second
        assert await served_by(client) == second
    unknown = await client.execute(
        'mutation { activateModel(input: {version: "nope"}) { version } }', token=client.admin_token
    )
    assert error_codes(unknown) == ["NOT_FOUND"]


async def test_ml_features_use_the_feature_function(client: AdminClient) -> None:
    page = await client.data(
        "{ mlFeatures(first: 3) { edges { node { book { upc } category rating titleWords"
        " inSeries price } } pageInfo { hasNextPage } } }",
        token=client.user_token,
    )
    nodes = [e["node"] for e in page["mlFeatures"]["edges"]]
    books = snapshot_books()[:3]
    assert [n["book"]["upc"] for n in nodes] == [b["upc"] for b in books]
    assert [n["price"] for n in nodes] == [b["price"] for b in books]
    assert nodes[0]["category"] == "Poetry"
    assert nodes[0]["titleWords"] == 5
    assert page["mlFeatures"]["pageInfo"]["hasNextPage"] is True
    anonymous = await client.execute("{ mlFeatures { edges { cursor } } }")
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_listing_predictions_batches_the_book_look_ups(
    client: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await train(client)
    upcs = [b["upc"] for b in snapshot_books()[:30]]
    await client.data(PREDICT_MANY, {"items": [{"upc": u} for u in upcs]}, token=client.user_token)
    from bookql.catalog import queries

    calls: list[int] = []
    real = queries.books_by_ids

    async def counting(conn: Any, ids: Any) -> Any:
        calls.append(len(ids))
        return await real(conn, ids)

    monkeypatch.setattr(queries, "books_by_ids", counting)
    listed = await client.data(
        "{ predictions(first: 30) { edges { node { actualPrice book { upc } } } } }",
        token=client.user_token,
    )
    assert len(listed["predictions"]["edges"]) == 30
    assert all(e["node"]["actualPrice"] is not None for e in listed["predictions"]["edges"])
    assert calls == [30]  # one look-up for the whole page, not one per prediction


async def test_a_training_whose_worker_vanished_fails(empty_db: ScratchDatabase) -> None:
    """Its job's claim lapsed on the last attempt: the training says so, and blocks no other."""
    from datetime import timedelta

    from bookql.db.engine import create_async_db_engine
    from bookql.jobs.queue import JobQueue
    from bookql.ml.training_runs import queue_training

    engine = create_async_db_engine(empty_db.settings())
    queued = await queue_training(engine, seed=1, activate=False, requested_by=None, max_attempts=1)
    lapsing = JobQueue(engine, lease=timedelta(0), retry_delay=timedelta(0))
    assert await lapsing.claim("vanished", ["train"]) is not None
    await engine.dispose()
    async with admin_session(empty_db, **JOBS_IN_SERVER) as client:
        for _ in range(200):
            models = (await client.admin("{ models { version status message } }"))["models"]
            orphan = next(m for m in models if m["version"] == queued.version)
            if orphan["status"] != "TRAINING":
                break
            await asyncio.sleep(0.05)
        assert orphan["status"] == "FAILED"
        assert orphan["message"] == (
            "failed after 1 attempts: its worker (vanished) stopped renewing its claim"
        )
        assert await train(client)  # the failed one no longer blocks a new training
