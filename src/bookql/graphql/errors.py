"""One way to fail: every expected error is a GraphQL error with ``extensions.code``.

Resolvers (and the business logic under them) raise the subclasses of
:class:`bookql.core.errors.BookQLError`, which carry their code. The :class:`ErrorCodes` extension
tags parse and validation failures with their codes, turns graphql-core's own input
errors into ``BAD_USER_INPUT``, a database that is down or too slow into
``SERVICE_UNAVAILABLE`` or ``TIMEOUT``, and masks anything else as
``INTERNAL_SERVER_ERROR`` after logging it with the request id.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strawberry.extensions import SchemaExtension

from bookql.core.errors import BookQLError, ErrorCode, ServiceUnavailable, Timeout

log = logging.getLogger("bookql.errors")


# SQLite reports bugs (a syntax error) as OperationalError too: only these are outages.
SQLITE_OUTAGES = ("database is locked", "unable to open database", "disk i/o", "disk is full")


def dependency_error(exc: BaseException) -> BookQLError | None:
    """The coded error for a failing database: down, unreachable, out of connections or past
    its statement timeout. The client can retry these; they are not bugs to mask."""
    if isinstance(exc, DBAPIError):
        if isinstance(exc.orig, QueryCanceled):
            return Timeout("the database took too long to answer: ask for less, or try again")
        if isinstance(exc.orig, sqlite3.Error):
            reason = str(exc.orig).lower()
            outage = any(known in reason for known in SQLITE_OUTAGES)
        else:
            outage = isinstance(exc, OperationalError | InterfaceError)
    else:
        outage = isinstance(exc, PoolTimeout | ConnectionError)
    return ServiceUnavailable("the database is unavailable: try again shortly") if outage else None


def error_code(error: GraphQLError) -> str | None:
    code = (error.extensions or {}).get("code")
    return code if isinstance(code, str) else None


def _tag(errors: list[GraphQLError] | None, code: ErrorCode) -> None:
    for error in errors or ():
        if error_code(error) is None:
            error.extensions = {**(error.extensions or {}), "code": code.value}


def _tag_parse_failure(error: GraphQLError) -> None:
    """A syntax error, or a document over the token limit (too complex, not malformed)."""
    too_long = error.message.startswith("Syntax Error: Document contains more than")
    _tag([error], ErrorCode.QUERY_TOO_COMPLEX if too_long else ErrorCode.GRAPHQL_PARSE_FAILED)


class ErrorCodes(SchemaExtension):
    """Gives every error of every operation a code from the contract."""

    def on_validate(self) -> Iterator[None]:
        yield
        _tag(self.execution_context.pre_execution_errors, ErrorCode.GRAPHQL_VALIDATION_FAILED)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        try:
            yield
        except GraphQLError as raised:  # the parser cache raises from inside its hook
            if context.graphql_document is None:
                _tag_parse_failure(raised)
            raise
        result = context.result
        if result is None or not result.errors:
            return
        if context.graphql_document is None:  # parsing failed (possibly inside a cache)
            for error in result.errors:
                _tag_parse_failure(error)
        result.errors = [self._finish(error) for error in result.errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """The same for each result of a stream (SSE, multipart, WebSocket), which is sent
        before ``on_operation`` resumes."""
        errors = getattr(result, "errors", None)
        if errors:
            if self.execution_context.graphql_document is None:
                for error in errors:
                    _tag_parse_failure(error)
            result.errors = [self._finish(error) for error in errors]
        yield

    def _finish(self, error: GraphQLError) -> GraphQLError:
        if error_code(error) is not None:
            return error
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            # graphql-core's own complaint about the request (a variable of the wrong type).
            _tag([error], ErrorCode.BAD_USER_INPUT)
            return error
        request_id = getattr(self.execution_context.context, "request_id", None)
        failure = dependency_error(original)
        if failure is not None:
            log.warning(
                "%s (request %s): %s", failure.code.value, request_id, type(original).__name__
            )
            return GraphQLError(
                failure.message, nodes=error.nodes, path=error.path, extensions=failure.extensions
            )
        log.error(
            "unexpected error in %s (request %s)",
            ".".join(str(part) for part in error.path or ()) or "operation",
            request_id,
            exc_info=original,
        )
        return GraphQLError(
            "Internal server error.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
        )
