"""``bookql.client`` lasts as long as its session: against ``bookql serve`` on both databases.

Expiry is made, not waited for: the client's access token is swapped for the same session's
token issued long ago (``tests.client.expiry``), or the client's clock is moved on. A
recording transport shows what went over the wire: which operations, in what order, and which
were refused as expired.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from bookql.accounts.tokens import TokenCodec
from bookql.client import BookQL, BookQLError, SessionEnded
from tests.accounts.test_accounts import LOGIN, REFRESH, REGISTER, SECRET
from tests.client.expiry import codec, expired_twin
from tests.conftest import ScratchDatabase
from tests.support.live import post_graphql, running_server, server_env

pytestmark = pytest.mark.slow  # a real bookql serve for the module

PASSWORD = "correct horse battery"
ME = "{ me { username } }"
SSE = "text/event-stream"
THREADS = 8


@dataclass
class Server:
    url: str
    codec: TokenCodec

    def account(self) -> str:
        """A new user (the seeded database is shared: a name of its own)."""
        name = f"renewer-{uuid.uuid4().hex[:8]}"
        body = post_graphql(self.url, REGISTER, u=name, p=PASSWORD)
        assert "errors" not in body, body
        return name


@pytest.fixture(scope="module")
def server(seeded_db: ScratchDatabase) -> Iterator[Server]:
    env = server_env(
        seeded_db.data_dir,
        database_url=seeded_db.url,
        jwt_secret=SECRET,
        max_concurrent_exports=32,  # cut streams hold their slot a while
    )
    log = seeded_db.data_dir / f"server-refresh-{uuid.uuid4().hex[:6]}.log"
    with running_server(env, log) as live:
        yield Server(live.url, codec(SECRET, seeded_db.data_dir))


def _operation(request: httpx.Request) -> str:
    """What a request is: ``login``, ``refresh``, ``logout``, ``me``, ``stream``, ``export``."""
    if request.url.path.startswith("/export"):
        return "export"
    if request.headers.get("accept") == SSE:
        return "stream"
    query = orjson.loads(request.content)["query"]
    for name in ("login", "refresh", "logout", "me"):
        if f"{name}(" in query or f"{{ {name} " in query:
            return name
    return "other"


class _Cut(httpx.SyncByteStream):
    """A response body that breaks off after ``limit`` bytes, then calls ``then``."""

    def __init__(self, inner: httpx.SyncByteStream, limit: int, then: Callable[[], object]) -> None:
        self.inner, self.limit, self.then = inner, limit, then

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.inner:
            if sent + len(chunk) >= self.limit:
                yield chunk[: self.limit - sent]
                self.then()
                raise httpx.ReadError("connection reset (test)")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


@dataclass
class Recorder(httpx.BaseTransport):
    """The real network, noting each request's operation and whether it was refused as
    expired; ``expired_barrier`` holds refused requests until that many are refused; the
    first ``cuts`` event streams break off mid-way, calling ``on_cut``."""

    inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    calls: list[tuple[str, bool]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every JSON request and response
    streams: list[Any] = field(default_factory=list)  # each event stream's `after`
    expired_barrier: threading.Barrier | None = None
    cuts: int = 0
    on_cut: Callable[[], object] = lambda: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        operation = _operation(request)
        response = self.inner.handle_request(request)
        expired = False
        if operation == "stream":
            self.streams.append(orjson.loads(request.content)["variables"]["a"])
            if self.cuts:
                self.cuts -= 1
                assert isinstance(response.stream, httpx.SyncByteStream)
                response.stream = _Cut(response.stream, 25_000, self.on_cut)
            else:
                response.read()
                expired = b'"TOKEN_EXPIRED"' in response.content
        elif response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            self.bodies += [request.content, response.content]
            expired = b'"TOKEN_EXPIRED"' in response.content
        with self.lock:
            self.calls.append((operation, expired))
        if expired and self.expired_barrier is not None:
            self.expired_barrier.wait(timeout=30)
        return response

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def tokens(self) -> set[str]:
        """Every token the server handed out or was sent, as seen on the wire."""
        found: set[str] = set()
        for body in self.bodies:
            _collect(orjson.loads(body), found)
        return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("accessToken", "refreshToken", "t") and isinstance(item, str):
                found.add(item)
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _signed_in(server: Server, **options: Any) -> tuple[BookQL, Recorder]:
    recorder = Recorder()
    api = BookQL(server.url, transport=recorder, retry_delay=0, **options)
    user = api.login(server.account(), PASSWORD)
    assert set(user) == {"id", "username", "role"}
    return api, recorder


def _expire(server: Server, api: BookQL) -> str:
    """Make the client's access token one that has expired (same user, same session)."""
    assert api.token is not None
    api.token = expired_twin(server.codec, api.token)
    return api.token


def test_renews_shortly_before_expiry(server: Server) -> None:
    clock = Clock()
    api, recorder = _signed_in(server, clock=clock)
    first = api.token
    assert api.query(ME)["me"]["username"].startswith("renewer-")
    clock.now += 900 - 61  # the default lifetime is 900 s; renewed 60 s before the end
    assert api.query(ME)["me"]["username"].startswith("renewer-")
    assert recorder.operations() == ["login", "me", "me"]
    clock.now += 2
    assert api.query(ME)["me"]["username"].startswith("renewer-")
    assert recorder.calls == [
        ("login", False),
        ("me", False),
        ("me", False),
        ("refresh", False),
        ("me", False),
    ]
    assert api.token != first and api.renewals == 1
    api.close()


