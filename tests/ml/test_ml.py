"""The price model: features, reproducible training, honest figures, safe versioned storage."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bookql.ml import store as store_module
from bookql.ml.features import FEATURES, LABEL, book_features
from bookql.ml.price_model import TrainedModel, split_indices, train_price_model
from bookql.ml.store import ModelStore, UnknownVersion
from tests.support.snapshot_truth import snapshot_books


def snapshot_frame() -> pd.DataFrame:
    rows = [
        {
            "upc": b["upc"],
            "title": b["title"],
            "category": b["category"],
            "rating": b["rating"],
            "availability": b["availability_count"],
            "description": b["description"],
            LABEL: b["price"],
        }
        for b in snapshot_books()
    ]
    return pd.DataFrame(rows)


CATEGORIES = sorted({b["category"] for b in snapshot_books()})


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_price_model(snapshot_frame(), CATEGORIES, seed=7)


def test_features_of_a_series_book_and_a_bare_one() -> None:
    frame = pd.DataFrame(
        [
            {"title": "Starving Hearts (Triangular Trade Trilogy, #1)", "category": "Default",
             "rating": 2, "availability": 19, "description": "Two words."},
            {"title": "Soumission", "category": "Unheard Of", "rating": 1, "availability": 0,
             "description": None},
        ]
    )  # fmt: skip
    features = book_features(frame, CATEGORIES)
    assert list(features.columns) == list(FEATURES)
    first, second = features.iloc[0], features.iloc[1]
    assert (first["in_series"], first["series_number"]) == (1, 1.0)
    assert first["description_words"] == 2
    assert first["category"] == "Default"
    assert (second["in_series"], second["has_description"], second["description_length"]) == (
        0,
        0,
        0,
    )
    assert pd.isna(second["category"])  # a category the model never saw is missing, not new
    assert str(features["category"].dtype) == "category"
    assert list(features["category"].cat.categories) == CATEGORIES


def test_features_of_the_catalog() -> None:
    features = book_features(snapshot_frame(), CATEGORIES)
    books = snapshot_books()
    assert len(features) == 1000
    assert features["has_description"].sum() == sum(b["description"] is not None for b in books)
    series = sum(re.search(r"#\d[\d.-]*\)$", b["title"]) is not None for b in books)
    assert features["in_series"].sum() == series
    assert features["availability"].sum() == 8585


@pytest.mark.slow
def test_training_is_reproducible_and_honest(trained: TrainedModel) -> None:
    again = train_price_model(snapshot_frame(), CATEGORIES, seed=7)
    assert again.metrics == trained.metrics
    assert np.array_equal(again.test_predicted, trained.test_predicted)
    m = trained.metrics
    assert m["rows"] == {"train": 800, "test": 200}
    for name in ("model", "baseline_mean", "baseline_category_mean"):
        assert set(m[name]) == {"mae", "rmse", "r2"}
    # the baselines are fitted on the training split only: recompute them here
    frame = snapshot_frame()
    train, test = split_indices(1000, 7, 0.2)
    mean = frame[LABEL].iloc[train].mean()
    assert m["baseline_mean"]["mae"] == pytest.approx(
        float(np.mean(np.abs(frame[LABEL].iloc[test] - mean))), abs=1e-4
    )
    # random prices: no model beats the mean by much, and this one must not pretend to
    assert abs(m["model"]["mae"] - m["baseline_mean"]["mae"]) < 1.5
    assert train_price_model(snapshot_frame(), CATEGORIES, seed=8).metrics != m


def _binomial_bounds(n: int, p: float, tail: float = 0.001) -> tuple[int, int]:
    """Counts outside which a Binomial(n, p) lands with probability below ``tail`` each side."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    low = next(k for k in range(n + 1) if sum(pmf[: k + 1]) >= tail)
    high = next(k for k in range(n, -1, -1) if sum(pmf[k:]) >= tail)
    return low, high


def test_interval_coverage_on_books_the_model_never_saw(trained: TrainedModel) -> None:
    level = trained.metrics["interval"]["level"]
    inside = np.abs(trained.test_predicted - trained.test_actual) <= trained.interval_half_width
    low, high = _binomial_bounds(len(inside), level)
    assert low <= int(inside.sum()) <= high
    assert trained.metrics["interval"]["test_coverage"] == pytest.approx(inside.mean(), abs=1e-4)


