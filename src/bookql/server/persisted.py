"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

A request naming its document by hash (``extensions.persistedQuery.sha256Hash``, or the
GraphQL over HTTP ``documentId``) is rewritten here, before either executor sees it, into the
request it stands for: both executors, GET and POST, stay unaware of persisted queries, and a
hash-only GET is a short URL a CDN can cache. An unknown hash is ``PERSISTED_QUERY_NOT_FOUND``
(status 200, never cached), which Apollo's ``PersistedQueryLink`` answers by sending the query
with its hash; the hash is checked against the text, and the text is registered once it
parses and passes validation and the size, token, depth and alias limits.

Registered queries live in Redis when it is configured (shared by workers, with a TTL and a
cap), else in a per-process LRU bounded by count and bytes. Trusted documents are a manifest
read at start; with ``BOOKQL_TRUSTED_DOCUMENTS_ONLY`` every other document is refused
(administrators excepted) and nothing is registered.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson
from graphql import GraphQLError, GraphQLSchema, parse, specified_rules, validate
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from bookql.accounts.auth import RequestAuth
from bookql.accounts.service import Accounts
from bookql.core.config import Settings
from bookql.core.errors import BookQLError, ConfigError, ErrorCode, ErrorReason
from bookql.graphql.limits import Limits, shape_rule
from bookql.graphql.metrics import record_operation
from bookql.graphql.nesting import decode_bounded

log = logging.getLogger("bookql.persisted")

JSON = "application/json"
APQ_VERSION = 1
SHA256 = re.compile(r"[0-9a-f]{64}")
KEY_PREFIX = "bookql:apq:"
INDEX_KEY = "bookql:apq-index"

# Store and index by last use; forget index entries past the TTL (their keys have expired),
# then drop the least recently used beyond the cap.
_PUT = """
local now = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do redis.call('DEL', ARGV[6] .. popped[i]) end
end
return 1
"""


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class QueryStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, query: str) -> None: ...


class LocalStore:
    """Registered queries in this process: least recently used first out, bounded by count
    and by the bytes of their text."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._queries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._queries)

    async def get(self, key: str) -> str | None:
        query = self._queries.get(key)
        if query is not None:
            self._queries.move_to_end(key)
        return query

    async def put(self, key: str, query: str) -> None:
        cost = len(query.encode())
        if cost > self.max_bytes:
            return
        old = self._queries.pop(key, None)
        if old is not None:
            self.size -= len(old.encode())
        self._queries[key] = query
        self.size += cost
        while len(self._queries) > self.max_entries or self.size > self.max_bytes:
            _, dropped = self._queries.popitem(last=False)
            self.size -= len(dropped.encode())


class RedisStore:
    """Registered queries in Redis, shared by every worker: each expires unless used within
    the TTL, and beyond the cap the least recently used go. Redis being down only
    costs a round trip: a miss makes the client send the query again."""

    def __init__(self, redis: Redis, ttl_seconds: int, max_entries: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._put = redis.register_script(_PUT)

    async def get(self, key: str) -> str | None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.getex(KEY_PREFIX + key, ex=self.ttl)
                pipe.zadd(INDEX_KEY, {key: time.time()}, xx=True)
                value, _ = await pipe.execute()
        except RedisError as exc:
            log.warning("persisted query lookup failed: %s", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, query: str) -> None:
        args: list[str | int | float] = [
            query,
            self.ttl,
            time.time(),
            key,
            self.max_entries,
            KEY_PREFIX,
        ]
        try:
            await self._put(keys=[INDEX_KEY, KEY_PREFIX + key], args=args)
        except RedisError as exc:
            log.warning("persisted query registration failed: %s", exc)


@dataclass(frozen=True)
class TrustedDocuments:
    """The manifest: documents by the id the client sends, and by their sha256."""

    by_id: Mapping[str, str]
    by_hash: Mapping[str, str]

    @classmethod
    def empty(cls) -> TrustedDocuments:
        return cls({}, {})

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        """A manifest as GraphQL Code Generator's client preset (``{"sha256 hash": text}``),
        Relay (``{"id": text}``) or Apollo's generator (``{"format":
        "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}``) write it.
        An id of 64 hex digits must be its text's sha256; other ids are taken as they are."""
        try:
            raw = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"BOOKQL_TRUSTED_DOCUMENTS: cannot read {path}: {exc}") from None
        if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
            operations = raw.get("operations")
            if not isinstance(operations, list):
                raise ConfigError(f"BOOKQL_TRUSTED_DOCUMENTS: {path} has no operations list")
            raw = {op.get("id"): op.get("body") for op in operations if isinstance(op, dict)}
        if not isinstance(raw, dict) or not all(
            isinstance(key, str) and isinstance(text, str) for key, text in raw.items()
        ):
            raise ConfigError(
                f"BOOKQL_TRUSTED_DOCUMENTS: {path} must map each id to a document's text"
            )
        for key, text in raw.items():
            if SHA256.fullmatch(key.lower()) and sha256_of(text) != key.lower():
                raise ConfigError(
                    f"BOOKQL_TRUSTED_DOCUMENTS: {path}: {key} is not the sha256 of its document"
                )
        return cls(dict(raw), {sha256_of(text): text for text in raw.values()})

    def including(self, texts: Iterable[str]) -> TrustedDocuments:
        """These documents as well, each known by its sha256."""
        extra = {sha256_of(text): text for text in texts}
        return TrustedDocuments({**extra, **self.by_id}, {**self.by_hash, **extra})

    def find(self, key: str) -> str | None:
        return self.by_id.get(key) or self.by_hash.get(key.lower())

    def __contains__(self, query: str) -> bool:
        return sha256_of(query) in self.by_hash


