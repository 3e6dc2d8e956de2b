"""Expected failures, in two families.

:class:`BookQLError` and its subclasses are the failures a request reports to its caller,
each with a code from the GraphQL contract (``extensions.code``). Business logic raises
them without knowing about GraphQL; ``bookql.graphql.errors`` turns them into GraphQL errors.

:class:`StartupError` and its subclasses stop the program before it serves anything: the
command line prints their message as one line (no traceback) and exits non-zero.
"""

from enum import StrEnum
from typing import Any


class StartupError(Exception):
    """Something outside the code is wrong; the message names it and says what to do."""


class ConfigError(StartupError):
    """A setting is missing, malformed or unsafe."""


class DatabaseUnavailableError(StartupError):
    """The configured database cannot be reached."""


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    TIMEOUT = "TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ErrorReason(StrEnum):
    """``extensions.reason``: why, where a client can act on it beyond the code."""

    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (a name): refresh, then send it again
    # Persisted queries (bookql.server.persisted):
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"  # the sha256 is not the query's
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"  # APQ off, or another version
    TRUSTED_DOCUMENTS_ONLY = "TRUSTED_DOCUMENTS_ONLY"  # the document is not in the manifest


class BookQLError(Exception):
    """An expected failure, reported to the client with its code and message."""

    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code.value, **extensions}


class BadUserInput(BookQLError):
    code = ErrorCode.BAD_USER_INPUT


class Unauthenticated(BookQLError):
    code = ErrorCode.UNAUTHENTICATED


class AccessTokenExpired(Unauthenticated):
    """The access token was good and is now too old: the one refusal a client mends itself."""

    def __init__(self) -> None:
        super().__init__(
            "access token expired: refresh it, or sign in again",
            reason=ErrorReason.TOKEN_EXPIRED.value,
        )


class Forbidden(BookQLError):
    code = ErrorCode.FORBIDDEN


class NotFound(BookQLError):
    code = ErrorCode.NOT_FOUND


class Conflict(BookQLError):
    code = ErrorCode.CONFLICT


class RateLimited(BookQLError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)


class QueryTooComplex(BookQLError):
    code = ErrorCode.QUERY_TOO_COMPLEX


class Timeout(BookQLError):
    code = ErrorCode.TIMEOUT


class ServiceUnavailable(BookQLError):
    code = ErrorCode.SERVICE_UNAVAILABLE
