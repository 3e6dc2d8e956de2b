"""GraphQL operations counted: by name, type and outcome, and how long they ran.

Operation names are chosen by clients: they are kept to valid GraphQL names and to the
first ``MAX_OPERATION_NAMES`` seen, the rest counted as ``other``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from strawberry.extensions import SchemaExtension

from bookql.core.errors import ErrorCode
from bookql.core.metrics import ERRORS, OPERATION_SECONDS, OPERATIONS
from bookql.graphql.errors import error_code

MAX_OPERATION_NAMES = 200
_OPERATION_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")

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


# Refused before running: the document did not parse or validate, cost too much, or a
# persisted query's hash was not known (the client sends the document next).
REJECTED = frozenset(
    code.value
    for code in (
        ErrorCode.GRAPHQL_PARSE_FAILED,
        ErrorCode.GRAPHQL_VALIDATION_FAILED,
        ErrorCode.QUERY_TOO_COMPLEX,
        ErrorCode.PERSISTED_QUERY_NOT_FOUND,
    )
)


def record_operation(
    name: str | None, kind: str, codes: Iterable[str], seconds: float | None = None
) -> None:
    """One GraphQL operation: its outcome from its error codes, and how long it ran
    (``None`` for one that never ran)."""
    codes = list(codes)
    if not codes:
        outcome = "ok"
    elif all(code in REJECTED for code in codes):
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
