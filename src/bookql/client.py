"""A small synchronous client for notebooks: sign in, run GraphQL, fetch the training data.

A session lasts as long as its refresh token: the access token is renewed shortly before it
expires and, should the server still find it expired (``extensions.reason: TOKEN_EXPIRED``),
once more before the call is sent again. Renewals are one at a time across threads, since a
refresh token works once and presenting it twice ends the session. Tokens are never part of
the client's ``repr``, its errors or its log lines.

``training_frame()`` reads the ``trainingData`` subscription over HTTP server-sent events
(graphql-sse, "distinct connections" mode) and builds one DataFrame column by column. A
dropped connection is resumed from the last batch's cursor, so a long download over a
flaky network still delivers every row exactly once.

    api = BookQL("http://127.0.0.1:8000")
    api.login("alice", "a long password")
    frame = api.training_frame()
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import pandas as pd

SESSION = "accessToken refreshToken expiresIn user { id username role }"
LOGIN = f"""mutation($u: String!, $p: String!) {{
  login(input: {{username: $u, password: $p}}) {{ {SESSION} }}
}}"""
REFRESH = f"""mutation($t: String!) {{
  refresh(input: {{refreshToken: $t}}) {{ {SESSION} }}
}}"""
LOGOUT = """mutation($t: String!) { logout(input: {refreshToken: $t}) { ok } }"""
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (the server's extensions.reason, not a secret)
# Renew this long before the access token expires (at most half its lifetime before).
REFRESH_MARGIN_SECONDS = 60.0
TRAINING_DATA = """subscription($n: Int!, $a: String) {
  trainingData(batchSize: $n, after: $a) { columns dtypes rowCount jsonl cursor }
}"""
# Worth another try: the server is busy (all export slots taken) or a proxy hiccuped.
RETRYABLE_CODES = frozenset({"SERVICE_UNAVAILABLE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
log = logging.getLogger("bookql.client")
T = TypeVar("T")


class BookQLError(Exception):
    """An error the server reported: the first error's ``code`` and ``message``, and all
    of ``errors`` as sent (``code`` is None when the server gave none, e.g. a proxy page)."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.message = message
        self.code = code
        self.errors = errors or []
        self.status = status

    @property
    def reason(self) -> str | None:
        """The first error's ``extensions.reason`` (``TOKEN_EXPIRED``), if it has one."""
        first = self.errors[0] if self.errors else {}
        reason = (first.get("extensions") or {}).get("reason")
        return reason if isinstance(reason, str) else None

    @property
    def token_expired(self) -> bool:
        return self.code == "UNAUTHENTICATED" and self.reason == TOKEN_EXPIRED

    @classmethod
    def from_errors(cls, errors: list[dict[str, Any]], status: int | None = None) -> BookQLError:
        first = errors[0] if errors else {}
        code = (first.get("extensions") or {}).get("code")
        message = str(first.get("message", "unknown error"))
        return cls(message, code if isinstance(code, str) else None, errors, status)

    @classmethod
    def from_response(cls, response: httpx.Response) -> BookQLError:
        """The error in a failed response's body, or its status when the body has none."""
        try:
            errors = orjson.loads(response.content).get("errors")
        except (orjson.JSONDecodeError, AttributeError):
            errors = None
        if isinstance(errors, list) and errors:
            return cls.from_errors(errors, response.status_code)
        reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        return cls(reason, None, [], response.status_code)

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES or self.status in RETRYABLE_STATUSES


class SessionEnded(BookQLError):
    """The session cannot be renewed (refresh token expired, revoked, already used, or the
    account changed): sign in again with ``login``."""


class _Incomplete(Exception):
    """The event stream ended without ``complete``: a cut connection, to be resumed."""


