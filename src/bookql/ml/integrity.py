"""Whether a stored version can be served: its name, metadata, checksums, signature, a probe.

A version is checked before it is activated and before a process serves it. Its name is
checked before any path is built from it. Its ``MLmodel`` must describe what the API reads.
The sha256 of every artifact, recorded at save, must match (versions saved before
checksums existed have none, and are checked by loading alone). The model must load, take
exactly the features its signature names with their types (the features this code
computes), and make one finite prediction.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import xgboost
from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError

from bookql.ml.features import FEATURES, BookInputs, feature_rows, features_frame
from bookql.ml.price_model import predict

MAX_VERSION_LENGTH = 64
_VERSION = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_VERSION_LENGTH - 1}}}")
# the signature's type names (MLflow's) and XGBoost's for the same columns
_XGBOOST_TYPES = {"category": "c", "long": "int", "double": "float"}
_PROBE = BookInputs(None, 3, 1, "A probe: title (Series, #1)", "A short description.")
_HASH_CHUNK = 1 << 20


class UnknownVersion(LookupError):
    """No such version in the store."""


class InvalidVersion(UnknownVersion, ValueError):
    """Not a version name at all (too long, or characters a folder name must not have)."""


class BrokenVersion(Exception):
    """The version exists but cannot be served; the message says why."""


def check_version_name(version: object) -> str:
    """``version`` when it may name a version folder; ``InvalidVersion`` before any path."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        shown = repr(version) if len(repr(version)) <= 80 else f"{repr(version)[:77]}..."
        raise InvalidVersion(
            f"invalid model version {shown}: 1 to {MAX_VERSION_LENGTH} letters, digits, "
            "'.', '_' or '-', not starting with '.', '_' or '-'"
        )
    return version


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Scores(_Section):
    mae: float
    rmse: float
    r2: float


class CrossValidation(_Section):
    folds: int
    mae: float
    mae_std: float
    rmse: float
    r2: float


class Interval(_Section):
    level: float
    half_width: float
    test_coverage: float


class Metrics(_Section):
    model: Scores
    baseline_mean: Scores
    baseline_category_mean: Scores
    cross_validation: CrossValidation
    interval: Interval


class VersionInfo(_Section):
    """``metadata.bookql`` of an ``MLmodel``: what serving and the API read."""

    categories: list[str]
    training_rows: int
    data_hash: str
    metrics: Metrics
    interval_half_width: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    checksums: dict[str, str] | None = None


class _Column(_Section):
    name: str
    type: str


class _Signature(_Section):
    inputs: Json[list[_Column]]


class _Bookql(_Section):
    bookql: VersionInfo


class Metadata(_Section):
    """The parts of an ``MLmodel`` file bookql relies on, validated."""

    utc_time_created: datetime
    signature: _Signature
    metadata: _Bookql

    @property
    def info(self) -> VersionInfo:
        return self.metadata.bookql

    @property
    def inputs(self) -> list[_Column]:
        return self.signature.inputs


def parse_metadata(raw: Any) -> Metadata:
    """The validated ``MLmodel`` contents; ``BrokenVersion`` saying what is wrong."""
    try:
        return Metadata.model_validate(raw)
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) or "(top)" for e in exc.errors()[:3])
        raise BrokenVersion(f"its MLmodel is incomplete or invalid ({where})") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def checksums(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_of(folder / name) for name in sorted(names)}


def verify_checksums(folder: Path, recorded: dict[str, str], required: set[str]) -> None:
    """Every artifact as saved; names outside ``required``'s folder layout are refused."""
    missing = required - set(recorded)
    if missing:
        raise BrokenVersion(f"its MLmodel records no checksum for {', '.join(sorted(missing))}")
    for name, expected in sorted(recorded.items()):
        if "/" in name or name.startswith("."):
            raise BrokenVersion(f"its MLmodel records a checksum for a foreign path {name!r}")
        try:
            actual = sha256_of(folder / name)
        except FileNotFoundError:
            raise BrokenVersion(f"{name} is missing") from None
        except OSError as exc:
            raise BrokenVersion(f"{name} cannot be read: {exc.strerror}") from None
        if actual != expected:
            raise BrokenVersion(f"{name} does not match its checksum: the file was changed")


def load_booster(path: Path) -> xgboost.Booster:
    booster = xgboost.Booster()
    try:
        booster.load_model(path)
    except xgboost.core.XGBoostError as exc:
        raise BrokenVersion(f"{path.name} does not load: {_first_line(exc)}") from None
    # One thread per prediction: requests run side by side on the thread pool, and an
    # OpenMP team per request would spin on the cores the other requests need.
    booster.set_param({"nthread": 1})
    return booster


def check_booster(booster: xgboost.Booster, metadata: Metadata) -> None:
    """The model takes the signature's features, which are this code's, and predicts."""
    inputs = metadata.inputs
    names = [column.name for column in inputs]
    if tuple(names) != FEATURES:
        raise BrokenVersion(
            f"its signature names features {names}, not the {len(FEATURES)} this server computes"
        )
    wanted = [_XGBOOST_TYPES.get(column.type, column.type) for column in inputs]
    if booster.feature_names != names or booster.feature_types != wanted:
        raise BrokenVersion(
            "the model's features do not match its signature: "
            f"{booster.feature_names} {booster.feature_types} against {names} {wanted}"
        )
    categories = metadata.info.categories
    rows = feature_rows([_PROBE._replace(category=next(iter(categories), None))], set(categories))
    try:
        prices = predict(booster, features_frame(rows, categories))
    except Exception as exc:  # whatever a damaged model raises, it is not servable
        raise BrokenVersion(f"its probe prediction failed: {_first_line(exc)}") from None
    if prices.shape != (1,) or not np.isfinite(prices).all():
        raise BrokenVersion(f"its probe prediction is not a price: {prices.tolist()}")


def _first_line(exc: BaseException) -> str:
    """XGBoost's messages carry a native stack trace: its first line says enough."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