def test_too_few_books_to_train() -> None:
    with pytest.raises(ValueError, match="too few books"):
        train_price_model(snapshot_frame().head(10), CATEGORIES)


@pytest.mark.slow
def test_a_saved_model_predicts_the_same_in_another_process(
    trained: TrainedModel, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path)
    saved = store.save(trained)
    features = book_features(snapshot_frame().head(50), CATEGORIES)
    here = trained.predict(features)
    features.to_pickle(tmp_path / "features.pkl")  # test data only, never a model
    code = (
        "import sys, json, pathlib, pandas as pd;"
        "from bookql.ml.store import ModelStore;"
        "from bookql.ml.price_model import predict;"
        f"m = ModelStore(pathlib.Path({str(tmp_path)!r})).get({saved.version!r}).load();"
        f"f = pd.read_pickle({str(tmp_path / 'features.pkl')!r});"
        "print(json.dumps(predict(m, f).tolist()))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(there.stdout) == here.tolist()


def test_the_store_lays_out_a_version(trained: TrainedModel, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    saved = store.save(trained)
    files = {path.name for path in saved.path.iterdir()}
    assert files == {
        "model.ubj",
        "MLmodel",
        "model_card.md",
        "predicted_vs_actual.png",
        "holdout.json",
    }
    meta = saved.metadata
    assert meta["flavors"]["xgboost"]["model_format"] == "ubj"
    assert [f["name"] for f in json.loads(meta["signature"]["inputs"])] == list(FEATURES)
    assert saved.bookql["metrics"] == trained.metrics
    assert saved.bookql["data_hash"].startswith("sha256:")
    card = (saved.path / "model_card.md").read_text()
    m = trained.metrics
    assert f"| this model | {m['model']['mae']:.2f} |" in card
    assert f"{m['baseline_mean']['mae']:.2f}" in card
    assert f"{m['baseline_category_mean']['mae']:.2f}" in card
    assert "randomly" in card or "at random" in card
    assert (saved.path / "predicted_vs_actual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_save_killed_half_way_is_never_served(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path)

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt  # the process is stopped while writing the card

    monkeypatch.setattr(store_module, "write_model_card", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(trained)
    assert store.versions() == []
    assert list(tmp_path.iterdir()) == []
    # a SIGKILL leaves its staging folder behind: it is still not a version
    (tmp_path / ".tmp-20261129-000000-abcdef").mkdir()
    (tmp_path / ".tmp-20261129-000000-abcdef" / "model.ubj").write_bytes(b"half")
    assert store.versions() == []
    with pytest.raises(UnknownVersion):
        store.get(".tmp-20261129-000000-abcdef")


@pytest.mark.slow
def test_activation_switches_atomically(trained: TrainedModel, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.active() is None
    first = store.save(trained)
    second = store.save(trained)
    assert [v.version for v in store.versions()] == [second.version, first.version]
    store.activate(first.version)
    assert store.active_version() == first.version
    store.activate(second.version)
    assert store.active_version() == second.version
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(UnknownVersion):
        store.activate("no-such-version")
    with pytest.raises(UnknownVersion):
        store.activate("../elsewhere")
    assert store.active_version() == second.version


@pytest.mark.slow
def test_train_and_models_from_the_command_line(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}

    def bookql(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bookql", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    bookql("db", "upgrade")
    too_few = bookql("train")
    assert too_few.returncode == 1
    assert "too few books" in too_few.stderr
    bookql("seed")
    trained_run = bookql("train", "--activate")
    assert trained_run.returncode == 0, trained_run.stderr
    assert "(active)" in trained_run.stdout
    assert "mean price" in trained_run.stdout
    listed = bookql("models", "list")
    assert listed.stdout.startswith("* ")
    version = listed.stdout.split()[1]
    assert (tmp_path / "models_store" / version / "model.ubj").is_file()
    assert bookql("models", "activate", version).stdout.strip() == f"active model: {version}"
    unknown = bookql("models", "activate", "nope")
    assert unknown.returncode == 1
    assert "no model version 'nope'" in unknown.stderr