class BookQL:
    """A signed-in (or anonymous) session with one bookql server.

    ``token`` and ``refresh_token`` resume a session signed in elsewhere (without a refresh
    token the session ends with its access token); ``login`` starts one. ``refresh_margin``
    is how long before expiry the access token is renewed. ``transport`` replaces the network
    and ``clock`` the monotonic clock (tests); ``retries`` and ``retry_delay`` bound how a
    broken training-data stream is resumed: up to ``retries`` failures in a row, waiting
    ``retry_delay`` seconds and doubling, before giving up.

    One client may be shared by threads: they renew the session once between them.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 5,
        retry_delay: float = 0.5,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.retry_delay = retry_delay
        self.refresh_margin = refresh_margin
        self.user: dict[str, Any] | None = None  # who signed in: id, username, role
        self.renewals = 0  # how often the session was renewed
        self._clock = clock
        self._lock = threading.Lock()  # held while renewing: one refresh at a time
        self._access = token
        self._refresh = refresh_token
        self._renew_at: float | None = None  # on ``clock``; None: the expiry is unknown
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        if self.user is not None:
            state = f"signed in as {self.user.get('username')!r}"
        else:
            state = "with an access token" if self._access else "anonymous"
        return f"<BookQL {self.url} {state}>"

    @property
    def token(self) -> str | None:
        """The access token sent now (renewed as it expires); read it, do not print it."""
        return self._access

    @token.setter
    def token(self, token: str | None) -> None:
        """Use another access token; its expiry is unknown, so it is renewed only when the
        server says it has expired."""
        with self._lock:
            self._access, self._renew_at = token, None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BookQL:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _headers(accept: str, token: str | None) -> dict[str, str]:
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    # -- the session ----------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Sign in; later calls send the access token and renew it as it expires. Returns
        the user (``id``, ``username``, ``role``), never a token."""
        started = self._clock()
        data = self._post(LOGIN, {"u": username, "p": password}, None)
        with self._lock:
            self._keep(data["login"], started)
        return dict(data["login"]["user"])

    def logout(self) -> None:
        """End the session on the server (its access tokens stop working at once), and
        forget its tokens here. A session that had already ended is simply forgotten."""
        with self._lock:
            refresh, self._access, self._refresh, self._renew_at = self._refresh, None, None, None
            self.user = None
        if refresh is None:
            return
        try:
            self._post(LOGOUT, {"t": refresh}, None)
        except BookQLError as error:
            if error.code != "UNAUTHENTICATED":
                raise

    def _keep(self, session: dict[str, Any], started: float) -> None:
        """A new session's tokens and when to renew them (the lock held)."""
        lifetime = float(session["expiresIn"])
        self._access = session["accessToken"]
        self._refresh = session["refreshToken"]
        self._renew_at = started + max(lifetime - self.refresh_margin, lifetime / 2)
        self.user = dict(session["user"])

    def _current_token(self) -> str | None:
        """The access token to send, renewed first if it is about to expire."""
        if self._due():
            with self._lock:
                if self._due():  # not renewed by another thread meanwhile
                    self._renew()
        return self._access

    def _due(self) -> bool:
        return (
            self._refresh is not None
            and self._renew_at is not None
            and self._clock() >= self._renew_at
        )

    def _renewed(self, used: str | None) -> str:
        """The access token to use now that the server found ``used`` expired: renewed here,
        unless another thread already has. Never None: a client whose session ended must
        not go on as anonymous."""
        with self._lock:
            if self._access == used and self._refresh is not None:
                self._renew()
            if self._access is None:
                raise SessionEnded("the session has ended: sign in again with login()")
            return self._access

    def _renew(self) -> None:
        """Trade the refresh token for new tokens (the lock held: a refresh token works
        once, and presenting it again would end the session)."""
        assert self._refresh is not None
        started = self._clock()
        try:
            data = self._post(REFRESH, {"t": self._refresh}, None)
        except BookQLError as error:
            if error.code != "UNAUTHENTICATED":
                raise  # a busy or unreachable server: the session may still be renewed later
            self._access, self._refresh, self._renew_at, self.user = None, None, None, None
            raise SessionEnded(
                f"the session has ended and cannot be renewed ({error.message}): "
                "sign in again with login()",
                error.code,
                error.errors,
                error.status,
            ) from None
        self._keep(data["refresh"], started)
        self.renewals += 1
        log.info("bookql session renewed (%d so far)", self.renewals)

    def _authorized(self, send: Callable[[str | None], T]) -> T:
        """``send`` with the current access token; if the server finds it expired, once
        more after renewing the session."""
        used = self._current_token()
        try:
            return send(used)
        except BookQLError as error:
            if not error.token_expired or self._refresh is None:
                raise
        return send(self._renewed(used))

    # -- GraphQL --------------------------------------------------------------------------

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a query or mutation and return its ``data``; any error raises BookQLError."""
        return self._authorized(lambda token: self._post(query, variables, token))

    def _post(self, query: str, variables: dict[str, Any] | None, token: str | None) -> Any:
        response = self._http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._headers("application/json", token),
        )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BookQLError.from_response(response) from None
        if not isinstance(body, dict):
            raise BookQLError.from_response(response)
        if body.get("errors"):
            raise BookQLError.from_errors(body["errors"], response.status_code)
        if response.is_error or not isinstance(body.get("data"), dict):
            raise BookQLError.from_response(response)
        data: dict[str, Any] = body["data"]
        return data

    # -- the training data ----------------------------------------------------------------

    def training_frame(self, batch_size: int = 10_000) -> pd.DataFrame:
        """Every listed book's features and price, one row per book in site order.

        Columns and dtypes are the server's (``string`` becomes pandas' ``str``, the dtype
        ``read_parquet`` gives an exported file). Values are gathered per column, batch by
        batch, so memory holds the parsed values once rather than a list of row objects.
        A stream with no rows at all sends no batch, hence no columns: the frame is empty.
        """
        names: list[str] = []
        dtypes: list[str] = []
        values: list[list[Any]] = []
        for batch in self._batches(batch_size):
            if not names:
                names, dtypes = list(batch["columns"]), list(batch["dtypes"])
                values = [[] for _ in names]
            elif list(batch["columns"]) != names:
                raise BookQLError("the columns changed in the middle of the stream")
            rows = _parse_rows(batch["jsonl"])
            if len(rows) != batch["rowCount"]:
                raise BookQLError(f"a batch said {batch['rowCount']} rows but held {len(rows)}")
            if rows:
                for column, new in zip(values, zip(*rows, strict=True), strict=True):
                    column.extend(new)
        return pd.DataFrame(
            {
                name: _column(column, dtype)
                for name, dtype, column in zip(names, dtypes, values, strict=True)
            }
        )

    def _batches(self, batch_size: int) -> Iterator[dict[str, Any]]:
        """Every batch once: after a failure the stream restarts after the last batch seen.

        Only failures in a row count towards ``retries``: a stream that keeps making
        progress keeps going. An access token that expired meanwhile is renewed and the
        stream resumed (once per attempt); other client errors (a bad token, a bad batch
        size) raise at once.
        """
        after: str | None = None
        failures = 0
        renewed = False
        while True:
            used = self._current_token()
            try:
                for batch in self._subscribe(batch_size, after, used):
                    after = batch["cursor"]
                    failures, renewed = 0, False
                    yield batch
                return
            except BookQLError as error:
                if error.token_expired and self._refresh is not None and not renewed:
                    self._renewed(used)
                    renewed = True
                    continue
                if not error.retryable:
                    raise
                problem: Exception = error
            except (httpx.TransportError, _Incomplete) as error:
                problem = error
            failures += 1
            if failures > self.retries:
                raise BookQLError(
                    f"the training-data stream failed {failures} times in a row "
                    f"(last: {type(problem).__name__}: {problem})",
                    getattr(problem, "code", None),
                ) from problem
            time.sleep(self.retry_delay * 2 ** (failures - 1))

    def _subscribe(
        self, batch_size: int, after: str | None, token: str | None
    ) -> Iterator[dict[str, Any]]:
        """One connection's batches; raises _Incomplete if it ends before ``complete``."""
        body = {"query": TRAINING_DATA, "variables": {"n": batch_size, "a": after}}
        headers = self._headers("text/event-stream", token)
        with self._http.stream("POST", "/graphql", json=body, headers=headers) as response:
            media_type = response.headers.get("content-type", "")
            if response.is_error or not media_type.startswith("text/event-stream"):
                response.read()
                raise BookQLError.from_response(response)
            for event, data in sse_events(sse_lines(response.iter_text())):
                if event == "complete":
                    return
                if event != "next":
                    continue
                payload = orjson.loads(data)
                if payload.get("errors"):
                    raise BookQLError.from_errors(payload["errors"])
                yield payload["data"]["trainingData"]
        raise _Incomplete("the event stream ended before `complete`")

    # -- files ----------------------------------------------------------------------------

    def export(self, path: str | Path, format: str = "parquet") -> Path:
        """Download the training data as a ``parquet``, ``csv`` or ``jsonl`` file.

        The body is written as it arrives (no whole file in memory) to a hidden partial file
        that replaces ``path`` only when complete: a failed download leaves no half file.
        """
        path = Path(path)
        self._authorized(lambda token: self._download(path, format, token))
        return path

    def _download(self, path: Path, format: str, token: str | None) -> None:
        partial = path.with_name(f".{path.name}.partial")
        headers = self._headers("*/*", token)
        params = {"format": format}
        try:
            with self._http.stream(
                "GET", "/export/training-data", params=params, headers=headers
            ) as response:
                if response.is_error:
                    response.read()
                    raise BookQLError.from_response(response)
                with partial.open("wb") as file:
                    for piece in response.iter_bytes():
                        file.write(piece)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)


