"""``bookql.client`` against a real server on both databases, and the example notebook.

The server runs as ``bookql serve`` in a subprocess, as a notebook user would have it. A
wrapping transport cuts the event stream mid-way, to show a resumed download still gives
every row exactly once. The SSE parsing and the retry rules also get quick checks over
``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nbclient
import nbformat
import pandas as pd
import pytest
from ipykernel.kernelspec import write_kernel_spec

from bookql.accounts.setup import build_accounts
from bookql.client import TRAINING_DATA, BookQL, BookQLError, sse_events, sse_lines
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import create_async_db_engine
from bookql.ml.dataset import COLUMNS
from bookql.ml.features import LABEL, book_features, load_books_frame, load_categories
from tests.conftest import FAST_ARGON2, ScratchDatabase
from tests.support.live import live_server

pytestmark = pytest.mark.slow  # a real bookql serve for the module, and the notebook

REPO = Path(__file__).parents[2]
NOTEBOOK = REPO / "examples" / "training_data.ipynb"
PASSWORD = "correct horse battery"
BOOKS = "{ books(first: 3) { edges { node { title } } } }"
SSE = "text/event-stream"


@dataclass
class Server:
    url: str
    database: ScratchDatabase
    username: str
    log: Path

    def client(self, **options: Any) -> BookQL:
        api = BookQL(self.url, **options)
        api.login(self.username, PASSWORD)
        return api


def _create_user(database: ScratchDatabase) -> str:
    username = f"reader-{uuid.uuid4().hex[:8]}"  # the seeded database is shared by modules

    async def create() -> None:
        settings = database.settings()
        engine = create_async_db_engine(settings)
        blocking = BlockingDatabase.for_settings(settings)
        try:
            await build_accounts(settings, engine, None, blocking).create_user(username, PASSWORD)
        finally:
            blocking.close()
            await engine.dispose()

    asyncio.run(create())
    return username


@pytest.fixture(scope="module")
def server(seeded_db: ScratchDatabase) -> Iterator[Server]:
    """``bookql serve`` on the seeded database, and a user to sign in as."""
    username = _create_user(seeded_db)
    log = seeded_db.data_dir / f"server-{username}.log"
    env = {
        **os.environ,
        "BOOKQL_DATABASE_URL": seeded_db.url,
        "BOOKQL_DATA_DIR": str(seeded_db.data_dir),
        **{f"BOOKQL_{name.upper()}": str(value) for name, value in FAST_ARGON2.items()},
        # The tests cut streams on purpose and reconnect at once (no backoff); a cut stream
        # keeps its export slot until the server notices, so the default of 4 can run out.
        "BOOKQL_MAX_CONCURRENT_EXPORTS": "32",
    }
    with live_server(env, log) as url:
        yield Server(url, seeded_db, username, log)


async def _expected_frame(database: ScratchDatabase) -> tuple[pd.DataFrame, list[str]]:
    """The training data computed here, by the one feature function, from the tables."""
    engine = create_async_db_engine(database.settings())
    try:
        async with engine.connect() as conn:
            books, names = await load_books_frame(conn), await load_categories(conn)
    finally:
        await engine.dispose()
    expected = book_features(books, names)
    expected.insert(0, "upc", books["upc"].astype("str"))
    expected[LABEL] = books[LABEL]
    return expected, names


def _assert_same_rows(frame: pd.DataFrame, expected: pd.DataFrame, names: list[str]) -> None:
    # The client's categories are the values it saw; the model's are every category's name.
    assert frame["category"].notna().all()
    frame = frame.assign(category=frame["category"].cat.set_categories(names))
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


class _Cut(httpx.SyncByteStream):
    """A response body that stops after ``limit`` bytes: with ReadError, or just ends."""

    def __init__(self, inner: httpx.SyncByteStream, limit: int, error: bool) -> None:
        self.inner, self.limit, self.error = inner, limit, error

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                if self.error:
                    raise httpx.ReadError("connection reset (test)")
                return
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


@dataclass
class Flaky(httpx.BaseTransport):
    """The real network, except that the first ``cuts`` event streams break off."""

    cuts: int
    limit: int
    error: bool = True
    inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    streams: list[dict[str, Any]] = field(default_factory=list)  # each stream's variables

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.headers.get("accept") == SSE:
            self.streams.append(json.loads(request.content)["variables"])
            if self.cuts:
                self.cuts -= 1
                assert isinstance(response.stream, httpx.SyncByteStream)
                response.stream = _Cut(response.stream, self.limit, self.error)
        return response

    def close(self) -> None:
        self.inner.close()


# -- against the server, on both databases --------------------------------------------------


async def test_login_query_and_the_training_frame(server: Server) -> None:
    api = BookQL(server.url)
    user = api.login(server.username, PASSWORD)
    assert user["username"] == server.username and api.token
    titles = [edge["node"]["title"] for edge in api.query(BOOKS)["books"]["edges"]]
    assert len(titles) == 3
    frame = api.training_frame(batch_size=300)
    api.close()

    assert len(frame) == 1000
    # the declared types, in the declared order ("string" reads as pandas' str)
    declared = [(c.name, "str" if c.type == "string" else c.type) for c in COLUMNS]
    assert list(frame.dtypes.astype(str).items()) == declared
    expected, names = await _expected_frame(server.database)
    _assert_same_rows(frame, expected, names)


@pytest.mark.parametrize("error", [True, False], ids=["reset", "ended-early"])
def test_a_dropped_stream_resumes_after_the_last_batch(server: Server, error: bool) -> None:
    with server.client() as api:
        whole = api.training_frame(batch_size=100)
    # Events of ~8 kB: each cut stream has delivered a few batches and loses the next.
    flaky = Flaky(cuts=2, limit=25_000, error=error)
    api = server.client(transport=flaky, retry_delay=0)
    frame = api.training_frame(batch_size=100)
    api.close()

    pd.testing.assert_frame_equal(frame, whole, check_exact=True)
    assert frame["upc"].is_unique
    cursors = [variables["a"] for variables in flaky.streams]
    assert len(cursors) == 3
    assert cursors[0] is None
    assert None not in cursors[1:] and cursors[1] != cursors[2]


def test_a_stream_that_keeps_breaking_gives_up(server: Server) -> None:
    flaky = Flaky(cuts=100, limit=500)  # never gets a whole batch through
    api = server.client(transport=flaky, retries=2, retry_delay=0)
    with pytest.raises(BookQLError, match="failed 3 times in a row") as raised:
        api.training_frame(batch_size=100)
    assert isinstance(raised.value.__cause__, httpx.ReadError)
    assert [variables["a"] for variables in flaky.streams] == [None, None, None]


def test_errors_carry_the_server_code(server: Server, tmp_path: Path) -> None:
    api = BookQL(server.url)
    with pytest.raises(BookQLError) as raised:
        api.login(server.username, "not the password")
    assert raised.value.code == "UNAUTHENTICATED"
    assert api.token is None

    counting = Flaky(cuts=0, limit=0)  # cuts nothing: counts the streams
    stranger = BookQL(server.url, token="not-a-token", transport=counting, retry_delay=0)
    with pytest.raises(BookQLError) as raised:
        stranger.training_frame()
    assert raised.value.code == "UNAUTHENTICATED"
    assert len(counting.streams) == 1, "a client error must not be retried"
    with pytest.raises(BookQLError) as raised:
        stranger.query(BOOKS)
    assert raised.value.code == "UNAUTHENTICATED"

    signed_in = server.client(transport=counting)
    with pytest.raises(BookQLError) as raised:
        signed_in.training_frame(batch_size=0)
    assert raised.value.code == "BAD_USER_INPUT"
    assert len(counting.streams) == 2

    target = tmp_path / "training.xml"
    with pytest.raises(BookQLError) as raised:
        signed_in.export(target, format="xml")
    assert raised.value.code == "BAD_USER_INPUT"
    assert raised.value.status == 400
    assert list(tmp_path.iterdir()) == [], "a failed export leaves no file"
    with pytest.raises(BookQLError) as raised:
        stranger.export(target)
    assert raised.value.code == "UNAUTHENTICATED"
    assert raised.value.status == 401


def test_exported_files_hold_the_same_rows(server: Server, tmp_path: Path) -> None:
    api = server.client()
    frame = api.training_frame()
    parquet = api.export(tmp_path / "training.parquet")
    assert parquet == tmp_path / "training.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), frame, check_categorical=False)
    csv = pd.read_csv(api.export(tmp_path / "training.csv", format="csv"))
    assert list(csv.columns) == list(frame.columns)
    assert csv["upc"].tolist() == frame["upc"].tolist()
    lines = api.export(tmp_path / "training.jsonl", format="jsonl").read_text().splitlines()
    assert [json.loads(line)["upc"] for line in lines] == frame["upc"].tolist()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "training.csv",
        "training.jsonl",
        "training.parquet",
    ]


# -- the example notebook ------------------------------------------------------------------


@pytest.mark.parametrize("seeded_db", ["sqlite"], indirect=True)
def test_the_example_notebook_runs(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A python3 kernel of this interpreter, whatever kernels the machine has installed.
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("BOOKQL_URL", server.url)
    monkeypatch.setenv("BOOKQL_USERNAME", server.username)
    monkeypatch.setenv("BOOKQL_PASSWORD", PASSWORD)

    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    assert all(not cell.get("outputs") for cell in notebook.cells), "clear the outputs"
    nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output["output_type"] == "error"]
    printed = "".join(output.get("text", "") for output in outputs)
    assert "1000 rows, 13 columns" in printed


# -- the protocol, without a server -------------------------------------------------------


def _sse(*events: tuple[str, object]) -> bytes:
    return "".join(
        f"event: {name}\ndata: {json.dumps(data) if data is not None else ''}\n\n"
        for name, data in events
    ).encode()


def _batch(rows: list[list[Any]], cursor: str) -> dict[str, Any]:
    return {
        "data": {
            "trainingData": {
                "columns": ["upc", "category", "rating", "price"],
                "dtypes": ["string", "category", "int64", "float64"],
                "rowCount": len(rows),
                "jsonl": "".join(json.dumps(row) + "\n" for row in rows),
                "cursor": cursor,
            }
        }
    }


def _mock(*bodies: bytes) -> tuple[BookQL, list[httpx.Request]]:
    """A client whose n-th request is answered with the n-th event stream."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"content-type": SSE}, content=bodies[len(seen) - 1])

    return BookQL("http://bookql.test", token="t", transport=httpx.MockTransport(answer)), seen


