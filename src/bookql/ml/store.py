"""``models_store/``: one folder per model version, written atomically, and an alias file.

A version folder appears only complete: it is written under a temporary name and renamed
into place, so a save killed half-way leaves a ``.tmp-*`` folder that is never listed or
served. The folder holds the model in XGBoost's own format (UBJ, never pickle), ``MLmodel``
metadata with MLflow's field names (and the sha256 of every other file in it), a model card,
a plot, and the held-out books' actual and predicted prices (``holdout.json``; versions saved
before it have none). ``ACTIVE`` names the served version and is replaced atomically, so
every reader sees the old name or the new one; a version is checked
(``bookql.ml.integrity``) before the alias may name it. A damaged version is listed with its
problem, never an error for the whole listing.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from bookql.ml.integrity import BrokenVersion as BrokenVersion
from bookql.ml.integrity import InvalidVersion as InvalidVersion
from bookql.ml.integrity import (
    Metadata,
    VersionInfo,
    check_booster,
    check_version_name,
    checksums,
    load_booster,
    parse_metadata,
    verify_checksums,
)
from bookql.ml.integrity import UnknownVersion as UnknownVersion
from bookql.ml.price_model import TrainedModel

MODEL_FILE = "model.ubj"
METADATA_FILE = "MLmodel"
HOLDOUT_FILE = "holdout.json"
ALIAS_FILE = "ACTIVE"
FLAVOR = "xgboost"
MAX_ALIAS_BYTES = 4096  # {"version": …, "activated_at": …} is about a hundred

Fingerprint = tuple[tuple[str, int, int, int], ...] | None


@dataclass(frozen=True)
class StoredModel:
    """A version whose ``MLmodel`` reads; ``problem`` says when its files are not servable."""

    version: str
    path: Path
    metadata: dict[str, Any]
    parsed: Metadata
    problem: str | None = None

    @property
    def created_at(self) -> datetime:
        return self.parsed.utc_time_created

    @property
    def info(self) -> VersionInfo:
        return self.parsed.info

    @property
    def bookql(self) -> dict[str, Any]:
        info: dict[str, Any] = self.metadata["metadata"]["bookql"]
        return info

    def load(self) -> xgboost.Booster:
        """The booster, unchecked: serving goes through :meth:`ModelStore.load`."""
        booster = xgboost.Booster()
        booster.load_model(self.path / MODEL_FILE)
        return booster


@dataclass(frozen=True)
class HeldOutPoint:
    """One held-out book: its price and the final model's prediction of it (GBP)."""

    upc: str
    title: str
    actual: float
    predicted: float


def _write_held_out(folder: Path, trained: TrainedModel) -> None:
    points = [
        {
            "upc": upc,
            "title": title,
            "actual": round(float(actual), 4),
            "predicted": round(float(predicted), 4),
        }
        for upc, title, actual, predicted in zip(
            trained.test_upcs,
            trained.test_titles,
            trained.test_actual,
            trained.test_predicted,
            strict=True,
        )
    ]
    (folder / HOLDOUT_FILE).write_text(
        json.dumps({"points": points}, ensure_ascii=False), encoding="utf-8"
    )


