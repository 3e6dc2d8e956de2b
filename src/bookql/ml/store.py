"""``models_store/``: one folder per model version, written atomically, and an alias file.

A version folder appears only complete: it is written under a temporary name and renamed
into place, so a save killed half-way leaves a ``.tmp-*`` folder that is never listed or
served. The folder holds the model in XGBoost's own format (UBJ, never pickle), ``MLmodel``
metadata with MLflow's field names, a model card and a plot. ``ACTIVE`` names the served
version and is replaced atomically, so every reader sees the old name or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import xgboost
import yaml

from bookql.ml.card import write_model_card
from bookql.ml.training import TrainedModel

MODEL_FILE = "model.ubj"
METADATA_FILE = "MLmodel"
ALIAS_FILE = "ACTIVE"
FLAVOR = "xgboost"


class UnknownVersion(LookupError):
    pass


@dataclass(frozen=True)
class StoredModel:
    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.metadata["utc_time_created"])

    @property
    def bookql(self) -> dict[str, Any]:
        info: dict[str, Any] = self.metadata["metadata"]["bookql"]
        return info

    def load(self) -> xgboost.Booster:
        booster = xgboost.Booster()
        booster.load_model(self.path / MODEL_FILE)
        return booster


def new_version(now: datetime) -> str:
    """Sortable by time and unique: ``20261129-104012-123456-3fa2``."""
    return f"{now:%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:4]}"


def _metadata(trained: TrainedModel, version: str, now: datetime) -> dict[str, Any]:
    return {
        "artifact_path": version,
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": now.isoformat(),
        "flavors": {
            "python_function": {
                "loader_module": "bookql.ml.store",
                "data": MODEL_FILE,
                "env": {"python": "bookql"},
            },
            FLAVOR: {
                "xgb_version": xgboost.__version__,
                "data": MODEL_FILE,
                "model_class": "xgboost.core.Booster",
                "model_format": "ubj",
                "code": None,
            },
        },
        "signature": {
            "inputs": json.dumps(trained.feature_types),
            "outputs": json.dumps([{"name": "price", "type": "double"}]),
            "params": None,
        },
        "metadata": {
            "bookql": {
                "version": version,
                "pandas_version": pd.__version__,
                "xgboost_version": xgboost.__version__,
                "params": trained.params,
                "categories": trained.categories,
                "training_rows": trained.training_rows,
                "data_hash": trained.data_hash,
                "metrics": trained.metrics,
                "interval_half_width": trained.interval_half_width,
            }
        },
    }


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(
        self, trained: TrainedModel, *, version: str | None = None, now: datetime | None = None
    ) -> StoredModel:
        now = now or datetime.now(UTC)
        version = version or new_version(now)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{version}"
        staging.mkdir()
        try:
            trained.model.save_model(staging / MODEL_FILE)
            metadata = _metadata(trained, version, now)
            (staging / METADATA_FILE).write_text(yaml.safe_dump(metadata, sort_keys=False))
            write_model_card(staging, version, trained, metadata)
            _sync_directory(staging)
            os.rename(staging, self.root / version)
            _sync_directory(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(version)

    def versions(self) -> list[StoredModel]:
        """Complete versions, newest first (half-written ``.tmp-*`` folders are not versions)."""
        if not self.root.is_dir():
            return []
        found = [
            self._read(path)
            for path in self.root.iterdir()
            if path.is_dir() and not path.name.startswith(".") and (path / METADATA_FILE).is_file()
        ]
        return sorted(found, key=lambda model: model.version, reverse=True)

    def get(self, version: str) -> StoredModel:
        path = self.root / version
        if version.startswith(".") or "/" in version or not (path / METADATA_FILE).is_file():
            raise UnknownVersion(f"no model version {version!r}")
        return self._read(path)

    def active_version(self) -> str | None:
        try:
            return json.loads((self.root / ALIAS_FILE).read_text())["version"]  # type: ignore[no-any-return]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def active(self) -> StoredModel | None:
        version = self.active_version()
        return self.get(version) if version is not None else None

    def activate(self, version: str) -> StoredModel:
        """Point ``ACTIVE`` at ``version`` in one atomic rename."""
        model = self.get(version)
        alias = self.root / ALIAS_FILE
        staging = self.root / f".{ALIAS_FILE}.{uuid.uuid4().hex}"
        staging.write_text(
            json.dumps({"version": version, "activated_at": datetime.now(UTC).isoformat()}) + "\n"
        )
        os.replace(staging, alias)
        _sync_directory(self.root)
        return model

    def _read(self, path: Path) -> StoredModel:
        metadata = yaml.safe_load((path / METADATA_FILE).read_text())
        return StoredModel(version=path.name, path=path, metadata=metadata)


def _sync_directory(path: Path) -> None:
    """Make a rename durable: fsync the directory that holds it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
