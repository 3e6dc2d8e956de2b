"""``bookql serve --workers 2`` on the local PostgreSQL and Redis: one service, not two.

Connections land on either worker, so each check opens a fresh connection per request:
login limits are shared through Redis, a model activated through one worker is served by
both within a second, and ``/metrics`` from either worker counts the requests of both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PostgresDatabases
from tests.support.live import bookql, post_graphql, running_server, server_env

pytestmark = pytest.mark.slow  # bookql serve --workers 2

PASSWORD = "two workers password"
LOGIN = """mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken } }"""
PREDICT = """mutation { predictPrice(input: {features: {category: "Poetry", rating: 3,
    availability: 5, title: "Poems", description: null}}) { modelVersion } }"""
ACTIVATE = """mutation($v: String!) { activateModel(input: {version: $v}) { version } }"""


@pytest.fixture
def two_workers(
    postgres: PostgresDatabases, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    env = server_env(
        tmp_path, database_url=postgres.create(), redis_url=redis_url, run_jobs_in_server="false"
    )
    bookql(env, "db", "upgrade")
    bookql(env, "seed")
    bookql(env, "users", "create", "admin", "--admin", stdin=PASSWORD + "\n")
    bookql(env, "users", "create", "guess", stdin=PASSWORD + "\n")
    for _ in range(2):
        bookql(env, "train")
    with running_server(env, tmp_path / "server.log", workers=2) as server:
        yield server.url, env


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def test_two_workers_share_limits_models_and_metrics(two_workers: tuple[str, Any]) -> None:
    url, env = two_workers
    from redis import Redis

    Redis.from_url(env["BOOKQL_REDIS_URL"]).flushdb()
    codes = [_codes(post_graphql(url, LOGIN, u="guess", p="wrong password")) for _ in range(7)]
    assert codes == [["UNAUTHENTICATED"]] * 5 + [["RATE_LIMITED"]] * 2  # one count for both

    token = post_graphql(url, LOGIN, u="admin", p=PASSWORD)["data"]["login"]["accessToken"]
    versions = [line.split()[0] for line in bookql(env, "models", "list").splitlines()[1:]]
    for version in versions[-2:]:
        assert post_graphql(url, ACTIVATE, token, v=version)["data"]["activateModel"]["version"]
        time.sleep(1.2)  # each worker looks at the active alias at most once a second
        served = {post_graphql(url, PREDICT, token)["data"]["predictPrice"]["modelVersion"]}
        for _ in range(9):
            served.add(post_graphql(url, PREDICT, token)["data"]["predictPrice"]["modelVersion"])
        assert served == {version}

    before = _requests(url)
    for _ in range(20):
        assert httpx.get(f"{url}/healthz").status_code == 200  # new connection each time
    after = _requests(url)
    assert after - before == 20 + 1  # every worker's requests, plus the first /metrics


def _requests(url: str) -> float:
    """``/healthz`` and ``/metrics`` requests answered so far, by every worker."""
    text = httpx.get(f"{url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bookql_http_requests_total"
        and sample.labels["route"] in ("/healthz", "/metrics")
    )
