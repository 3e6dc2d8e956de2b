"""Prometheus metrics, served at ``/metrics``, whole across worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``bookql serve --workers N`` sets it) every process
writes its samples to files there and a scrape, answered by any worker, adds them up
(prometheus-client's multiprocess mode); a single process serves its own registry. Jobs
are counted in the database at scrape time, so workers on other machines count too.

Label values come from small fixed sets (routes, codes, outcomes), except operation names,
which clients choose: those are kept to valid GraphQL names and to the first
``MAX_OPERATION_NAMES`` seen, the rest counted as ``other``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
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
from strawberry.extensions import SchemaExtension

from bookql.api.errors import ErrorCode, error_code

log = logging.getLogger("bookql.metrics")
MAX_OPERATION_NAMES = 200
_OPERATION_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "bookql_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "bookql_http_request_duration_seconds",
    "Time to answer an HTTP request (to the end of its body)",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
OPERATIONS = Counter(
    "bookql_graphql_operations_total",
    "GraphQL operations by name, type and outcome (ok, error, rejected)",
    ["operation", "type", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "bookql_graphql_operation_duration_seconds",
    "Time to execute a GraphQL operation",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
ERRORS = Counter("bookql_graphql_errors_total", "GraphQL errors by extensions.code", ["code"])
PREDICTIONS = Counter(
    "bookql_predictions_total", "Price predictions made, by model version", ["model_version"]
)
POOL_IN_USE = Gauge(
    "bookql_db_connections_in_use",
    "Database connections checked out of each pool",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "bookql_db_pool_size",
    "Connections each pool keeps (beyond it, overflow)",
    ["pool"],
    multiprocess_mode="livemax",
)

_seen_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """A bounded label for a client-chosen operation name."""
    if not name:
        return "anonymous"
    if name in _seen_operations:
        return name
    if not _OPERATION_NAME.match(name) or len(_seen_operations) >= MAX_OPERATION_NAMES:
        return "other"
    _seen_operations.add(name)
    return name


def record_operation(
    name: str | None, kind: str, codes: Iterable[str], seconds: float | None
) -> None:
    """One GraphQL operation: its outcome from its error codes, and how long it ran."""
    codes = list(codes)
    rejected = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "QUERY_TOO_COMPLEX"}
    if not codes:
        outcome = "ok"
    elif all(code in rejected for code in codes):
        outcome = "rejected"
    else:
        outcome = "error"
    OPERATIONS.labels(operation_label(name), kind, outcome).inc()
    for code in codes:
        ERRORS.labels(code).inc()
    if seconds is not None:
        OPERATION_SECONDS.labels(kind).observe(seconds)


class OperationMetrics(SchemaExtension):
    """Counts every operation the standard executor runs, once its errors carry their codes
    (so it must come before ``ErrorCodes`` in the extension list: it finishes after it)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        errors = (context.result.errors if context.result else None) or []
        codes = [error_code(e) or ErrorCode.INTERNAL_SERVER_ERROR.value for e in errors]
        try:
            kind = context.operation_type.value
        except RuntimeError:  # no operation to speak of: unparsable, or no such operation name
            kind = "unknown"
        record_operation(context.operation_name, kind, codes, time.perf_counter() - started)


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