def test_renews_once_when_the_server_says_expired(server: Server, tmp_path: Path) -> None:
    api, recorder = _signed_in(server)
    _expire(server, api)
    assert api.query(ME)["me"]["username"].startswith("renewer-")
    assert recorder.calls == [("login", False), ("me", True), ("refresh", False), ("me", False)]

    _expire(server, api)
    target = api.export(tmp_path / "training.csv", format="csv")
    assert len(target.read_text().splitlines()) == 1001
    assert recorder.calls[4:] == [("export", True), ("refresh", False), ("export", False)]
    assert api.renewals == 2
    api.close()


def test_a_download_survives_expiry_midway(server: Server) -> None:
    """The stream breaks off and by the time the client resumes its token has expired: it
    renews, resumes after the last batch, and every row arrives once."""
    whole_api, _ = _signed_in(server)
    whole = whole_api.training_frame(batch_size=100)
    whole_api.close()

    recorder = Recorder(cuts=1)
    api = BookQL(server.url, transport=recorder, retry_delay=0)
    api.login(server.account(), PASSWORD)
    recorder.on_cut = lambda: _expire(server, api)
    frame = api.training_frame(batch_size=100)
    api.close()

    pd.testing.assert_frame_equal(frame, whole, check_exact=True)
    assert recorder.calls == [
        ("login", False),
        ("stream", False),  # cut off after a few batches
        ("stream", True),  # resumed with the expired token
        ("refresh", False),
        ("stream", False),  # resumed after renewing
    ]
    first, refused, resumed = recorder.streams
    assert first is None and refused is not None and resumed == refused


def test_threads_renew_once_between_them(server: Server) -> None:
    """Eight threads meet the expiry at once: one refresh, and the session goes on (a second
    use of a refresh token would have ended it)."""
    api, recorder = _signed_in(server)
    recorder.expired_barrier = threading.Barrier(THREADS)
    _expire(server, api)
    start = threading.Barrier(THREADS)
    names: list[str] = []
    failures: list[BaseException] = []

    def call() -> None:
        start.wait(timeout=30)
        try:
            names.append(api.query(ME)["me"]["username"])
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert len(names) == THREADS and len(set(names)) == 1
    refused = [call for call in recorder.calls if call == ("me", True)]
    assert len(refused) == THREADS, "every thread met the expired token"
    assert recorder.operations().count("refresh") == 1
    recorder.expired_barrier = None
    # The session is still open: its token works, and it renews again.
    _expire(server, api)
    assert api.query(ME)["me"]["username"] == names[0]
    assert recorder.operations().count("refresh") == 2
    api.close()


def test_a_reused_refresh_token_ends_the_session(server: Server) -> None:
    """A copy of the refresh token used elsewhere first: the server ends the session (as it
    always has), and the client says to sign in again rather than going on anonymously."""
    name = server.account()
    session = post_graphql(server.url, LOGIN, u=name, p=PASSWORD)["data"]["login"]
    recorder = Recorder()
    api = BookQL(
        server.url,
        expired_twin(server.codec, session["accessToken"]),
        refresh_token=session["refreshToken"],
        transport=recorder,
    )
    assert api.query(ME)["me"]["username"] == name  # renewed: the copy is now used up
    replay = post_graphql(server.url, REFRESH, t=session["refreshToken"])
    assert replay["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    with pytest.raises(BookQLError) as refused:
        api.query(ME)  # the session ended: its fresh access token is refused too
    assert (refused.value.code, refused.value.reason) == ("UNAUTHENTICATED", None)
    assert recorder.operations().count("refresh") == 1

    _expire(server, api)
    with pytest.raises(SessionEnded, match=r"sign in again with login\(\)") as ended:
        api.query(ME)
    assert ended.value.code == "UNAUTHENTICATED"
    assert api.token is None and api.user is None
    assert api.query(ME) == {"me": None}  # anonymous from now on, until it signs in
    api.close()


def test_logout_ends_the_session(server: Server) -> None:
    api, recorder = _signed_in(server)
    token = api.token
    api.logout()
    assert api.token is None and recorder.operations()[-1] == "logout"
    refused = post_graphql(server.url, ME, token)
    assert refused["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    api.logout()  # nothing left to end
    api.close()


def test_tokens_are_never_printed(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api, recorder = _signed_in(server)
    said = [repr(api), str(api), repr(api.user)]
    expired = _expire(server, api)
    api.query(ME)  # renewed: new tokens
    said += [repr(api), str(api)]
    replay = [body for body in recorder.bodies if b"refresh(" in body]
    assert replay
    post_graphql(server.url, REFRESH, t=orjson.loads(replay[0])["variables"]["t"])  # ends it
    _expire(server, api)
    with pytest.raises(SessionEnded) as ended:
        api.query(ME)
    said += [repr(ended.value), str(ended.value), repr(ended.value.errors), repr(api)]
    with pytest.raises(BookQLError) as bad:
        BookQL(server.url, expired, transport=recorder).query(ME)
    said += [repr(bad.value), str(bad.value), repr(bad.value.errors)]

    tokens = recorder.tokens() | {expired}
    assert len(tokens) >= 5
    printed = "\n".join([*said, caplog.text])
    assert "renewed" in caplog.text
    for token in tokens:
        assert token not in printed
        assert token.split(".")[2] not in printed  # not even the signature
    api.close()
