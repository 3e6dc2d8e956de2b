"""The GraphQL HTTP view: Strawberry's, held to the GraphQL over HTTP specification.

* ``Accept: application/graphql-response+json`` gets that media type, and a request that
  never reached execution (unparsable, invalid, bad variables, too complex) gets 400 and no
  ``data``; ``application/json`` (the default) keeps the legacy 200.
* A mutation over GET is 405 with ``Allow: POST``; other methods are 405 ``Allow: GET, POST``.
* Every transport-level refusal is still a GraphQL error body with ``extensions.code``.
* A plain query (GET, or POST of JSON) whose plan covers it is answered by the compiled path
  (``bookql.server.compiled``); everything else, and every request a plan hands back, goes
  through Strawberry's executor unchanged.
* WebSocket operations and HTTP streams act as the caller is now (``bookql.server.streams``):
  a socket whose session ends is closed with 4403, its operations cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from contextlib import suppress
from functools import partial
from typing import Any, cast

import orjson
import strawberry
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from bookql.accounts.auth import RequestAuth
from bookql.accounts.live import LiveSessions
from bookql.accounts.service import Accounts
from bookql.catalog.graphql.loaders import CatalogLoaders
from bookql.core.config import Settings
from bookql.core.errors import BookQLError, ErrorCode
from bookql.crawls.launcher import CrawlLauncher
from bookql.graphql.compiled.executor import CompiledQueries
from bookql.graphql.errors import error_code
from bookql.graphql.nesting import NestedTooDeeply, decode_bounded, variables_too_deep
from bookql.ml.service import PriceService
from bookql.server.compiled import compiled_queries
from bookql.server.context import Context
from bookql.server.cors import OriginPolicy
from bookql.server.graphiql import graphiql_page
from bookql.server.http_cache import NO_STORE, HttpCache
from bookql.server.middleware import request_id_of
from bookql.server.persisted import PersistedQueries, Refusal, admin_check, is_admin
from bookql.server.streams import guarded, is_subscription

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Media types of Strawberry's streaming transports (SSE, multipart): never compiled.
STREAMS = ("text/event-stream", "multipart/")
# Errors that mean the operation was never executed: the request itself was at fault.
REQUEST_ERRORS = frozenset(
    {
        ErrorCode.GRAPHQL_PARSE_FAILED.value,
        ErrorCode.GRAPHQL_VALIDATION_FAILED.value,
        ErrorCode.BAD_USER_INPUT.value,
        ErrorCode.QUERY_TOO_COMPLEX.value,
    }
)


class MethodNotAllowed(Exception):
    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.message = message
        self.allow = allow


def negotiate(accept: str | None) -> str:
    """The response media type: graphql-response+json only when the client asks for it."""
    if not accept:
        return JSON
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if GRAPHQL_RESPONSE in offered and JSON not in offered[: offered.index(GRAPHQL_RESPONSE)]:
        return GRAPHQL_RESPONSE
    return JSON


def error_response(
    status: int,
    message: str,
    code: ErrorCode,
    *,
    extensions: Mapping[str, Any] | None = None,
    **headers: str,
) -> Response:
    """A refusal as a GraphQL error body; ``extensions`` adds to the code (e.g. ``reason``)."""
    body = {
        "errors": [{"message": message, "extensions": {**(extensions or {}), "code": code.value}}]
    }
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def plain_operation(
    request: Request, max_json_depth: int
) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """Query, variables and operation name of a GET or JSON POST that Strawberry would take
    as they are; None for anything else (which Strawberry answers, or refuses, itself),
    including JSON nested deeper than ``max_json_depth`` allows."""
    data: Any
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != JSON:
            return None
        try:
            data = decode_bounded(await request.body(), max_json_depth)
        except orjson.JSONDecodeError:
            return None
    elif request.method == "GET":
        data = dict(request.query_params)
        try:
            for key in ("variables", "extensions"):
                if key in data:
                    data[key] = decode_bounded(data[key], max_json_depth)
        except orjson.JSONDecodeError:
            return None
    else:
        return None
    if not isinstance(data, dict):
        return None
    query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
    if (
        not isinstance(query, str)
        or not isinstance(variables, dict | None)
        or not isinstance(name, str | None)
        or not isinstance(data.get("extensions"), dict | None)
        or variables_too_deep(variables, max_json_depth)
    ):
        return None
    return query, variables, name


def is_request_error(result: ExecutionResult) -> bool:
    errors = result.errors or []
    return (
        result.data is None
        and bool(errors)
        and all(not error.path and error_code(error) in REQUEST_ERRORS for error in errors)
    )


class _HeldSchema:
    """The schema as a socket's operations reach it: each held to the caller as they are now."""

    def __init__(self, schema: Any, context: Context) -> None:
        self._schema = schema
        self._context = context

    async def stream(self, query: str | None, **kwargs: Any) -> Any:
        results = await self._schema.stream(query, **kwargs)
        name = kwargs.get("operation_name")
        subscription = is_subscription(query, name, self._context.settings)
        return guarded(results, self._context.auth, subscription=subscription)


