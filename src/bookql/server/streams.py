"""Operations that stream (WebSocket operations, SSE and multipart subscriptions), held to the
caller as they are now: a session that ends stops the stream at once, mid-batch, and a role
change ends a subscription; either way the client gets a last result with the error's code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.types import ExecutionResult

from bookql.accounts.auth import RequestAuth
from bookql.core.config import Settings
from bookql.core.errors import BookQLError

DOCUMENT_CACHE_SIZE = 128


def is_subscription(query: str | None, operation_name: str | None, settings: Settings) -> bool:
    """Whether the operation that would run is a subscription (an invalid one is not), parsed
    within the same size and token limits as the executor's own parse."""
    if not query or len(query.encode()) > settings.max_query_bytes:
        return False
    return _is_subscription(query, operation_name, settings.max_query_tokens)


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens), operation_name)
    except GraphQLError:
        return False
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


async def guarded(
    results: AsyncGenerator[Any, None],
    auth: RequestAuth,
    *,
    subscription: bool,
    release: bool = False,
) -> AsyncGenerator[Any, None]:
    """``results`` until they end, or until the caller's session or role says stop;
    ``release``: the caller is held for this stream alone, and let go after it."""
    stream = auth.stream(subscription)
    try:
        while True:
            try:
                result = await (stream.step(anext(results)) if stream else anext(results))
            except StopAsyncIteration:
                return
            except BookQLError as ended:
                error = GraphQLError(ended.message, extensions=ended.extensions)
                yield ExecutionResult(data=None, errors=[error])
                return
            yield result
    finally:
        auth.end_stream(stream)
        try:
            await results.aclose()
        finally:
            if release:
                auth.close()
