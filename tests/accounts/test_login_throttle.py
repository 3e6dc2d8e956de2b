"""Login throttling that cannot be turned against the real user, on both databases, in
process memory and in Redis: failures lock one username at one address, one address across
usernames, and only slow a username down across addresses; correct logins in flight never
count; a refusal says what it counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bookql.core.config import Settings
from bookql.server.app import create_app
from tests.accounts.test_accounts import LOGIN, PASSWORD, SECRET, make_admin
from tests.conftest import GraphQLClient, ScratchDatabase, error_codes

pytestmark = pytest.mark.slow  # throttling windows and slowdowns, waited out

ATTACKER, ADMIN, THIRD = "203.0.113.7", "198.51.100.2", "192.0.2.44"


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that put the counters in process memory, or in a flushed Redis database."""
    if request.param == "memory":
        return {}
    from redis.asyncio import Redis

    url: str = request.getfixturevalue("redis_url")
    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()
    return {"redis_url": url}


@asynccontextmanager
async def clients_at(settings: Settings, *addresses: str) -> AsyncIterator[list[GraphQLClient]]:
    """One app, lifespan included, and a client at each address (as uvicorn reports the
    peer, or the X-Forwarded-For of a trusted proxy)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        clients = []
        for address in addresses:
            transport = httpx.ASGITransport(app=app, client=(address, 40_000))
            http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            clients.append(GraphQLClient(await stack.enter_async_context(http)))
        yield clients


async def login(client: GraphQLClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    return await client.execute(LOGIN, {"u": username, "p": password})


def codes(bodies: list[dict[str, Any]]) -> list[str]:
    return [(error_codes(body) or ["OK"])[0] for body in bodies]


async def test_an_attacker_elsewhere_does_not_lock_the_admin_out(
    empty_db: ScratchDatabase, counters: dict[str, Any]
) -> None:
    await make_admin(empty_db, "root")
    settings = empty_db.settings(jwt_secret=SECRET, **counters)
    async with clients_at(settings, ATTACKER, ADMIN) as (attacker, admin):
        guesses = [await login(attacker, "root", f"guess number {i}") for i in range(10)]
        assert codes(guesses) == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"] * 5
        refusal = guesses[-1]["errors"][0]
        assert refusal["message"].startswith(
            "5 failed logins for this username from your address in the last 15 minutes: "
            "try again in "
        )
        assert 0 < refusal["extensions"]["retryAfter"] <= 900
        # even the right password waits at the attacker's address, but not at the admin's
        assert codes([await login(attacker, "root")]) == ["RATE_LIMITED"]
        assert codes([await login(admin, "root")]) == ["OK"]
        assert codes([await login(admin, "root", "a typo, once")]) == ["UNAUTHENTICATED"]
        assert codes([await login(admin, "root")]) == ["OK"]


async def test_the_attacker_and_the_admin_on_two_workers(
    empty_db: ScratchDatabase, redis_url: str
) -> None:
    """With Redis, the counts are the service's: an attacker's address is refused on either
    worker, and the admin signs in on either."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    await make_admin(empty_db, "root")
    settings = empty_db.settings(jwt_secret=SECRET, redis_url=redis_url)
    async with (
        clients_at(settings, ATTACKER, ADMIN) as first,
        clients_at(settings, ATTACKER, ADMIN) as second,
    ):
        guesses = [await login((first, second)[i % 2][0], "root", "wrong!!!") for i in range(8)]
        assert codes(guesses) == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"] * 3
        assert codes([await login(first[1], "root"), await login(second[1], "root")]) == [
            "OK",
            "OK",
        ]


async def test_one_address_is_limited_across_usernames(
    empty_db: ScratchDatabase, counters: dict[str, Any]
) -> None:
    await make_admin(empty_db, "root")
    settings = empty_db.settings(jwt_secret=SECRET, login_max_failures_per_address=3, **counters)
    async with clients_at(settings, ATTACKER, ADMIN) as (attacker, admin):
        sprayed = [await login(attacker, f"user{i}", "wrong password!") for i in range(5)]
        assert codes(sprayed) == ["UNAUTHENTICATED"] * 3 + ["RATE_LIMITED"] * 2
        assert sprayed[-1]["errors"][0]["message"].startswith(
            "3 failed logins from your address in the last 15 minutes: try again in "
        )
        assert codes([await login(attacker, "root")]) == ["RATE_LIMITED"]
        assert codes([await login(admin, "root")]) == ["OK"]