class _NamedRefusal(AsyncWebSocketAdapter):
    """The socket as Strawberry's handler drives it, except that refused credentials close
    with 4403 and their ``extensions.reason`` (``TOKEN_EXPIRED``) instead of "Forbidden", so
    a client can tell a token to refresh from one that will never work."""

    def __init__(self, socket: AsyncWebSocketAdapter, auth: RequestAuth) -> None:
        super().__init__(socket.view)
        self._socket = socket
        self._auth = auth

    def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        return self._socket.iter_json(ignore_parsing_errors=ignore_parsing_errors)

    async def send_json(self, message: Mapping[str, object]) -> None:
        await self._socket.send_json(message)

    async def close(self, code: int, reason: str) -> None:
        refusal = self._auth.refusal()
        if code == 4403 and refusal is not None:
            reason = str(refusal.extensions.get("reason", reason))
        await self._socket.close(code, reason)


class LiveTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws whose socket closes (4403) the moment its session ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = cast(Any, _HeldSchema(self.schema, self.context))
        self.websocket = _NamedRefusal(self.websocket, self.context.auth)
        self._closing: asyncio.Future[None] | None = None
        if self.context.auth.holder is not None:
            self.context.auth.holder.on_end = self._session_ended

    def _session_ended(self) -> None:
        """Cancel the socket's operations and close it; an operation of this socket that
        ended the session itself (logout, a password change) still sends its answer first."""
        current = asyncio.current_task()
        ending = None
        for operation_id, operation in list(self.operations.items()):
            if operation.task is not None and operation.task is current:
                ending = operation.task
                continue
            self.operations.pop(operation_id)
            if operation.task is not None:
                operation.task.cancel()
        if ending is None:
            self._close_soon()
        else:
            ending.add_done_callback(lambda _: self._close_soon())

    def _close_soon(self) -> None:
        self._closing = asyncio.ensure_future(self._close_forbidden())

    async def _close_forbidden(self) -> None:
        with suppress(Exception):  # already closed, or the client is gone
            await self.websocket.close(code=4403, reason="session ended")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        holder = self.context.auth.holder
        if holder is not None and holder.ended is not None:
            await self._close_forbidden()
            return
        persisted: PersistedQueries | None = getattr(self.view, "persisted", None)
        payload: Any = message.get("payload")
        if persisted is not None and isinstance(payload, dict):  # as over HTTP
            outcome = await persisted.document(payload, partial(is_admin, self.context.auth))
            if isinstance(outcome, Refusal):
                error = {"id": message["id"], "type": "error", "payload": [outcome.error()]}
                await self.send_message(cast(Any, error))
                return
            message = {**message, "payload": cast(Any, outcome)}
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            self.context.auth.close()


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context, limits and HTTP semantics."""

    graphql_transport_ws_handler_class = LiveTransportWS

    def __init__(
        self,
        schema: strawberry.Schema,
        settings: Settings,
        engine: AsyncEngine,
        accounts: Accounts,
        crawls: CrawlLauncher,
        ml: PriceService,
        live: LiveSessions | None = None,
        persisted: PersistedQueries | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
                MULTIPART_SUBSCRIPTION_PROTOCOL,
            ),
        )
        self.settings = settings
        self.engine = engine
        self.accounts = accounts
        self.crawls = crawls
        self.ml = ml
        self.origins = OriginPolicy.of(settings)
        self.live = live
        self.persisted = persisted
        self.compiled: CompiledQueries | None = None
        if settings.compiled_queries:
            self.compiled = compiled_queries(schema, settings, accounts.blocking)
        self.cache = HttpCache(settings, accounts.blocking, schema._schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        try:
            response = await self._respond(request)
        except MethodNotAllowed as refused:
            response = error_response(
                405, refused.message, ErrorCode.BAD_USER_INPUT, Allow=refused.allow
            )
        except HTTPException as refused:
            if refused.status_code == 405:
                response = error_response(
                    405, refused.reason, ErrorCode.BAD_USER_INPUT, Allow="GET, POST"
                )
            else:
                response = error_response(
                    refused.status_code, refused.reason, ErrorCode.BAD_USER_INPUT
                )
        response.headers.setdefault("Cache-Control", NO_STORE)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.settings.max_request_bytes
        ):
            return error_response(
                413,
                f"the request body is larger than {self.settings.max_request_bytes} bytes",
                ErrorCode.QUERY_TOO_COMPLEX,
            )
        if self.persisted is not None:  # a hash becomes its document, or a refusal
            resolved = await self.persisted.resolve(request, admin_check(self.accounts, request))
            if isinstance(resolved, Response):
                return self.cache.mark(resolved, None, succeeded=False)
            request = resolved
        accept = request.headers.get("accept")
        streamed = accept is not None and any(stream in accept.lower() for stream in STREAMS)
        operation = (
            None if streamed else await plain_operation(request, self.settings.max_json_depth)
        )
        tagged = await self.cache.tag(request, operation, negotiate(accept))
        if tagged is not None and tagged.matches(request.headers.get("if-none-match")):
            return tagged.not_modified()
        request.state.succeeded = False  # until an executor says otherwise
        response = None
        if self.compiled is not None and operation is not None:
            response = await self._compiled_response(request, self.compiled, operation)
        if response is None:
            response = await self.run(request)
        return self.cache.mark(response, tagged, request.state.succeeded)

    async def _compiled_response(
        self,
        request: Request,
        compiled: CompiledQueries,
        operation: tuple[str, dict[str, Any] | None, str | None],
    ) -> Response | None:
        """The compiled path's answer, or None to let Strawberry's executor answer."""
        query, variables, operation_name = operation
        auth = RequestAuth(self.accounts, lambda: request.headers.get("authorization"))
        body = await compiled.execute(query, operation_name, variables, auth)
        if body is None:
            return None
        request.state.succeeded = "errors" not in body
        return Response(orjson.dumps(body), media_type=negotiate(request.headers.get("accept")))

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if isinstance(request, Request):
            request.state.sub_response = response
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            engine=self.engine,
            request_id=request_id_of(request.scope),
            accounts=self.accounts,
            crawls=self.crawls,
            ml=self.ml,
            catalog=CatalogLoaders(self.engine),
            live=self.live,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Credentials in ``connection_init`` are checked now: a bad token closes with 4403."""
        try:
            await context.auth.viewer()
        except BookQLError:
            raise ConnectionRejectionError({"message": "invalid credentials"}) from None
        return UnsetType()  # acknowledge without a payload

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """A page on another origin may open a socket where CORS lets it call over HTTP."""
        return self.origins.allows(origin)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_page())

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """A streamed operation (SSE, multipart) is held to the caller as they are now."""
        data = kwargs["request_data"]
        if not isinstance(data, GraphQLRequestData) or data.protocol == "http":
            return await super().execute_operation(*args, **kwargs)
        context: Context = kwargs["context"]
        context.auth.go_live()
        results = await super().execute_operation(*args, **kwargs)
        subscription = is_subscription(data.query, data.operation_name, self.settings)
        return guarded(cast(Any, results), context.auth, subscription=subscription, release=True)

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as refused:
            if isinstance(refused.__cause__, InvalidOperationTypeError):
                raise MethodNotAllowed(refused.reason, allow="POST") from None
            raise

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = await super().process_result(request, result)
        request.state.succeeded = not result.errors
        media_type = negotiate(request.headers.get("accept"))
        sub_response = request.state.sub_response
        sub_response.headers["content-type"] = media_type
        if media_type == GRAPHQL_RESPONSE and is_request_error(result):
            sub_response.status_code = 400
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.headers.get("content-type", JSON)
        response = Response(
            orjson.dumps(response_data),
            status_code=sub_response.status_code or 200,
            media_type=media_type,
        )
        response.headers.raw.extend(
            (name, value) for name, value in sub_response.headers.raw if name != b"content-type"
        )
        return response

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses a lone surrogate ("\ud800"), which json.loads lets through: no column
        # can store one and no JSON encoder can echo it back in an error message.
        # Nesting is bounded here, before anything recursive walks the value (nesting.py).
        return decode_bounded(data, self.settings.max_json_depth)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except NestedTooDeeply as exc:
            raise HTTPException(400, exc.msg) from None
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"the JSON could not be read: {exc}") from None

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws clients expect text frames.
        return orjson.dumps(data).decode()