def read_held_out(model: StoredModel) -> list[HeldOutPoint] | None:
    """The held-out points of a version, checked against their recorded sha256; None when the
    version has none (saved before they were kept) or the file is damaged (then the version's
    ``problem`` says so)."""
    recorded = (model.info.checksums or {}).get(HOLDOUT_FILE)
    if recorded is None:
        return None
    path = model.path / HOLDOUT_FILE
    try:
        data = path.read_bytes()  # read once: what is checked is what is parsed
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != recorded:
            return None
        raw = json.loads(data)
        return [
            HeldOutPoint(
                upc=str(point["upc"]),
                title=str(point["title"]),
                actual=float(point["actual"]),
                predicted=float(point["predicted"]),
            )
            for point in raw["points"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class UnreadableModel:
    """A version folder whose ``MLmodel`` does not read: listed, with its problem."""

    version: str
    path: Path
    problem: str
    created_at: datetime


@dataclass(frozen=True)
class LoadedModel:
    """A version that passed every check, and its booster."""

    stored: StoredModel
    booster: xgboost.Booster


@dataclass(frozen=True)
class Alias:
    """What ``ACTIVE`` names; ``stamp`` changes whenever the alias or its target's files do."""

    version: str | None
    problem: str | None
    stamp: object


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
        # version -> (fingerprint of its files, problem): each change is checked once
        self._checks: dict[str, tuple[Fingerprint, str | None]] = {}

    def save(
        self, trained: TrainedModel, *, version: str | None = None, now: datetime | None = None
    ) -> StoredModel:
        now = now or datetime.now(UTC)
        version = check_version_name(version or new_version(now))
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{version}"
        staging.mkdir()
        try:
            trained.model.save_model(staging / MODEL_FILE)
            _write_held_out(staging, trained)
            metadata = _metadata(trained, version, now)
            write_model_card(staging, version, trained, metadata)
            artifacts = [path.name for path in staging.iterdir()]
            metadata["metadata"]["bookql"]["checksums"] = checksums(staging, artifacts)
            (staging / METADATA_FILE).write_text(yaml.safe_dump(metadata, sort_keys=False))
            _sync_directory(staging)
            os.rename(staging, self.root / version)
            _sync_directory(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(version)

    def versions(self) -> list[StoredModel | UnreadableModel]:
        """Every version, newest first, each with its problem if it has one (half-written
        ``.tmp-*`` folders and names that are not versions are not listed)."""
        if not self.root.is_dir():
            return []
        found: list[StoredModel | UnreadableModel] = []
        for path in self.root.iterdir():
            try:
                version = check_version_name(path.name)
            except InvalidVersion:
                continue
            if not path.is_dir():
                continue
            try:
                stored = self.get(version)
            except BrokenVersion as exc:
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                found.append(UnreadableModel(version, path, str(exc), modified))
            except UnknownVersion:
                continue  # removed while listing
            else:
                found.append(dataclasses.replace(stored, problem=self.problem(version)))
        return sorted(found, key=lambda model: model.version, reverse=True)

    def get(self, version: str) -> StoredModel:
        """A version whose metadata reads (its files unchecked); ``InvalidVersion``,
        ``UnknownVersion`` or ``BrokenVersion`` otherwise."""
        path = self.root / check_version_name(version)
        if not path.is_dir():
            raise UnknownVersion(f"no model version {version!r}")
        return self._read(path)

    def load(self, version: str) -> LoadedModel:
        """A version that passed every check, loaded; ``BrokenVersion`` saying why not."""
        stored = self.get(version)
        recorded = stored.info.checksums
        if recorded is not None:
            verify_checksums(stored.path, recorded, {MODEL_FILE})
        elif not (stored.path / MODEL_FILE).is_file():  # saved before checksums: load it
            raise BrokenVersion(f"{MODEL_FILE} is missing")
        booster = load_booster(stored.path / MODEL_FILE)
        check_booster(booster, stored.parsed)
        return LoadedModel(stored, booster)

    def problem(self, version: str) -> str | None:
        """Why ``version`` cannot be served, or None; checked again only when its files change."""
        fingerprint = _fingerprint(self.root / check_version_name(version))
        cached = self._checks.get(version)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        try:
            self.load(version)
            problem = None
        except (BrokenVersion, UnknownVersion) as exc:
            problem = str(exc)
        except Exception as exc:  # one damaged version must not fail the whole listing
            problem = f"it cannot be checked: {type(exc).__name__}: {exc}"
        self._checks[version] = (fingerprint, problem)
        return problem

    def alias(self) -> Alias:
        """What ``ACTIVE`` names, or why it names nothing usable."""
        try:
            with (self.root / ALIAS_FILE).open("rb") as file:
                raw = file.read(MAX_ALIAS_BYTES + 1)
        except FileNotFoundError:
            return Alias(None, None, None)
        except OSError as exc:
            return Alias(None, f"the {ALIAS_FILE} alias cannot be read: {exc.strerror}", exc.errno)
        try:
            if len(raw) > MAX_ALIAS_BYTES:
                raise ValueError("too long")
            version = check_version_name(json.loads(raw)["version"])
        except (ValueError, KeyError, TypeError):
            problem = f"the {ALIAS_FILE} alias is damaged: it names no valid version"
            return Alias(None, problem, raw)
        return Alias(version, None, (raw, _fingerprint(self.root / version)))

    def active_version(self) -> str | None:
        return self.alias().version

    def active(self) -> StoredModel | None:
        version = self.active_version()
        return self.get(version) if version is not None else None

    def activate(self, version: str) -> StoredModel:
        """Check ``version`` (``BrokenVersion`` if it fails), then point ``ACTIVE`` at it in
        one atomic rename."""
        model = self.load(version).stored
        alias = self.root / ALIAS_FILE
        staging = self.root / f".{ALIAS_FILE}.{uuid.uuid4().hex}"
        staging.write_text(
            json.dumps({"version": version, "activated_at": datetime.now(UTC).isoformat()}) + "\n"
        )
        os.replace(staging, alias)
        _sync_directory(self.root)
        return model

    def _read(self, path: Path) -> StoredModel:
        try:
            text = (path / METADATA_FILE).read_text()
        except FileNotFoundError:
            raise BrokenVersion(f"its {METADATA_FILE} is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BrokenVersion(f"its {METADATA_FILE} cannot be read: {exc}") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError:
            raise BrokenVersion(f"its {METADATA_FILE} is not valid YAML") from None
        parsed = parse_metadata(raw)
        return StoredModel(version=path.name, path=path, metadata=raw, parsed=parsed)


def _fingerprint(folder: Path) -> Fingerprint:
    """Name, size, modification time and inode of every file in ``folder`` (None: gone)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        stats = [(entry.name, entry.stat()) for entry in entries]
    except (FileNotFoundError, NotADirectoryError):
        return None
    return tuple((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in stats)


def _sync_directory(path: Path) -> None:
    """Make a rename durable: fsync the directory that holds it."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
