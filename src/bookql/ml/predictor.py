"""Serving predictions behind a small interface, so a remote model server could stand in.

``ActiveModel`` follows the store's ``ACTIVE`` alias: it looks at the alias at most once a
second and loads the named version when it changes, so every worker serves a switch within
a second of it, without restarting.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from bookql.ml.store import ModelStore, UnknownVersion
from bookql.ml.training import predict

ALIAS_CHECK_SECONDS = 1.0


class Predictor(Protocol):
    """What the API needs of a model: who it is, and prices with an interval half-width."""

    version: str
    categories: list[str]
    half_width: float

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...


@dataclass
class LocalPredictor:
    """A version from the store, loaded into this process."""

    version: str
    categories: list[str]
    half_width: float
    booster: object

    @classmethod
    def load(cls, store: ModelStore, version: str) -> LocalPredictor:
        stored = store.get(version)
        info = stored.bookql
        booster = stored.load()
        # One thread per prediction: requests run side by side on the thread pool, and an
        # OpenMP team per request would spin on the cores the other requests need.
        booster.set_param({"nthread": 1})
        return cls(
            version=version,
            categories=list(info["categories"]),
            half_width=float(info["interval_half_width"]),
            booster=booster,
        )

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return predict(self.booster, features)  # type: ignore[arg-type]


class ActiveModel:
    """The predictor of the active version, reloaded when the alias moves."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._predictor: Predictor | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> Predictor | None:
        if time.monotonic() - self._checked_at < ALIAS_CHECK_SECONDS:
            return self._predictor
        async with self._lock:
            if time.monotonic() - self._checked_at >= ALIAS_CHECK_SECONDS:
                version = await asyncio.to_thread(self.store.active_version)
                current = self._predictor.version if self._predictor else None
                if version != current:
                    self._predictor = await self._load(version)
                self._checked_at = time.monotonic()
        return self._predictor

    def forget(self) -> None:
        """Look at the alias again on the next request (after this process switched it)."""
        self._checked_at = float("-inf")

    async def _load(self, version: str | None) -> Predictor | None:
        if version is None:
            return None
        try:
            return await asyncio.to_thread(LocalPredictor.load, self.store, version)
        except UnknownVersion:
            return None