def sse_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The stream's lines as SSE ends them: at CRLF, CR or LF only.

    Not ``httpx.Response.iter_lines``: that splits like ``str.splitlines``, also at U+2028,
    U+0085 and others, which JSON may carry unescaped inside a ``data`` line. A final line
    without its line break is dropped: it can only belong to an event cut off mid-way.
    """
    parts: list[str] = []
    carry = ""  # a CR at a chunk's end: the next chunk may start with its LF
    for chunk in chunks:
        text, carry = carry + chunk, ""
        if text.endswith("\r"):
            text, carry = text[:-1], "\r"
        lines = _LINE_BREAK.split(text)
        parts.append(lines[0])
        if len(lines) > 1:
            yield "".join(parts)
            yield from lines[1:-1]
            parts = [lines[-1]]
    if carry:
        yield "".join(parts)


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` of each server-sent event, from the stream's lines.

    As the SSE specification reads them: a blank line ends an event, ``data`` lines join
    with newlines, one space after the colon is dropped, lines starting ``:`` are comments,
    and an event cut off before its blank line is never returned.
    """
    event, seen = "message", False
    data: list[str] = []
    for line in lines:
        if not line:
            if seen:
                yield event, "\n".join(data)
            event, data, seen = "message", [], False
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event, seen = value, True
        elif field == "data":
            data.append(value)
            seen = True


def _parse_rows(jsonl: str) -> list[list[Any]]:
    """JSON Lines of arrays, parsed as one JSON document (much faster than line by line)."""
    body = jsonl.strip("\n").replace("\n", ",")
    rows: list[list[Any]] = orjson.loads(f"[{body}]")
    return rows


def _column(values: list[Any], dtype: str) -> Any:
    """One column's values as the dtype the server declared (unknown ones: pandas infers)."""
    if dtype == "string":
        return pd.array(values, dtype="str")
    if dtype == "category":
        return pd.Categorical(values)
    if dtype in ("int64", "float64"):
        return np.array(values, dtype=dtype)
    return pd.array(values)
