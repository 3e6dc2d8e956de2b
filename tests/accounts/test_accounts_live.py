"""Accounts against a real ``bookql serve --workers 2`` on PostgreSQL and Redis: a refresh
token raced across both workers, the login throttle shared by them, and which peer may name
the client's address with ``X-Forwarded-For``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PostgresDatabases
from tests.support.live import bookql, running_server, server_env

pytestmark = pytest.mark.slow  # bookql serve --workers 2

PASSWORD = "two workers password"
AUTH = "accessToken refreshToken"
LOGIN = f"""mutation($u: String!, $p: String!) {{
    login(input: {{username: $u, password: $p}}) {{ {AUTH} }} }}"""
REFRESH = f"mutation($t: String!) {{ refresh(input: {{refreshToken: $t}}) {{ {AUTH} }} }}"
TRIALS = 20
RACERS = 8


@pytest.fixture(scope="module")
def server(
    postgres: PostgresDatabases, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """Two workers; uvicorn's own FORWARDED_ALLOW_IPS says "trust everyone", and
    BOOKQL_FORWARDED_ALLOW_IPS (its default, 127.0.0.1) must win over it."""
    data = tmp_path_factory.mktemp("accounts-live")
    env = server_env(
        data,
        database_url=postgres.create(),
        redis_url=redis_url,
        run_jobs_in_server="false",
        auto_seed="false",
    )
    env["FORWARDED_ALLOW_IPS"] = "*"  # uvicorn's own: bookql serve's setting must win over it
    env.pop("BOOKQL_FORWARDED_ALLOW_IPS", None)
    bookql(env, "db", "upgrade")
    bookql(env, "users", "create", "admin", "--admin", stdin=PASSWORD + "\n")
    with running_server(env, data / "server.log", workers=2) as live:
        yield live.url, redis_url


@pytest.fixture
def url(server: tuple[str, str]) -> str:
    from redis import Redis

    Redis.from_url(server[1]).flushdb()
    return server[0]


def _post(
    url: str,
    query: str,
    *,
    source: str = "127.0.0.1",
    forwarded: str | None = None,
    **variables: Any,
) -> dict[str, Any]:
    """One request on a connection of its own (so it may land on either worker), from the
    given loopback address, with an ``X-Forwarded-For`` if given."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, timeout=30, transport=transport) as client:
        response = client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


async def _race(url: str, token: str) -> list[dict[str, Any]]:
    async def one() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.post(
                "/graphql", json={"query": REFRESH, "variables": {"t": token}}
            )
            body: dict[str, Any] = response.json()
            return body

    return list(await asyncio.gather(*(one() for _ in range(RACERS))))


def test_a_refresh_raced_across_workers_leaves_no_live_session(url: str) -> None:
    survivors = []
    for trial in range(TRIALS):
        session = _post(url, LOGIN, u="admin", p=PASSWORD)["data"]["login"]
        bodies = asyncio.run(_race(url, session["refreshToken"]))
        won = [body["data"]["refresh"] for body in bodies if not body.get("errors")]
        assert len(won) == 1, f"trial {trial}: {len(won)} won"
        successor = _post(url, REFRESH, t=won[0]["refreshToken"])
        if not _codes(successor):
            survivors.append(trial)
    assert survivors == [], f"a successor outlived a detected reuse in trials {survivors}"


def test_an_attacker_does_not_lock_the_admin_out_of_either_worker(url: str) -> None:
    guesses = [
        _codes(_post(url, LOGIN, forwarded="203.0.113.7", u="admin", p=f"guess {i}!!"))
        for i in range(8)
    ]
    assert guesses == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]] * 3  # one count for both
    for _ in range(4):
        admin = _post(url, LOGIN, forwarded="198.51.100.2", u="admin", p=PASSWORD)
        assert _codes(admin) == []


def test_only_a_trusted_proxy_names_the_client(url: str) -> None:
    """From 127.0.0.1 (a trusted proxy) each X-Forwarded-For is another client; from
    127.0.0.2 the header is ignored, whatever uvicorn's FORWARDED_ALLOW_IPS says, and every
    failure counts against 127.0.0.2 itself: the sixth attempt is refused."""
    trusted = [
        _codes(_post(url, LOGIN, forwarded=f"10.1.0.{i}", u="admin", p="wrong!!!"))
        for i in range(1, 8)
    ]
    assert trusted == [["UNAUTHENTICATED"]] * 7
    spoofed = [
        _codes(
            _post(url, LOGIN, source="127.0.0.2", forwarded=f"10.2.0.{i}", u="admin", p="wrong!!!")
        )
        for i in range(1, 8)
    ]
    assert spoofed == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]] * 2