@dataclass(frozen=True)
class Refusal:
    """Why a persisted-query request is not run: a GraphQL error, over HTTP or a socket."""

    message: str
    code: ErrorCode
    status: int = 200
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, error: BookQLError) -> Refusal:
        return cls(error.message, error.code, extensions=error.extensions)

    def error(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": {**self.extensions, "code": self.code.value}}

    def response(self) -> Response:
        """The refusal as a body that no cache keeps (a hash unknown now may be known soon)."""
        return Response(
            orjson.dumps({"errors": [self.error()]}),
            status_code=self.status,
            media_type=JSON,
            headers={"Cache-Control": "no-store"},
        )


NOT_FOUND = Refusal("PersistedQueryNotFound", ErrorCode.PERSISTED_QUERY_NOT_FOUND)
UNTRUSTED = Refusal(
    "only the server's trusted documents may be run: send a known document's hash",
    ErrorCode.FORBIDDEN,
    extensions={"reason": ErrorReason.TRUSTED_DOCUMENTS_ONLY.value},
)
HASH_MISMATCH = Refusal(
    "provided sha does not match query",
    ErrorCode.BAD_USER_INPUT,
    status=400,
    extensions={"reason": ErrorReason.PERSISTED_QUERY_HASH_MISMATCH.value},
)
BAD_HASH = Refusal(
    "extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits",
    ErrorCode.BAD_USER_INPUT,
    status=400,
)


def not_supported(detail: str) -> Refusal:
    # Apollo's link recognises this message and sends full queries from then on.
    return Refusal(
        "PersistedQueryNotSupported",
        ErrorCode.BAD_USER_INPUT,
        extensions={"reason": ErrorReason.PERSISTED_QUERY_NOT_SUPPORTED.value, "detail": detail},
    )


IsAdmin = Callable[[], Awaitable[bool]]


def rewritten(request: Request, data: dict[str, Any]) -> Request:
    """The same request carrying ``data`` (the document filled in) instead of its own."""
    scope = dict(request.scope)
    if request.method == "GET":
        params = {
            key: value if isinstance(value, str) else orjson.dumps(value).decode()
            for key, value in data.items()
            if value is not None
        }
        scope["query_string"] = urlencode(params).encode()
        return Request(scope, receive=request.receive)
    body = orjson.dumps(data)
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    scope["headers"] = [*headers, (b"content-length", str(len(body)).encode())]

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive=receive)


