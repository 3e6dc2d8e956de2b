"""Limits on WebSockets, as an ASGI layer in front of Strawberry's handler.

* Connections are counted at the upgrade: past ``ws_max_connections`` in this process the
  handshake is answered 503, past ``ws_max_connections_per_address`` from one client address
  429 (a GraphQL error body with a code either way; a server without the ASGI denial
  extension closes with 1013 instead).
* Client messages are read as they pass: a ``subscribe`` beyond ``ws_max_subscriptions``
  operations running on the socket, or with variables nested deeper than ``max_json_depth``,
  is answered with an ``error`` message carrying a code and never reaches Strawberry. An
  operation ends with the server's ``complete`` or ``error``, or the client's ``complete``.
* A socket with no operation running and no message from its client but pings for
  ``ws_idle_timeout_seconds`` is closed (1000). Strawberry's own ``connection_init``
  timeout still closes a socket that never initialises.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookql.core.errors import ErrorCode
from bookql.graphql.nesting import ENVELOPE, json_depth, variables_message, variables_too_deep

TRY_AGAIN_LATER = 1013
IDLE_CLOSE = 1000
RETRY_AFTER_SECONDS = 5
# Pings keep a connection open, they are not activity.
KEEPALIVE = frozenset({"ping", "pong"})


@dataclass(frozen=True)
class SocketLimitSettings:
    max_connections: int
    max_per_address: int
    max_operations: int
    idle_seconds: float
    max_json_depth: int


class SocketLimits:
    def __init__(self, app: ASGIApp, limits: SocketLimitSettings) -> None:
        self.app = app
        self.limits = limits
        self.open = 0
        self.by_address: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        if self.open >= self.limits.max_connections:
            message = f"this server holds {self.limits.max_connections} WebSockets already"
            await _deny(scope, receive, send, 503, ErrorCode.SERVICE_UNAVAILABLE, message)
            return
        if self.by_address[address] >= self.limits.max_per_address:
            message = f"{self.limits.max_per_address} WebSockets from your address are open"
            await _deny(scope, receive, send, 429, ErrorCode.RATE_LIMITED, message)
            return
        self.open += 1
        self.by_address[address] += 1
        try:
            await _Socket(self.limits, receive, send).run(self.app, scope)
        finally:
            self.open -= 1
            self.by_address[address] -= 1
            if self.by_address[address] <= 0:
                del self.by_address[address]


class _Socket:
    """One connection: its running operations, its last activity, its idle watchdog."""

    def __init__(self, limits: SocketLimitSettings, receive: Receive, send: Send) -> None:
        self.limits = limits
        self._receive = receive
        self._send = send
        self.operations: set[str] = set()
        self.last_active = time.monotonic()
        self.closed = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        watchdog: asyncio.Task[None] | None = None

        async def send(message: Message) -> None:
            nonlocal watchdog
            if self.closed:
                return  # the watchdog closed the socket: Strawberry is winding down
            if message["type"] == "websocket.accept" and watchdog is None:
                watchdog = asyncio.create_task(self._watch())
            elif message["type"] == "websocket.send":
                self._sent(message.get("text"))
            elif message["type"] == "websocket.close":
                self.closed = True
            await self._send(message)

        try:
            await app(scope, self.receive, send)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def receive(self) -> Message:
        while True:
            message = await self._receive()
            if message["type"] != "websocket.receive" or message.get("text") is None:
                return message
            refusal = self._received(message["text"])
            if refusal is None:
                return message
            await self._send({"type": "websocket.send", "text": orjson.dumps(refusal).decode()})

    def _received(self, text: str) -> dict[str, Any] | None:
        """Notes a client message; the ``error`` message refusing it, if it is refused."""
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None  # Strawberry closes the socket for it
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind in KEEPALIVE:
            return None
        self.last_active = time.monotonic()
        operation = frame.get("id") if isinstance(frame, dict) else None
        if not isinstance(operation, str):
            return None
        if kind == "complete":
            self.operations.discard(operation)
        if kind != "subscribe":
            return None
        payload = frame.get("payload")
        depth = self.limits.max_json_depth
        if json_depth(frame, stop=depth + ENVELOPE) > depth + ENVELOPE or (
            isinstance(payload, dict) and variables_too_deep(payload.get("variables"), depth)
        ):
            return _error(operation, variables_message(depth), ErrorCode.BAD_USER_INPUT, depth)
        if operation not in self.operations and len(self.operations) >= self.limits.max_operations:
            message = (
                f"{self.limits.max_operations} operations are running on this socket, the most "
                "allowed: complete one first"
            )
            return _error(
                operation,
                message,
                ErrorCode.RATE_LIMITED,
                self.limits.max_operations,
                retryAfter=RETRY_AFTER_SECONDS,
            )
        self.operations.add(operation)
        return None

    def _sent(self, text: str | None) -> None:
        """Notes an operation the server ends (its ``complete`` or ``error``)."""
        if text is None or '"type":"next"' in text[:512]:
            return  # a result (possibly megabytes): nothing ends here
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if isinstance(frame, dict) and frame.get("type") in ("complete", "error"):
            self.operations.discard(frame.get("id"))
            self.last_active = time.monotonic()

    async def _watch(self) -> None:
        idle = self.limits.idle_seconds
        while not self.closed:
            left = self.last_active + idle - time.monotonic()
            if self.operations:
                left = idle  # busy: look again later
            elif left <= 0:
                self.closed = True
                reason = f"idle for {idle:g} s"
                await self._send({"type": "websocket.close", "code": IDLE_CLOSE, "reason": reason})
                return
            await asyncio.sleep(left)


def _error(
    operation: str, message: str, code: ErrorCode, limit: int, **extensions: Any
) -> dict[str, Any]:
    extensions = {"code": code.value, "limit": limit, **extensions}
    return {
        "id": operation,
        "type": "error",
        "payload": [{"message": message, "extensions": extensions}],
    }


async def _deny(
    scope: Scope, receive: Receive, send: Send, status: int, code: ErrorCode, message: str
) -> None:
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": message})
        return
    extensions = {"code": code.value, "retryAfter": RETRY_AFTER_SECONDS}
    body = orjson.dumps({"errors": [{"message": message, "extensions": extensions}]})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
