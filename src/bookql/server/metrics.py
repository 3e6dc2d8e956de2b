"""Prometheus metrics, served at ``/metrics``, whole across worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``bookql serve --workers N`` sets it) every process
writes its samples to files there and a scrape, answered by any worker, adds them up
(prometheus-client's multiprocess mode); a single process serves its own registry. Jobs
are counted in the database at scrape time, so workers on other machines count too.

The metrics themselves are defined in ``bookql.core.metrics``; label values come from small
fixed sets (routes, codes, outcomes), and operation names are bounded by
``bookql.graphql.metrics``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bookql.core.metrics import POOL_IN_USE, POOL_SIZE

log = logging.getLogger("bookql.metrics")


def watch_pool(engine: Engine, name: str) -> None:
    """Keep ``bookql_db_connections_in_use`` current from the pool's own events."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        POOL_SIZE.labels(name).set(size())
    in_use = POOL_IN_USE.labels(name)
    event.listen(engine, "checkout", lambda *_: in_use.inc())
    event.listen(engine, "checkin", lambda *_: in_use.dec())


class JobsCollector(Collector):
    """``bookql_jobs``: jobs by kind and status, counted in the database when scraped."""

    def __init__(self, count: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = list(self._count())
        except (DBAPIError, PoolTimeout) as exc:  # the rest of the scrape still answers
            log.warning("jobs not counted for /metrics: %s", type(exc).__name__)
            return
        family = GaugeMetricFamily(
            "bookql_jobs", "Jobs by kind and status", labels=["kind", "status"]
        )
        for kind, status, count in counts:
            family.add_metric([kind, status], count)
        yield family


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_exited(pid: int) -> None:
    """Drop a stopped worker's live gauges (its counters stay in the totals)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class MetricsEndpoint:
    """``GET /metrics``: every process's samples, plus the collectors given."""

    def __init__(self, *collectors: Collector) -> None:
        self._collectors = collectors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await run_in_threadpool(self._render)  # collecting reads files, maybe the DB
        await Response(body, media_type=CONTENT_TYPE_LATEST)(scope, receive, send)

    def _render(self) -> bytes:
        registry = CollectorRegistry()
        if multiprocess_dir():
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Everything())
        for collector in self._collectors:
            registry.register(collector)
        return generate_latest(registry)


class _Everything(Collector):
    """The process's default registry, as one collector of a scrape's registry."""

    def collect(self) -> Iterator[Any]:
        return iter(REGISTRY.collect())
