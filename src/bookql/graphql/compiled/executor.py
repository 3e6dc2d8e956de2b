"""One request through a plan: the standard path's per-request checks, then one thread hop.

Before running, a request passes what the standard executor checks once it has a valid
document: NUL in the variables, the variables' types, the cost with those variables, and
the root fields' permissions. Any of these refusing, and any error while running, hands the
request to the standard executor, which answers it with the proper errors. The one answer
given here besides data is ``TIMEOUT``, worded as the schema words it. Operations answered
here are counted in the operation metrics as the standard executor counts its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from graphql.execution.values import VariableValues, get_variable_values

from bookql.core.errors import BookQLError, ErrorCode
from bookql.db.blocking import BlockingDatabase
from bookql.graphql.compiled.plan import Fallback, RootField, Run
from bookql.graphql.compiled.planner import OperationPlan, Planner
from bookql.graphql.errors import dependency_error
from bookql.graphql.limits import has_unstorable_text
from bookql.graphql.metrics import record_operation

log = logging.getLogger("bookql.compiled")

# After the database failed under a plan, requests go straight to the standard executor
# (which reports the outage) for this long, rather than meeting the outage twice each.
OUTAGE_PAUSE_SECONDS = 1.0


@dataclass
class Counts:
    """How requests went: served here, handed back while running, or never planned."""

    served: int = 0
    fell_back: int = 0
    declined: int = 0
    failed: int = 0


class CompiledQueries:
    """Answers the query operations its plans cover; ``None`` means: not this one."""

    def __init__(
        self,
        schema: Any,
        roots: dict[str, RootField],
        blocking: BlockingDatabase,
        *,
        timeout_seconds: float,
    ) -> None:
        self.planner = Planner(schema, roots)
        self.blocking = blocking
        self.timeout_seconds = timeout_seconds
        limits = self.planner.rules.limits
        self.max_cost = limits.max_cost if limits is not None else None
        self.counts = Counts()
        self._outage_until = 0.0

    async def execute(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        auth: Any,
    ) -> dict[str, Any] | None:
        """The response body, or None when the standard executor must answer. ``auth`` (the
        caller, as the server knows it) is handed to each root field's guard."""
        if self._outage_until and time.monotonic() < self._outage_until:
            self.counts.declined += 1
            return None
        prepared = self._prepare(query, operation_name, variables or {})
        if prepared is None:
            self.counts.declined += 1
            return None
        name, plan, coerced = prepared
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_seconds) as deadline:
                for guard in plan.guards:
                    await guard(auth)
                data = await self.blocking.run(self._run, plan, coerced)
        except (BookQLError, Fallback):
            self.counts.fell_back += 1
            return None
        except TimeoutError:
            if not deadline.expired():
                raise
            record_operation(name, "unknown", [ErrorCode.TIMEOUT.value], None)
            return self._timed_out()
        except Exception as failure:
            if dependency_error(failure) is not None:  # an outage: the standard path reports it
                self.counts.fell_back += 1
                self._outage_until = time.monotonic() + OUTAGE_PAUSE_SECONDS
                return None
            self.counts.failed += 1
            log.warning("a compiled plan failed; the standard executor answers", exc_info=True)
            return None
        self.counts.served += 1
        record_operation(name, "query", (), time.perf_counter() - started)
        return {"data": data}

    def _prepare(
        self, query: str, operation_name: str | None, variables: dict[str, Any]
    ) -> tuple[str | None, OperationPlan, VariableValues] | None:
        """The operation's name, its plan and its variables, if a plan may answer."""
        document = self.planner.document(query, operation_name)
        if document is None or (variables and has_unstorable_text(variables)):
            return None
        coerced = get_variable_values(self.planner.schema, document.variable_definitions, variables)
        if isinstance(coerced, list):
            return None
        if self.max_cost is not None and document.cost(variables) > self.max_cost:
            return None
        plan = document.variant(coerced)
        if plan is None:
            return None
        return document.name, plan, coerced

    def _run(self, plan: OperationPlan, variables: VariableValues) -> dict[str, Any]:
        with self.blocking.engine.connect() as conn:
            return plan.run(Run(conn, variables))

    def _timed_out(self) -> dict[str, Any]:
        error = GraphQLError(
            f"the operation took longer than {self.timeout_seconds:g} s",
            extensions={"code": ErrorCode.TIMEOUT.value},
        )
        return {"data": None, "errors": [error.formatted]}
