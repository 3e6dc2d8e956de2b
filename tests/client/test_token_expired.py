"""An expired access token is ``UNAUTHENTICATED`` with ``extensions.reason: TOKEN_EXPIRED`` on
every transport that checks one, on both databases and both executors; any other bad token
(forged, of the wrong kind, for a session that ended) has no reason: refreshing would not help.

How the reason travels: a GraphQL error's ``extensions`` (HTTP, SSE, multipart), the export's
JSON error body (401), and the close reason of a refused WebSocket ``connection_init`` (4403
``TOKEN_EXPIRED``, where any other refusal says ``Forbidden``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from starlette.websockets import WebSocketDisconnect

from bookql.accounts.tokens import ExpiredToken, InvalidToken, TokenType
from bookql.db.types import utcnow
from tests.accounts.test_accounts import SECRET
from tests.client.expiry import codec, expired_twin
from tests.conftest import ScratchDatabase
from tests.support.sessions import ME, TRAINING_DATA, WS, Site, site

EXPIRED = {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}
BOOKS = "{ books(first: 2) { edges { node { title } } } }"  # a query the compiled path plans
SSE = "text/event-stream"
MULTIPART = 'multipart/mixed;subscriptionSpec="1.0"'
# Bad in a way no refresh mends: refused without a reason.
HOPELESS = ["forged-expired", "expired-refresh", "refresh", "session-ended", "garbage"]


def _tokens(s: Site, database: ScratchDatabase) -> dict[str, str]:
    """A new user's access token, and tokens bad in each way, named for how."""
    name = f"expiring-{uuid.uuid4().hex[:8]}"  # the seeded database is shared
    user = s.register(name)
    own = codec(SECRET, database.data_dir)
    expired = expired_twin(own, user["accessToken"])
    claims = jwt.decode(expired, options={"verify_signature": False})
    ended = s.login(name)
    s.logout(ended["refreshToken"])
    return {
        "valid": user["accessToken"],
        "expired": expired,
        "forged-expired": jwt.encode(claims, "x" * 64, algorithm="HS256"),
        "expired-refresh": expired_twin(own, user["refreshToken"], TokenType.REFRESH),
        "refresh": user["refreshToken"],
        "session-ended": ended["accessToken"],
        "garbage": "not.a.token",
    }


def test_the_codec_calls_a_token_expired_only_if_nothing_else_is_wrong(tmp_path: Path) -> None:
    own = codec(SECRET, tmp_path)
    session = own.issue(TokenType.ACCESS, user_id=1, token_version=0, now=utcnow(), family_id="f")
    expired = expired_twin(own, session.token)
    with pytest.raises(ExpiredToken):
        own.decode(expired, TokenType.ACCESS)
    claims = jwt.decode(expired, options={"verify_signature": False})
    wrong = {
        "signature": jwt.encode(claims, "x" * 64, algorithm="HS256"),
        "audience": jwt.encode({**claims, "aud": "elsewhere"}, SECRET, algorithm="HS256"),
        "issuer": jwt.encode({**claims, "iss": "elsewhere"}, SECRET, algorithm="HS256"),
        "kind": jwt.encode({**claims, "typ": "refresh"}, SECRET, algorithm="HS256"),
        "session": jwt.encode({**claims, "fam": ""}, SECRET, algorithm="HS256"),
    }
    for what, token in wrong.items():
        with pytest.raises(InvalidToken) as refused:
            own.decode(token, TokenType.ACCESS)
        assert not isinstance(refused.value, ExpiredToken), what


@pytest.fixture(scope="module")
def default_site(seeded_db: ScratchDatabase) -> Iterator[tuple[Site, dict[str, str]]]:
    """The app as configured by default (plain queries on the compiled path)."""
    with site(seeded_db) as s:
        yield s, _tokens(s, seeded_db)


