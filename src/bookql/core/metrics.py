"""The Prometheus metrics bookql keeps, defined where every layer can count on them.

``bookql.server.metrics`` serves them at ``/metrics`` (whole across worker processes);
``bookql.graphql.metrics`` counts operations; domains count their own events
(``PREDICTIONS``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
