"""A small synchronous client for notebooks: sign in, run GraphQL, fetch the training data.

``training_frame()`` reads the ``trainingData`` subscription over HTTP server-sent events
(graphql-sse, "distinct connections" mode) and builds one DataFrame column by column. A
dropped connection is resumed from the last batch's cursor, so a long download over a
flaky network still delivers every row exactly once.

    api = BookQL("http://127.0.0.1:8000")
    api.login("alice", "a long password")
    frame = api.training_frame()
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

LOGIN = """mutation($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) { accessToken }
}"""
TRAINING_DATA = """subscription($n: Int!, $a: String) {
  trainingData(batchSize: $n, after: $a) { columns dtypes rowCount jsonl cursor }
}"""
# Worth another try: the server is busy (all export slots taken) or a proxy hiccuped.
RETRYABLE_CODES = frozenset({"SERVICE_UNAVAILABLE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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


class _Incomplete(Exception):
    """The event stream ended without ``complete``: a cut connection, to be resumed."""


class BookQL:
    """A signed-in (or anonymous) session with one bookql server.

    ``transport`` replaces the network (tests); ``retries`` and ``retry_delay`` bound how a
    broken training-data stream is resumed: up to ``retries`` failures in a row, waiting
    ``retry_delay`` seconds and doubling, before giving up.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 5,
        retry_delay: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.retry_delay = retry_delay
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

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

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # -- GraphQL --------------------------------------------------------------------------

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a query or mutation and return its ``data``; any error raises BookQLError."""
        response = self._http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._headers("application/json"),
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

    def login(self, username: str, password: str) -> str:
        """Sign in; later calls send the access token, which is also returned."""
        data = self.query(LOGIN, {"u": username, "p": password})
        token: str = data["login"]["accessToken"]
        self.token = token
        return token

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
        progress keeps going. Client errors (a bad token, a bad batch size) raise at once.
        """
        after: str | None = None
        failures = 0
        while True:
            try:
                for batch in self._subscribe(batch_size, after):
                    after = batch["cursor"]
                    failures = 0
                    yield batch
                return
            except BookQLError as error:
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

    def _subscribe(self, batch_size: int, after: str | None) -> Iterator[dict[str, Any]]:
        """One connection's batches; raises _Incomplete if it ends before ``complete``."""
        body = {"query": TRAINING_DATA, "variables": {"n": batch_size, "a": after}}
        headers = self._headers("text/event-stream")
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
        partial = path.with_name(f".{path.name}.partial")
        headers = self._headers("*/*")
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
        return path


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