class PersistedQueries:
    """Resolves hashes to documents, registers new ones, and enforces trusted documents."""

    def __init__(
        self,
        settings: Settings,
        schema: GraphQLSchema,
        store: QueryStore,
        trusted: TrustedDocuments,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.store = store
        self.trusted = trusted
        self.enabled = settings.persisted_queries
        self.trusted_only = settings.trusted_documents_only
        self.limits = Limits.of(settings)
        self.rules = (*specified_rules, shape_rule(self.limits))

    @classmethod
    def of(
        cls,
        settings: Settings,
        schema: GraphQLSchema,
        redis: Redis | None,
        builtin: Iterable[str] = (),
    ) -> PersistedQueries:
        """``builtin``: documents always trusted besides the manifest (the console's)."""
        if settings.trusted_documents_only and settings.trusted_documents is None:
            raise ConfigError(
                "BOOKQL_TRUSTED_DOCUMENTS_ONLY needs a manifest: set BOOKQL_TRUSTED_DOCUMENTS"
            )
        trusted = (
            TrustedDocuments.load(settings.trusted_documents)
            if settings.trusted_documents is not None
            else TrustedDocuments.empty()
        ).including(builtin)
        store: QueryStore = (
            RedisStore(
                redis,
                settings.persisted_queries_ttl_seconds,
                settings.persisted_queries_max_entries,
            )
            if redis is not None
            else LocalStore(
                settings.persisted_queries_max_entries, settings.persisted_queries_max_bytes
            )
        )
        return cls(settings, schema, store, trusted)

    def admissible(self, query: str) -> bool:
        """Whether a query may be registered: it parses, and passes validation and the size,
        token, depth and alias limits. (Cost depends on the variables: checked every run.)"""
        if len(query.encode()) > self.limits.max_bytes:
            return False
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError:
            return False
        return not validate(self.schema, document, self.rules)

    async def resolve(self, request: Request, is_admin: IsAdmin) -> Request | Response:
        """The request to execute (``request`` itself, or one with its document filled in),
        or the refusal to send."""
        data = await self._payload(request)
        if data is None:
            # Not JSON, or not readable: in trusted-only mode, too much to let through.
            if self.trusted_only and request.method == "POST":
                refused = await self._untrusted(is_admin)
                if refused is not None:
                    return refused.response()
            return request
        outcome = await self.document(data, is_admin)
        if isinstance(outcome, Refusal):
            return outcome.response()
        return request if outcome is data else rewritten(request, outcome)

    async def document(self, data: dict[str, Any], is_admin: IsAdmin) -> dict[str, Any] | Refusal:
        """``data`` (an operation's parameters) as they are, or with the document its hash
        or id stands for, or the refusal (counted as an operation that never ran).
        ``is_admin`` is awaited only in trusted-only mode, for a document outside the
        manifest; it may raise the caller's credential error."""
        outcome = await self._document(data, is_admin)
        if isinstance(outcome, Refusal):
            name = data.get("operationName")
            record_operation(name if isinstance(name, str) else None, "unknown", [outcome.code])
        return outcome

    async def _document(self, data: dict[str, Any], is_admin: IsAdmin) -> dict[str, Any] | Refusal:
        query = data.get("query")
        extensions = data.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        document_id = data.get("documentId")
        if persisted is not None:
            return await self._apq(data, query, persisted, is_admin)
        if isinstance(document_id, str) and query is None:
            found = self.trusted.find(document_id.removeprefix("sha256:"))
            if found is None:
                return NOT_FOUND
            return {**{k: v for k, v in data.items() if k != "documentId"}, "query": found}
        if self.trusted_only and isinstance(query, str) and query not in self.trusted:
            return await self._untrusted(is_admin) or data
        return data

    async def _apq(
        self, data: dict[str, Any], query: Any, persisted: Any, is_admin: IsAdmin
    ) -> dict[str, Any] | Refusal:
        if not isinstance(persisted, dict) or persisted.get("version") != APQ_VERSION:
            return not_supported(f"only persisted query version {APQ_VERSION} is supported")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            return BAD_HASH
        if query is None:
            found = self.trusted.find(digest)
            if found is None and self.enabled and not self.trusted_only:
                found = await self.store.get(digest)
            if found is None:
                if not self.enabled and self.settings.trusted_documents is None:
                    return not_supported("persisted queries are turned off")
                return NOT_FOUND
            return {**data, "query": found}
        if not isinstance(query, str):
            return data  # the executor refuses it
        if sha256_of(query) != digest:
            return HASH_MISMATCH
        if digest in self.trusted.by_hash:
            return data
        if self.trusted_only:
            return await self._untrusted(is_admin) or data
        if self.enabled and self.admissible(query):
            await self.store.put(digest, query)
        return data

    async def _untrusted(self, is_admin: IsAdmin) -> Refusal | None:
        """None for an administrator (their document goes ahead as sent); else the refusal."""
        try:
            return None if await is_admin() else UNTRUSTED
        except BookQLError as exc:
            return Refusal.of(exc)

    async def _payload(self, request: Request) -> dict[str, Any] | None:
        """The GraphQL parameters of a GET or a JSON POST; None for anything else (left to
        the executor, which refuses what it cannot read)."""
        depth = self.settings.max_json_depth
        data: Any
        try:
            if request.method == "GET":
                data = dict(request.query_params)
                if "extensions" in data:
                    data["extensions"] = decode_bounded(data["extensions"], depth)
            elif request.method == "POST":
                content_type = request.headers.get("content-type", "")
                if content_type.split(";", 1)[0].strip().lower() != JSON:
                    return None
                data = decode_bounded(await request.body(), depth)
            else:
                return None
        except (orjson.JSONDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("extensions"), dict | None):
            return None
        return data


def admin_check(accounts: Accounts, request: Request) -> IsAdmin:
    """Whether the request's caller is an administrator (their credentials checked once)."""
    return partial(is_admin, RequestAuth(accounts, lambda: request.headers.get("authorization")))


async def is_admin(auth: RequestAuth) -> bool:
    viewer = await auth.viewer()
    return viewer is not None and viewer.is_admin