def test_sse_lines_break_only_where_the_protocol_says() -> None:
    chunks = ["event: next\r", '\ndata: {"a": "x\u2028y\x85z"}\r\n', "data: 2\n", "\n"]
    chunks += [": a comment\n\nevent: complete\ndata:\n\r", "event: next\ndata: cut off"]
    assert list(sse_events(sse_lines(chunks))) == [
        ("next", '{"a": "x\u2028y\x85z"}\n2'),
        ("complete", ""),
    ]


def test_zero_rows_make_an_empty_frame_with_the_declared_dtypes() -> None:
    api, _ = _mock(_sse(("next", _batch([], "c0")), ("complete", None)))
    frame = api.training_frame()
    assert frame.empty
    assert frame.dtypes.astype(str).tolist() == ["str", "category", "int64", "float64"]
    # The server sends no batch at all when there are no rows: nothing says what columns.
    api, _ = _mock(_sse(("complete", None)))
    assert api.training_frame().shape == (0, 0)


def test_a_busy_server_is_retried_and_a_bad_request_is_not() -> None:
    busy = {"errors": [{"message": "full", "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}
    row = ["u1", "Poetry", 3, 51.77]
    api, seen = _mock(
        _sse(("next", busy), ("complete", None)),
        _sse(("next", _batch([row], "c1")), ("complete", None)),
    )
    api.retry_delay = 0
    frame = api.training_frame()
    assert frame["upc"].tolist() == ["u1"] and len(seen) == 2
    assert seen[0].headers["authorization"] == "Bearer t"
    assert json.loads(seen[1].content) == {
        "query": TRAINING_DATA,
        "variables": {"n": 10_000, "a": None},
    }

    bad = {"errors": [{"message": "no", "extensions": {"code": "BAD_USER_INPUT"}}]}
    api, seen = _mock(_sse(("next", _batch([row], "c1")), ("next", bad), ("complete", None)))
    with pytest.raises(BookQLError) as raised:
        api.training_frame()
    assert (raised.value.code, raised.value.message, len(seen)) == ("BAD_USER_INPUT", "no", 1)


def test_query_errors_without_a_graphql_body() -> None:
    api = BookQL(
        "http://bookql.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(502, text="<html>")),
    )
    with pytest.raises(BookQLError) as raised:
        api.query(BOOKS)
    assert (raised.value.code, raised.value.status) == (None, 502)
    assert "502" in raised.value.message
