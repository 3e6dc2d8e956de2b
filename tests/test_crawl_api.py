"""Administrators start crawls over GraphQL and watch them progress over a subscription."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient

from bookql.api.app import create_app
from tests.conftest import ScratchDatabase
from tests.crawling import FAST
from tests.mirror import MirrorSite, serve_mirror
from tests.test_accounts import LOGIN, PASSWORD, REGISTER, SECRET, make_admin

START = "mutation($url: String) { startCrawl(input: {startUrl: $url}) { id status startUrl } }"
PROGRESS = """subscription($id: ID!) { crawlProgress(runId: $id) {
    status complete pages items newBooks errors message } }"""
KEEP = 10


def _post(http: TestClient, query: str, variables: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    ).json()


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def test_admins_start_and_watch_a_crawl(empty_db: ScratchDatabase) -> None:
    site = MirrorSite()
    for book in site.books()[KEEP:]:
        site.remove_book(book["upc"])
    asyncio.run(make_admin(empty_db))
    with serve_mirror(site) as base_url:
        settings = empty_db.settings(
            jwt_secret=SECRET, crawl_allowed_hosts=["127.0.0.1"], crawl_settings=FAST
        )
        with TestClient(create_app(settings)) as http:
            admin = _post(http, LOGIN, {"u": "root", "p": PASSWORD})["data"]["login"]["accessToken"]
            user = _post(http, REGISTER, {"u": "reader", "p": PASSWORD})["data"]["register"]
            url = base_url + "/"

            assert _codes(_post(http, START, {"url": url})) == ["UNAUTHENTICATED"]
            assert _codes(_post(http, START, {"url": url}, user["accessToken"])) == ["FORBIDDEN"]
            for bad in ("https://example.com/", "file:///etc/passwd", "http://user:pw@127.0.0.1/"):
                assert _codes(_post(http, START, {"url": bad}, admin)) == ["BAD_USER_INPUT"]

            run = _post(http, START, {"url": url}, admin)["data"]["startCrawl"]
            assert run["status"] == "QUEUED"
            assert run["startUrl"] == url
            assert _codes(_post(http, START, {"url": url}, admin)) == ["CONFLICT"]

            events = []
            with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                ws.send_json(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {admin}"}}
                )
                assert ws.receive_json()["type"] == "connection_ack"
                ws.send_json(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": PROGRESS, "variables": {"id": run["id"]}},
                    }
                )
                while True:
                    message = ws.receive_json()
                    if message["type"] == "complete":
                        break
                    assert message["type"] == "next", message
                    events.append(message["payload"]["data"]["crawlProgress"])
            final = events[-1]
            assert final["status"] == "SUCCEEDED"
            assert final["complete"] is True
            assert (final["items"], final["newBooks"], final["errors"]) == (KEEP, KEEP, 0)
            assert final["pages"] == KEEP + 1

            listed = _post(
                http,
                "{ crawlRuns(first: 5) { totalCount edges { node { id status } } } }",
                {},
                admin,
            )
            assert listed["data"]["crawlRuns"]["totalCount"] == 1
            assert listed["data"]["crawlRuns"]["edges"][0]["node"] == {
                "id": run["id"],
                "status": "SUCCEEDED",
            }
            node = _post(
                http,
                "query($id: ID!) { node(id: $id) { ... on CrawlRun { items } } }",
                {"id": run["id"]},
                admin,
            )
            assert node["data"]["node"] == {"items": KEEP}
            hidden = _post(
                http,
                "query($id: ID!) { crawlRun(id: $id) { items } }",
                {"id": run["id"]},
                user["accessToken"],
            )
            assert _codes(hidden) == ["FORBIDDEN"]
            books = _post(http, "{ books { totalCount } }", {})
            assert books["data"]["books"]["totalCount"] == KEEP


def test_the_crawler_must_be_installed(empty_db: ScratchDatabase, tmp_path: Any) -> None:
    asyncio.run(make_admin(empty_db))
    settings = empty_db.settings(jwt_secret=SECRET, crawler_dir=tmp_path)
    with TestClient(create_app(settings)) as http:
        admin = _post(http, LOGIN, {"u": "root", "p": PASSWORD})["data"]["login"]["accessToken"]
        body = _post(http, START, {"url": None}, admin)
    assert _codes(body) == ["SERVICE_UNAVAILABLE"]


@pytest.mark.parametrize("hosts", ["books.toscrape.com", "books.toscrape.com,mirror.internal"])
def test_allowed_hosts_setting(hosts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bookql.api.errors import BadUserInput
    from bookql.core.config import Settings
    from bookql.crawls.launcher import checked_start_url

    monkeypatch.setenv("BOOKQL_CRAWL_ALLOWED_HOSTS", hosts)
    allowed = Settings().crawl_allowed_hosts
    assert (
        checked_start_url("https://BOOKS.toscrape.com/", allowed) == "https://BOOKS.toscrape.com/"
    )
    with pytest.raises(BadUserInput):
        checked_start_url("http://169.254.169.254/latest/meta-data/", allowed)
