"""Concurrent administrators' writes through ``bookql serve --workers 2`` on PostgreSQL and
Redis: each request on a connection of its own, so the racing edits land on either worker."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PostgresDatabases
from tests.support.live import bookql, post_graphql, running_server, server_env

pytestmark = pytest.mark.slow  # bookql serve --workers 2

PASSWORD = "racing admin password"
TRIALS = 10
LOGIN = """mutation($u: String!, $p: String!) {
    login(input: {username: $u, password: $p}) { accessToken } }"""
PRICED = "priceExclTax priceInclTax tax availability"
BOOK = f"id version {PRICED} priceHistory(first: 1) {{ {PRICED} }}"
CREATE = f"""mutation($upc: String!) {{
    createBook(input: {{upc: $upc, title: "Race", priceExclTax: 10.0, availability: 1,
        rating: 3, category: "race"}}) {{ book {{ {BOOK} }} }} }}"""
UPDATE = f"""mutation($input: UpdateBookInput!) {{
    updateBook(input: $input) {{ book {{ {BOOK} }} }} }}"""
READ = f"query($upc: String!) {{ book(upc: $upc) {{ {BOOK} }} }}"


@pytest.fixture
def server(
    postgres: PostgresDatabases, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """Two workers over a catalogue with a category of its own (Race), and an admin's token."""
    env = server_env(
        tmp_path, database_url=postgres.create(), redis_url=redis_url, run_jobs_in_server="false"
    )
    bookql(env, "db", "upgrade")
    bookql(env, "users", "create", "admin", "--admin", stdin=PASSWORD + "\n")
    with running_server(env, tmp_path / "server.log", workers=2) as live:
        token = _data(live.url, LOGIN, None, u="admin", p=PASSWORD)["login"]["accessToken"]
        _data(
            live.url,
            'mutation { createCategory(input: {name: "Race"}) { category { id } } }',
            token,
        )
        yield live.url, token


def _data(url: str, query: str, token: str | None, **variables: Any) -> dict[str, Any]:
    body = post_graphql(url, query, token, **variables)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or [{}]
    code: str | None = errors[0].get("extensions", {}).get("code")
    return code


def test_racing_edits_on_two_workers(server: tuple[str, str]) -> None:
    """Price and tax edited at once: both land, the shown price is their sum, the newest
    price point is the book; four edits from one version: one lands, three are CONFLICT."""
    url, token = server
    broken: list[tuple[Any, ...]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for trial in range(TRIALS):
            upc = f"race-{trial}"
            book_id = _data(url, CREATE, token, upc=upc)["createBook"]["book"]["id"]
            excl, tax, stock = 20.0 + trial, 1.0 + trial / 100, trial + 5
            edits = [
                {"id": book_id, "priceExclTax": excl},
                {"id": book_id, "tax": tax},
                {"id": book_id, "availability": stock},
            ]
            list(pool.map(lambda edit: _data(url, UPDATE, token, input=edit), edits))
            found = _data(url, READ, None, upc=upc)["book"]
            newest = found.pop("priceHistory")[0]
            prices = {"priceExclTax": excl, "priceInclTax": round(excl + tax, 2), "tax": tax}
            if found != {
                "id": book_id,
                "version": found["version"],
                **prices,
                "availability": stock,
            }:
                broken.append((trial, "lost update", found))
            if newest != {name: found[name] for name in newest}:
                broken.append((trial, "history behind", found, newest))
            same = [
                {"id": book_id, "version": found["version"], "title": f"T{n}"} for n in range(4)
            ]
            bodies = pool.map(lambda edit: post_graphql(url, UPDATE, token, input=edit), same)
            codes = sorted(str(_code(body)) for body in bodies)
            if codes != ["CONFLICT"] * 3 + ["None"]:
                broken.append((trial, "versions", codes))
    assert broken == [], f"{len(broken)} problems in {TRIALS} trials: {broken[:3]}"