async def test_failures_from_many_addresses_slow_a_username_but_never_lock_it(
    empty_db: ScratchDatabase, counters: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await make_admin(empty_db, "root")
    settings = empty_db.settings(
        jwt_secret=SECRET,
        login_slowdown_failures_per_user=4,
        login_slowdown_seconds=0.5,
        **counters,
    )
    botnet = [f"10.66.0.{number}" for number in range(1, 7)]
    async with clients_at(settings, *botnet, ADMIN) as clients:
        *bots, admin = clients
        assert codes([await login(admin, "root")]) == ["OK"]
        with caplog.at_level(logging.INFO, logger="bookql.accounts.throttle"):
            first = [await login(bot, "root", "wrong password!") for bot in bots[:4]]
            assert not [r for r in caplog.records if r.message.startswith("login slowed")]
            started = time.monotonic()
            later = [await login(bot, "root", "wrong password!") for bot in bots[4:]]
            assert time.monotonic() - started >= 2 * 0.5
            started = time.monotonic()
            assert codes([await login(admin, "root")]) == ["OK"]  # slowed, not refused
            assert time.monotonic() - started >= 0.5
        assert codes(first + later) == ["UNAUTHENTICATED"] * 6
        slowed = [r for r in caplog.records if r.message.startswith("login slowed")]
        assert len(slowed) == 3


async def test_concurrent_correct_logins_are_never_refused(
    empty_db: ScratchDatabase, counters: dict[str, Any]
) -> None:
    """Twelve correct logins of one user from one address at once, with room for two in
    flight: they wait for one another, none is refused, and none is counted."""
    await make_admin(empty_db, "root")
    settings = empty_db.settings(
        jwt_secret=SECRET,
        login_max_failures_per_user_and_address=2,
        login_max_failures_per_address=2,
        **counters,
    )
    async with clients_at(settings, ADMIN) as (admin,):
        bodies = await asyncio.gather(*(login(admin, "root") for _ in range(12)))
        assert codes(bodies) == ["OK"] * 12
        # and nothing was counted: two failures still fit
        assert codes([await login(admin, "root", "wrong!!!") for _ in range(3)]) == [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "RATE_LIMITED",
        ]


async def test_parallel_guesses_cannot_outrun_the_limit(
    empty_db: ScratchDatabase, counters: dict[str, Any]
) -> None:
    await make_admin(empty_db, "root")
    settings = empty_db.settings(jwt_secret=SECRET, **counters)
    async with clients_at(settings, ATTACKER, ADMIN) as (attacker, admin):
        bodies = await asyncio.gather(*(login(attacker, "root", f"guess {i}!!") for i in range(12)))
        assert sorted(codes(bodies)) == ["RATE_LIMITED"] * 7 + ["UNAUTHENTICATED"] * 5
        assert codes([await login(admin, "root")]) == ["OK"]


def test_the_removed_per_user_lock_is_refused_naming_its_replacements() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"login_max_failures_per_user": 5})
    message = str(refused.value)
    assert "BOOKQL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS" in message
    assert "BOOKQL_LOGIN_SLOWDOWN_FAILURES_PER_USER" in message


@pytest.mark.parametrize(
    ("given", "kept"),
    [("127.0.0.1", "127.0.0.1"), (" 10.0.0.0/8, ::1 ", "10.0.0.0/8,::1"), ("*", "*")],
)
def test_trusted_proxies_are_addresses_or_networks(given: str, kept: str) -> None:
    assert Settings.model_validate({"forwarded_allow_ips": given}).forwarded_allow_ips == kept


def test_a_trusted_proxy_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings.model_validate({"forwarded_allow_ips": "127.0.0.1,proxy.example"})
