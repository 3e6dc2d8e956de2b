"""The model card (Markdown) and its plot of predicted against actual prices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bookql.ml.price_model import TrainedModel

PLOT_FILE = "predicted_vs_actual.png"
CARD_FILE = "model_card.md"


def _plot(path: Path, trained: TrainedModel) -> None:
    # Imported here: matplotlib costs every process a second at start-up, and only the
    # processes that train draw. A bare Figure renders to files, with no pyplot state.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.subplots()
    axes.scatter(trained.test_actual, trained.test_predicted, s=10, alpha=0.6)
    low = float(min(trained.test_actual.min(), trained.test_predicted.min()))
    high = float(max(trained.test_actual.max(), trained.test_predicted.max()))
    axes.plot([low, high], [low, high], color="grey", linewidth=1, label="perfect")
    axes.set_xlabel("actual price (GBP)")
    axes.set_ylabel("predicted price (GBP)")
    axes.set_title("Held-out books: predicted vs actual")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)


def _row(name: str, scores: dict[str, float]) -> str:
    return f"| {name} | {scores['mae']:.2f} | {scores['rmse']:.2f} | {scores['r2']:.3f} |"


def write_model_card(
    folder: Path, version: str, trained: TrainedModel, metadata: dict[str, Any]
) -> None:
    _plot(folder / PLOT_FILE, trained)
    m = trained.metrics
    interval = m["interval"]
    cv = m["cross_validation"]
    beats_mean = m["model"]["mae"] < m["baseline_mean"]["mae"]
    verdict = (
        "The model's held-out MAE is below the mean-price baseline's"
        if beats_mean
        else "The model does **not** beat predicting the mean price"
    )
    features = ", ".join(f"`{f['name']}` ({f['type']})" for f in trained.feature_types)
    card = f"""# Model card: book price model {version}

## Model details
- XGBoost {metadata["flavors"]["xgboost"]["xgb_version"]} gradient-boosted trees (regression,
  squared error), trained by bookql with seed {trained.seed}; saved in XGBoost's UBJ format.
- Created {metadata["utc_time_created"]}; training data hash `{trained.data_hash}`.
- Parameters: `{trained.params}`.

## Intended use
Predicting the shown price (GBP, incl. tax) of a book of the books.toscrape.com catalogue from
its category, rating, stock and title/description shape, for demonstrations, notebooks and API
tests. Not for pricing real books.

## Training data
{m["rows"]["train"]} listed books for training and {m["rows"]["test"]} held out (a seeded random
split of the {m["rows"]["train"] + m["rows"]["test"]} books in the database). Features: {features}.

## Evaluation (held-out books)
| predictor | MAE (GBP) | RMSE (GBP) | R² |
|---|---|---|---|
{_row("this model", m["model"])}
{_row("baseline: mean price of the training books", m["baseline_mean"])}
{_row("baseline: mean price of the book's category", m["baseline_category_mean"])}

{cv["folds"]}-fold cross-validation on the training books:
MAE {cv["mae"]:.2f} ± {cv["mae_std"]:.2f}, RMSE {cv["rmse"]:.2f}, R² {cv["r2"]:.3f}.

{verdict} ({m["model"]["mae"]:.2f} against {m["baseline_mean"]["mae"]:.2f}).

![predicted against actual prices]({PLOT_FILE})

## Prediction intervals
{interval["method"]}: prediction ± {interval["half_width"]:.2f} GBP for a nominal
{interval["level"]:.0%} interval. Measured coverage on the held-out books:
{interval["test_coverage"]:.1%}.

## Limitations
- The site says its prices and ratings were assigned at random. No feature can predict a
  random price, so the honest expectation is a model no better than the mean; the figures
  above show how close to that this one is, and the interval is correspondingly wide.
- The catalogue is small (about a thousand books); some categories hold a single book.
- Categories unseen in training are treated as missing.

## Ethical considerations
The data is a public scraping sandbox with no personal data. Do not present predictions as
real market prices.
"""
    (folder / CARD_FILE).write_text(card)
