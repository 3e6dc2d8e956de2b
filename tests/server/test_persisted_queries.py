"""Persisted queries: Apollo's automatic persisted queries over raw HTTP on both executors,
their stores (per process, and Redis shared by workers), trusted documents, and Apollo
Client's own ``PersistedQueryLink`` against a live server."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from bookql.core.errors import ConfigError
from bookql.server.app import create_app
from bookql.server.persisted import INDEX_KEY, KEY_PREFIX, LocalStore, RedisStore, TrustedDocuments
from tests.accounts.test_accounts import LOGIN, REGISTER
from tests.conftest import IN_CI, ScratchDatabase, app_client, error_codes
from tests.support.admin_session import admin_session
from tests.support.live import running_server, server_env
from tests.support.paths import pair

BOOKS = (
    "query TwoBooks($first: Int!) { books(first: $first) { totalCount edges { node { title } } } }"
)
TITLES = "query { books(first: 3) { edges { node { title } } } }"
DEEP = (
    "query { "
    + "categories { books(first: 1) { edges { node { category { " * 4
    + "name"
    + " } } } } }" * 4
    + " }"
)
APOLLO_DIR = Path(__file__).parent / "apollo"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def post(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await http.post("/graphql", json=body, headers=headers)


async def get(http: httpx.AsyncClient, **params: Any) -> httpx.Response:
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return await http.get("/graphql", params=encoded)


def reason(body: dict[str, Any]) -> str | None:
    value: str | None = body["errors"][0]["extensions"].get("reason")
    return value


# --- Apollo's protocol, raw -------------------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "strawberry"])
async def test_unknown_hash_then_registration_then_hash_alone(
    seeded_db: ScratchDatabase, compiled: bool
) -> None:
    async with app_client(seeded_db.settings(compiled_queries=compiled)) as http:
        variables = {"first": 2}
        missing = await post(http, {"variables": variables, "extensions": apq(sha(BOOKS))})
        assert missing.status_code == 200
        assert missing.headers["cache-control"] == "no-store"
        assert missing.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
        assert (await get(http, variables=variables, extensions=apq(sha(BOOKS)))).json()["errors"][
            0
        ]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        full = await post(
            http, {"query": BOOKS, "variables": variables, "extensions": apq(sha(BOOKS))}
        )
        assert full.status_code == 200 and "errors" not in full.json()
        expected = full.json()["data"]
        assert len(expected["books"]["edges"]) == 2

        by_post = await post(http, {"variables": variables, "extensions": apq(sha(BOOKS))})
        assert by_post.json() == {"data": expected}
        by_get = await get(
            http, operationName="TwoBooks", variables=variables, extensions=apq(sha(BOOKS))
        )
        assert by_get.status_code == 200 and by_get.json() == {"data": expected}
        # What the executor says of a request is unchanged by the hash standing for its text.
        wanted = {"Accept": "application/graphql-response+json"}
        strict = await http.get(
            "/graphql",
            params={"variables": "{}", "extensions": json.dumps(apq(sha(BOOKS)))},
            headers=wanted,
        )
        assert strict.status_code == 400 and error_codes(strict.json()) == ["BAD_USER_INPUT"]


async def test_both_executors_answer_the_hash_alone(seeded_db: ScratchDatabase) -> None:
    async with pair(seeded_db) as clients:
        body = {"query": TITLES, "extensions": apq(sha(TITLES))}
        for http in (clients.standard, clients.compiled):
            assert "errors" not in (await post(http, body)).json()
        served = clients.counts.served
        standard, compiled = await clients.both(
            "GET", params={"extensions": json.dumps(apq(sha(TITLES)))}
        )
        assert standard.json() == compiled.json()
        assert len(compiled.json()["data"]["books"]["edges"]) == 3
        assert clients.counts.served == served + 1  # the compiled plan answered it


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_stored(
    seeded_db: ScratchDatabase,
) -> None:
    async with app_client(seeded_db.settings()) as http:
        wrong = sha(TITLES)
        refused = await post(http, {"query": BOOKS, "extensions": apq(wrong)})
        assert refused.status_code == 400
        assert error_codes(refused.json()) == ["BAD_USER_INPUT"]
        assert reason(refused.json()) == "PERSISTED_QUERY_HASH_MISMATCH"
        again = await post(http, {"extensions": apq(wrong)})
        assert error_codes(again.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_malformed_and_unsupported_persisted_queries(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings()) as http:
        version = await post(http, {"extensions": apq(sha(TITLES), version=2)})
        assert version.json()["errors"][0]["message"] == "PersistedQueryNotSupported"
        assert reason(version.json()) == "PERSISTED_QUERY_NOT_SUPPORTED"
        for digest in ("ABC", sha(TITLES).upper(), 42):
            bad = await post(
                http, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
            )
            assert bad.status_code == 400 and error_codes(bad.json()) == ["BAD_USER_INPUT"]
        shapeless = await post(http, {"extensions": {"persistedQuery": "yes"}})
        assert shapeless.json()["errors"][0]["message"] == "PersistedQueryNotSupported"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("query { books { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query { books(", "GRAPHQL_PARSE_FAILED"),
        (DEEP, "QUERY_TOO_COMPLEX"),
    ],
    ids=["invalid", "unparsable", "too-deep"],
)
async def test_only_admissible_documents_are_registered(
    seeded_db: ScratchDatabase, query: str, code: str
) -> None:
    async with app_client(seeded_db.settings()) as http:
        refused = await post(http, {"query": query, "extensions": apq(sha(query))})
        assert code in error_codes(refused.json())
        later = await post(http, {"extensions": apq(sha(query))})
        assert error_codes(later.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_mutation_by_hash_over_get_is_still_refused(seeded_db: ScratchDatabase) -> None:
    mutation = 'mutation { logout(input: {refreshToken: "x"}) { ok } }'
    async with app_client(seeded_db.settings()) as http:
        await post(http, {"query": mutation, "extensions": apq(sha(mutation))})
        refused = await get(http, extensions=apq(sha(mutation)))
        assert refused.status_code == 405 and refused.headers["allow"] == "POST"


async def test_turned_off(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(persisted_queries=False)) as http:
        alone = await post(http, {"extensions": apq(sha(TITLES))})
        assert alone.json()["errors"][0]["message"] == "PersistedQueryNotSupported"
        full = await post(http, {"query": TITLES, "extensions": apq(sha(TITLES))})
        assert "errors" not in full.json()
        alone = await post(http, {"extensions": apq(sha(TITLES))})
        assert alone.json()["errors"][0]["message"] == "PersistedQueryNotSupported"


def subscribe(ws: Any, id: str, payload: dict[str, Any]) -> dict[str, Any]:
    ws.send_json({"id": id, "type": "subscribe", "payload": payload})
    message: dict[str, Any] = ws.receive_json()
    return message


def test_hashes_over_websocket_and_server_sent_events(seeded_db: ScratchDatabase) -> None:
    stats = "query { stats { totalBooks } }"
    with TestClient(create_app(seeded_db.settings())) as http:
        with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init"})
            assert ws.receive_json()["type"] == "connection_ack"
            missing = subscribe(ws, "1", {"extensions": apq(sha(stats))})
            assert missing["type"] == "error" and missing["id"] == "1"
            assert missing["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
            full = subscribe(ws, "2", {"query": stats, "extensions": apq(sha(stats))})
            assert full["payload"] == {"data": {"stats": {"totalBooks": 1000}}}
            assert ws.receive_json() == {"id": "2", "type": "complete"}
            alone = subscribe(ws, "3", {"extensions": apq(sha(stats))})
            assert alone["payload"] == full["payload"]
        sse = {"accept": "text/event-stream"}
        streamed = http.post("/graphql", json={"extensions": apq(sha(stats))}, headers=sse)
        assert streamed.status_code == 200 and '"totalBooks":1000' in streamed.text


def test_trusted_only_over_websocket(seeded_db: ScratchDatabase, tmp_path: Path) -> None:
    path = manifest(tmp_path, {sha(TITLES): TITLES})
    settings = seeded_db.settings(trusted_documents=path, trusted_documents_only=True)
    with (
        TestClient(create_app(settings)) as http,
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        refused = subscribe(ws, "1", {"query": "query { stats { totalBooks } }"})
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"] == {
            "code": "FORBIDDEN",
            "reason": "TRUSTED_DOCUMENTS_ONLY",
        }
        known = subscribe(ws, "2", {"extensions": apq(sha(TITLES))})
        assert len(known["payload"]["data"]["books"]["edges"]) == 3


# --- stores -----------------------------------------------------------------------------


async def test_local_store_is_bounded_by_count_and_bytes() -> None:
    store = LocalStore(max_entries=3, max_bytes=100)
    for n in range(5):
        await store.put(f"k{n}", "x" * 10)
    assert len(store) == 3 and await store.get("k0") is None and await store.get("k4")
    await store.get("k2")  # recently used: kept
    await store.put("big", "y" * 75)
    assert await store.get("k2") and await store.get("big") and await store.get("k3") is None
    assert store.size <= 100
    await store.put("huge", "z" * 101)
    assert await store.get("huge") is None


async def test_local_store_cap_through_the_app(seeded_db: ScratchDatabase) -> None:
    settings = seeded_db.settings(persisted_queries_max_entries=10)
    async with app_client(settings) as http:
        queries = [f"query {{ books(first: {n + 1}) {{ totalCount }} }}" for n in range(11)]
        for query in queries:
            assert (
                "errors"
                not in (await post(http, {"query": query, "extensions": apq(sha(query))})).json()
            )
        first = await post(http, {"extensions": apq(sha(queries[0]))})
        assert error_codes(first.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        last = await post(http, {"extensions": apq(sha(queries[-1]))})
        assert last.json()["data"]["books"]["totalCount"] > 0


async def test_redis_store_ttl_and_cap(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    try:
        store = RedisStore(redis, ttl_seconds=600, max_entries=10)
        for n in range(12):
            await store.put(f"{n:064x}", f"query {{ n{n} }}")
        assert await store.get(f"{0:064x}") is None and await store.get(f"{1:064x}") is None
        assert await store.get(f"{11:064x}") == "query { n11 }"
        assert await redis.zcard(INDEX_KEY) == 10
        assert len(await redis.keys(KEY_PREFIX + "*")) == 10
        assert 0 < await redis.ttl(KEY_PREFIX + f"{11:064x}") <= 600
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_redis_down_is_a_miss_not_a_failure(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(redis_url="redis://127.0.0.1:1/0")) as http:
        body = {"query": TITLES, "extensions": apq(sha(TITLES))}
        assert "errors" not in (await post(http, body)).json()
        missing = await post(http, {"extensions": apq(sha(TITLES))})
        assert error_codes(missing.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.slow
def test_two_workers_share_registrations(redis_url: str, tmp_path: Path) -> None:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    env = server_env(tmp_path, redis_url=redis_url)
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            registered = client.post(
                "/graphql", json={"query": TITLES, "extensions": apq(sha(TITLES))}
            )
            assert "errors" not in registered.json()
        for _ in range(12):  # a new connection each time: either worker may answer
            with httpx.Client(base_url=server.url, timeout=30) as client:
                answer = client.get("/graphql", params={"extensions": json.dumps(apq(sha(TITLES)))})
                assert answer.status_code == 200
                assert len(answer.json()["data"]["books"]["edges"]) == 3
    sync_redis.Redis.from_url(redis_url).flushdb()


# --- trusted documents ------------------------------------------------------------------


def manifest(tmp_path: Path, documents: dict[str, Any], name: str = "persisted.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(documents))
    return path


def test_manifest_formats_and_checks(tmp_path: Path) -> None:
    codegen = TrustedDocuments.load(manifest(tmp_path, {sha(TITLES): TITLES}))
    assert codegen.find(sha(TITLES)) == TITLES and TITLES in codegen
    md5 = hashlib.md5(TITLES.encode()).hexdigest()  # noqa: S324 (Relay's ids)
    relay = TrustedDocuments.load(manifest(tmp_path, {md5: TITLES}, "relay.json"))
    assert relay.find(md5) == TITLES and relay.find(sha(TITLES)) == TITLES
    apollo = manifest(
        tmp_path,
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": sha(TITLES), "name": "T", "type": "query", "body": TITLES}],
        },
        "apollo.json",
    )
    assert TrustedDocuments.load(apollo).find(sha(TITLES)) == TITLES
    with pytest.raises(ConfigError, match="not the sha256"):
        TrustedDocuments.load(manifest(tmp_path, {sha(BOOKS): TITLES}, "wrong.json"))
    with pytest.raises(ConfigError, match="map each id"):
        TrustedDocuments.load(manifest(tmp_path, {"a": 1}, "bad.json"))
    with pytest.raises(ConfigError, match="cannot read"):
        TrustedDocuments.load(tmp_path / "absent.json")


def test_trusted_only_needs_a_manifest(seeded_db: ScratchDatabase) -> None:
    with pytest.raises(ConfigError, match="needs a manifest"):
        create_app(seeded_db.settings(trusted_documents_only=True))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "strawberry"])
async def test_trusted_documents_only(
    empty_db: ScratchDatabase, tmp_path: Path, compiled: bool
) -> None:
    md5 = hashlib.md5(BOOKS.encode()).hexdigest()  # noqa: S324 (Relay's ids)
    # The app's own sign-in operations are in its manifest, as any first-party client's are.
    signing_in = {sha(LOGIN): LOGIN, sha(REGISTER): REGISTER}
    path = manifest(tmp_path, {sha(TITLES): TITLES, md5: BOOKS, **signing_in})
    settings: dict[str, Any] = {
        "trusted_documents": path,
        "trusted_documents_only": True,
        "compiled_queries": compiled,
    }
    async with admin_session(empty_db, **settings) as session:
        http = session.http
        by_hash = await post(http, {"extensions": apq(sha(TITLES))})
        assert len(by_hash.json()["data"]["books"]["edges"]) == 3
        by_get = await get(http, extensions=apq(sha(TITLES)))
        assert by_get.json() == by_hash.json()
        for document_id in (f"sha256:{sha(TITLES)}", sha(TITLES)):
            assert (await post(http, {"documentId": document_id})).json() == by_hash.json()
        relay = await post(http, {"documentId": md5, "variables": {"first": 1}})
        assert len(relay.json()["data"]["books"]["edges"]) == 1
        assert "errors" not in (await post(http, {"query": TITLES})).json()
        unknown = await post(http, {"documentId": "nope"})
        assert error_codes(unknown.json()) == ["PERSISTED_QUERY_NOT_FOUND"]

        other = "query { categories { name } }"
        for token in (None, session.user_token):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for body in (
                {"query": other},
                {"query": other, "extensions": apq(sha(other))},
            ):
                refused = await post(http, body, **headers)
                assert error_codes(refused.json()) == ["FORBIDDEN"], refused.json()
                assert reason(refused.json()) == "TRUSTED_DOCUMENTS_ONLY"
            refused = await http.get("/graphql", params={"query": other}, headers=headers)
            assert error_codes(refused.json()) == ["FORBIDDEN"]
        # Nothing was registered: the hash alone is still unknown.
        alone = await post(http, {"extensions": apq(sha(other))})
        assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]

        admin = {"Authorization": f"Bearer {session.admin_token}"}
        allowed = await post(http, {"query": other, "extensions": apq(sha(other))}, **admin)
        assert "errors" not in allowed.json()
        assert error_codes((await post(http, {"extensions": apq(sha(other))})).json()) == [
            "PERSISTED_QUERY_NOT_FOUND"
        ]
        forged = await post(http, {"query": other}, Authorization="Bearer forged")
        assert error_codes(forged.json()) == ["UNAUTHENTICATED"]
        form = await http.post(
            "/graphql",
            content=f"query={other}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert error_codes(form.json()) == ["FORBIDDEN"]
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()  # for the admins


async def test_manifest_documents_with_automatic_registration_off(
    seeded_db: ScratchDatabase, tmp_path: Path
) -> None:
    path = manifest(tmp_path, {sha(TITLES): TITLES})
    settings = seeded_db.settings(trusted_documents=path, persisted_queries=False)
    async with app_client(settings) as http:
        assert "errors" not in (await post(http, {"extensions": apq(sha(TITLES))})).json()
        other = "query { categories { slug } }"
        assert (
            "errors"
            not in (await post(http, {"query": other, "extensions": apq(sha(other))})).json()
        )
        alone = await post(http, {"extensions": apq(sha(other))})
        assert error_codes(alone.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_trusted_documents_without_only_mode(
    seeded_db: ScratchDatabase, tmp_path: Path
) -> None:
    path = manifest(tmp_path, {sha(TITLES): TITLES})
    async with app_client(seeded_db.settings(trusted_documents=path)) as http:
        assert "errors" not in (await post(http, {"extensions": apq(sha(TITLES))})).json()
        other = "query { categories { slug } }"
        assert "errors" not in (await post(http, {"query": other})).json()
        registered = await post(http, {"query": other, "extensions": apq(sha(other))})
        assert "errors" not in registered.json()
        assert "errors" not in (await post(http, {"extensions": apq(sha(other))})).json()


# --- Apollo Client ----------------------------------------------------------------------


@pytest.mark.slow
def test_apollo_clients_persisted_query_link(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (APOLLO_DIR / "node_modules" / "@apollo" / "client").exists():
        message = "needs node and `npm ci --prefix tests/server/apollo`"
        if IN_CI:
            pytest.fail(f"CI must not skip: {message}")
        pytest.skip(message)
    env = server_env(tmp_path)
    with running_server(env, tmp_path / "server.log") as server:
        done = subprocess.run(
            [node, str(APOLLO_DIR / "persisted.mjs"), server.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for run in report.values():
        assert run["error"] is None, run
        assert len(run["data"]["books"]["edges"]) == 2
    first, again, posted = report["first"], report["again"], report["posted"]
    # Hash alone by GET, not found; then hash and query by POST, registered and answered.
    assert [(s["method"], s["withQuery"]) for s in first["sent"]] == [
        ("GET", False),
        ("POST", True),
    ]
    assert all(s["status"] == 200 for s in first["sent"])
    # A client that never sent the text is answered from the hash alone, by GET or POST.
    assert [(s["method"], s["withQuery"]) for s in again["sent"]] == [("GET", False)]
    assert [(s["method"], s["withQuery"]) for s in posted["sent"]] == [("POST", False)]
