"""Around every request: its id (echoed in ``X-Request-ID``, bound to each log line written
while it runs), its access-log line and HTTP metrics, and the limits on its size."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookql.core.metrics import HTTP_REQUESTS, HTTP_SECONDS

access_log = logging.getLogger("bookql.access")

_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


class RequestIdMiddleware:
    """Keeps a caller's well-formed ``X-Request-ID``; otherwise makes one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-request-id"
            ),
            "",
        )
        request_id = given if _ACCEPTABLE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            header = (b"x-request-id", request_id.encode("latin-1"))

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), header]
                await send(message)

            await self.app(scope, receive, send_with_id)


class RequestLog:
    """One log line and one sample of the HTTP metrics per request, when its body is done.

    Routes are labelled by the known paths only (anything else is ``other``), so a scan of
    random URLs cannot grow the metrics without bound.
    """

    def __init__(self, app: ASGIApp, routes: Collection[str], log_requests: bool = True) -> None:
        self.app = app
        self.routes = routes
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"]
            route = path if path in self.routes else "other"
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(seconds)
            if self.log_requests:
                self._log(scope, status, seconds)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client[0] if client else None,
        }
        access_log.info("request", extra=fields)


class SizeLimits:
    """Refuses headers over ``max_header_bytes`` (431) and a body over ``max_body_bytes``
    (413), however the body is sent.

    uvicorn's default parser sets no limit on headers, so they are measured here. A declared
    ``Content-Length`` is checked before anything is read; a chunked body is counted as it
    arrives and cut off at the limit, so no body is held whole beyond it.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1009})
            else:
                message = f"the request headers are larger than {self.max_header_bytes} bytes"
                await _refuse(send, 431, message)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is larger than {self.max_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, too_large)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, too_large)


async def _refuse(send: Send, status: int, message: str) -> None:
    """The same error body as GraphQL's, and the connection closed after it."""
    body = orjson.dumps(
        {"errors": [{"message": message, "extensions": {"code": "QUERY_TOO_COMPLEX"}}]}
    )
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers.append((b"cache-control", b"no-store"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """Raised from ``receive`` to stop whoever is reading an oversized body."""
