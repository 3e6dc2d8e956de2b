"""Training the price model, and stating honestly how it does.

XGBoost regression with a fixed seed on a held-out split; k-fold cross-validation on the
training part; two baselines fitted on the training part only (the mean price, and the mean
per category); split-conformal prediction intervals from the out-of-fold residuals, with
their coverage measured on the held-out part. The site assigned its prices at random, so an
honest model barely beats the mean: these figures are there to say so.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost

from bookql.ml.features import FEATURES, LABEL, book_features, feature_types

Progress = Callable[[str, float], None]  # (what is happening, fraction done)

ROUNDS = 300
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "eta": 0.01,
    "max_depth": 2,
    "min_child_weight": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 5.0,
    "tree_method": "hist",
    "max_cat_to_onehot": 1,
    "nthread": 1,  # one thread: the same seed gives the same model, bit for bit
}
INTERVAL_LEVEL = 0.9


@dataclass(frozen=True)
class Scores:
    mae: float
    rmse: float
    r2: float

    @classmethod
    def of(cls, actual: np.ndarray, predicted: np.ndarray) -> Scores:
        errors = predicted - actual
        total = float(np.sum((actual - actual.mean()) ** 2))
        return cls(
            mae=float(np.mean(np.abs(errors))),
            rmse=float(math.sqrt(np.mean(errors**2))),
            r2=1.0 - float(np.sum(errors**2)) / total if total else 0.0,
        )

    def as_dict(self) -> dict[str, float]:
        return {"mae": round(self.mae, 4), "rmse": round(self.rmse, 4), "r2": round(self.r2, 4)}


@dataclass
class TrainedModel:
    model: xgboost.Booster
    categories: list[str]
    params: dict[str, Any]
    seed: int
    metrics: dict[str, Any]
    interval_half_width: float
    training_rows: int
    data_hash: str
    feature_types: list[dict[str, str]]
    test_actual: np.ndarray = field(repr=False)
    test_predicted: np.ndarray = field(repr=False)
    test_upcs: list[str] = field(repr=False)
    test_titles: list[str] = field(repr=False)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return predict(self.model, features)


def data_hash(frame: pd.DataFrame) -> str:
    """A fingerprint of exactly the rows and labels trained on."""
    stable = frame.sort_values("upc")[["upc", "category", "rating", "availability", "title", LABEL]]
    digest = hashlib.sha256(stable.to_csv(index=False).encode()).hexdigest()
    return f"sha256:{digest}"


def split_indices(rows: int, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(rows)
    test_size = max(1, round(rows * test_fraction))
    return order[test_size:], order[:test_size]


def _fit(
    features: pd.DataFrame, labels: np.ndarray, params: dict[str, Any], seed: int
) -> xgboost.Booster:
    data = xgboost.DMatrix(features, label=labels, enable_categorical=True)
    return xgboost.train({**params, "seed": seed}, data, num_boost_round=ROUNDS)


def predict(model: xgboost.Booster, features: pd.DataFrame) -> np.ndarray:
    """Prices for feature rows; ``inplace_predict`` skips building a DMatrix."""
    if tuple(features.columns) != FEATURES:
        features = features[list(FEATURES)]
    return np.asarray(model.inplace_predict(features), dtype="float64")


def conformal_half_width(residuals: np.ndarray, level: float) -> float:
    """The split-conformal quantile of absolute residuals for a ``level`` interval."""
    n = len(residuals)
    rank = min(n, math.ceil((n + 1) * level))
    return float(np.sort(np.abs(residuals))[rank - 1])


def train_price_model(
    frame: pd.DataFrame,
    categories: Sequence[str],
    *,
    seed: int = 42,
    test_fraction: float = 0.2,
    folds: int = 5,
    level: float = INTERVAL_LEVEL,
    params: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    if len(frame) < folds * 4:
        raise ValueError(f"too few books to train on ({len(frame)}): crawl or seed the catalogue")
    report = progress or (lambda _what, _done: None)
    params = {**DEFAULT_PARAMS, **(params or {})}
    features = book_features(frame, categories)
    labels = frame[LABEL].to_numpy(dtype="float64")
    train, test = split_indices(len(frame), seed, test_fraction)

    report("cross-validating", 0.0)
    out_of_fold = np.empty(len(train))
    fold_of = np.arange(len(train)) % folds
    fold_scores = []
    for fold in range(folds):
        fit_rows, held = train[fold_of != fold], train[fold_of == fold]
        model = _fit(features.iloc[fit_rows], labels[fit_rows], params, seed)
        out_of_fold[fold_of == fold] = predict(model, features.iloc[held])
        fold_scores.append(Scores.of(labels[held], out_of_fold[fold_of == fold]))
        report(f"fold {fold + 1} of {folds}", (fold + 1) / (folds + 2))
    half_width = conformal_half_width(out_of_fold - labels[train], level)

    report("training the final model", folds / (folds + 2))
    model = _fit(features.iloc[train], labels[train], params, seed)
    predicted = predict(model, features.iloc[test])
    actual = labels[test]

    report("scoring against the baselines", (folds + 1) / (folds + 2))
    mean_price = float(labels[train].mean())
    train_frame = frame.iloc[train]
    category_means = train_frame.groupby("category")[LABEL].mean()
    per_category = frame.iloc[test]["category"].map(category_means).fillna(mean_price).to_numpy()
    inside = np.abs(predicted - actual) <= half_width
    metrics = {
        "model": Scores.of(actual, predicted).as_dict(),
        "baseline_mean": Scores.of(actual, np.full(len(actual), mean_price)).as_dict(),
        "baseline_category_mean": Scores.of(actual, per_category.astype("float64")).as_dict(),
        "cross_validation": {
            "folds": folds,
            "mae": round(float(np.mean([s.mae for s in fold_scores])), 4),
            "mae_std": round(float(np.std([s.mae for s in fold_scores])), 4),
            "rmse": round(float(np.mean([s.rmse for s in fold_scores])), 4),
            "r2": round(float(np.mean([s.r2 for s in fold_scores])), 4),
        },
        "interval": {
            "method": "split conformal (absolute out-of-fold residuals)",
            "level": level,
            "half_width": round(half_width, 4),
            "test_coverage": round(float(inside.mean()), 4),
        },
        "rows": {"train": len(train), "test": len(test)},
    }
    report("done", 1.0)
    return TrainedModel(
        model=model,
        categories=list(categories),
        params={
            **params,
            "num_boost_round": ROUNDS,
            "seed": seed,
            "test_fraction": test_fraction,
            "folds": folds,
        },
        seed=seed,
        metrics=metrics,
        interval_half_width=half_width,
        training_rows=len(train),
        data_hash=data_hash(frame),
        feature_types=feature_types(features),
        test_actual=actual,
        test_predicted=predicted,
        test_upcs=[str(upc) for upc in frame.iloc[test]["upc"]],
        test_titles=[str(title) for title in frame.iloc[test]["title"]],
    )
