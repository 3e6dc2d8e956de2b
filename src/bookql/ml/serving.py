"""Serving predictions behind a small interface, so a remote model server could stand in.

``ActiveModel`` follows the store's ``ACTIVE`` alias: it looks at the alias at most once a
second and loads (and checks) the named version when the alias or that version's files
change, so every worker serves a switch within a second of it, without restarting. When
the alias or its target turns bad (unreadable, deleted, corrupt), the process keeps serving
the last good model it loaded, says so once in its log, and reports it (:class:`Serving`)
to ``/readyz`` and ``activeModel``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from bookql.ml.price_model import predict
from bookql.ml.store import (
    Alias,
    BrokenVersion,
    LoadedModel,
    ModelStore,
    StoredModel,
    UnknownVersion,
)

ALIAS_CHECK_SECONDS = 1.0
log = logging.getLogger("bookql.ml")
_UNSEEN = object()


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
        """A checked version (``BrokenVersion`` or ``UnknownVersion`` if it is not servable)."""
        return cls.of(store.load(version))

    @classmethod
    def of(cls, loaded: LoadedModel) -> LocalPredictor:
        info = loaded.stored.info
        return cls(
            version=loaded.stored.version,
            categories=list(info.categories),
            half_width=info.interval_half_width,
            booster=loaded.booster,  # one thread per prediction (see ``load_booster``)
        )

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return predict(self.booster, features)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Serving:
    """What this process serves, what the alias names, and why they differ (None: they do not)."""

    served: str | None
    alias: str | None
    problem: str | None


class ActiveModel:
    """The predictor of the active version, reloaded when the alias or its files change;
    the last good one kept while they are bad."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._predictor: Predictor | None = None
        self._model: StoredModel | None = None
        self._serving = Serving(None, None, None)
        self._seen: object = _UNSEEN
        self._checked_at = float("-inf")
        self._forgotten = 0
        self._lock = asyncio.Lock()

    @property
    def serving(self) -> Serving:
        """As of the latest look at the alias (call :meth:`get` first to refresh it)."""
        return self._serving

    @property
    def served_model(self) -> StoredModel | None:
        """The stored version served, as it read when loaded (its files may be gone since)."""
        return self._model

    async def get(self) -> Predictor | None:
        if time.monotonic() - self._checked_at < ALIAS_CHECK_SECONDS:
            return self._predictor
        async with self._lock:
            if time.monotonic() - self._checked_at >= ALIAS_CHECK_SECONDS:
                forgotten = self._forgotten
                alias = await asyncio.to_thread(self.store.alias)
                if alias.stamp != self._seen:
                    await self._follow(alias)
                    self._seen = alias.stamp
                if forgotten == self._forgotten:  # else a switch came during the look: again
                    self._checked_at = time.monotonic()
        return self._predictor

    def forget(self) -> None:
        """Look at the alias again on the next request (after this process switched it)."""
        self._forgotten += 1
        self._checked_at = float("-inf")

    async def _follow(self, alias: Alias) -> None:
        """Serve what ``alias`` names if it passes its checks; otherwise keep the last good."""
        problem = alias.problem
        if alias.version is None and problem is None and self._predictor is not None:
            problem = "the ACTIVE alias was removed"
        elif alias.version is not None:
            try:
                loaded = await asyncio.to_thread(self.store.load, alias.version)
                self._predictor, self._model = LocalPredictor.of(loaded), loaded.stored
            except (BrokenVersion, UnknownVersion) as exc:
                problem = f"model version {alias.version} cannot be served: {exc}"
            except Exception as exc:  # whatever else a damaged store raises, keep serving
                log.exception("model version %s could not be loaded", alias.version)
                problem = f"model version {alias.version} cannot be served: {type(exc).__name__}"
        served = self._predictor.version if self._predictor is not None else None
        self._report(Serving(served, alias.version, problem))

    def _report(self, serving: Serving) -> None:
        """Log a change of what is served or of its problem: once per change, not per request."""
        before, self._serving = self._serving, serving
        if serving == before:
            return
        fields = {"served": serving.served, "alias": serving.alias, "pid": os.getpid()}
        if serving.problem is not None:
            fallback = serving.served or "nothing: predictions fail"
            log.warning(
                "model alias problem: %s; serving %s",
                serving.problem,
                fallback,
                extra=fields | {"problem": serving.problem},
            )
        elif serving.served is not None:
            log.info("serving model version %s", serving.served, extra=fields)