@pytest.fixture(scope="module")
def standard_site(seeded_db: ScratchDatabase) -> Iterator[tuple[Site, dict[str, str]]]:
    """The app with every operation on Strawberry's executor."""
    with site(seeded_db, compiled_queries=False) as s:
        yield s, _tokens(s, seeded_db)


def _only_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    extensions: dict[str, Any] = errors[0]["extensions"]
    return extensions


@pytest.mark.parametrize("executor", ["compiled", "standard"])
@pytest.mark.parametrize("query", [BOOKS, ME], ids=["catalogue", "me"])
def test_http_graphql(
    request: pytest.FixtureRequest, seeded_db: ScratchDatabase, executor: str, query: str
) -> None:
    site_fixture = "default_site" if executor == "compiled" else "standard_site"
    s, tokens = request.getfixturevalue(site_fixture)
    assert "errors" not in s.gql(query, token=tokens["valid"])
    assert _only_error(s.gql(query, token=tokens["expired"])) == EXPIRED
    get = s.http.get("/graphql", params={"query": query}, headers=_bearer(tokens["expired"]))
    assert _only_error(get.json()) == EXPIRED
    for kind in HOPELESS:
        assert _only_error(s.gql(query, token=tokens[kind])) == {"code": "UNAUTHENTICATED"}, kind


def _bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def _stream_errors(s: Site, token: str, accept: str) -> list[dict[str, Any]]:
    """The errors a ``trainingData`` subscription over SSE or multipart answers with."""
    with s.http.stream(
        "POST", "/graphql", json={"query": TRAINING_DATA}, headers=_bearer(token, Accept=accept)
    ) as response:
        text = response.read().decode()
    if response.headers["content-type"].startswith("application/json"):
        errors: list[dict[str, Any]] = orjson.loads(text)["errors"]
        return errors
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        payload = line.removeprefix("data: ") if accept == SSE else line
        if payload.startswith("{"):
            event = orjson.loads(payload)
            event = event.get("payload", event)
            found += event.get("errors") or []
    return found


@pytest.mark.parametrize("accept", [SSE, MULTIPART], ids=["sse", "multipart"])
def test_http_streams(default_site: tuple[Site, dict[str, str]], accept: str) -> None:
    s, tokens = default_site
    errors = _stream_errors(s, tokens["expired"], accept)
    assert [error["extensions"] for error in errors] == [EXPIRED]
    errors = _stream_errors(s, tokens["forged-expired"], accept)
    assert [error["extensions"] for error in errors] == [{"code": "UNAUTHENTICATED"}]


def _refused(s: Site, payload: dict[str, Any], headers: dict[str, str]) -> tuple[int, str]:
    with s.http.websocket_connect("/graphql", subprotocols=WS, headers=headers) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code, closed.value.reason


def test_websocket_connection_init(default_site: tuple[Site, dict[str, str]]) -> None:
    s, tokens = default_site
    for kind, reason in [("expired", "TOKEN_EXPIRED"), *((kind, "Forbidden") for kind in HOPELESS)]:
        bearer = _bearer(tokens[kind])
        assert _refused(s, bearer, {}) == (4403, reason), kind
        assert _refused(s, {}, bearer) == (4403, reason), kind  # the upgrade request's header
    with s.socket(tokens["valid"]) as ws:
        ws.send_json({"id": "m", "type": "subscribe", "payload": {"query": ME}})
        assert ws.receive_json()["payload"]["data"]["me"]["username"].startswith("expiring-")


def test_training_data_export(default_site: tuple[Site, dict[str, str]]) -> None:
    s, tokens = default_site
    url = "/export/training-data?format=csv"
    refused = s.http.get(url, headers=_bearer(tokens["expired"]))
    assert refused.status_code == 401
    assert _only_error(refused.json()) == EXPIRED
    for kind in HOPELESS:
        refused = s.http.get(url, headers=_bearer(tokens[kind]))
        assert refused.status_code == 401
        assert _only_error(refused.json()) == {"code": "UNAUTHENTICATED"}, kind
    assert s.http.get(url, headers=_bearer(tokens["valid"])).status_code == 200
