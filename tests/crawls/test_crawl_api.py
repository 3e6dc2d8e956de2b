"""Administrators start crawls over GraphQL and watch them progress over a subscription.

The crawl is a queued job: the server runs it on the embedded default, a `bookql worker`
process on PostgreSQL. A crawl survives its worker stopping, or dying.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bookql.core.processes import process_alive
from bookql.server.app import create_app
from tests.accounts.test_accounts import LOGIN, PASSWORD, REGISTER, SECRET, make_admin
from tests.conftest import ScratchDatabase
from tests.support.crawling import FAST
from tests.support.mirror import MirrorSite, serve_mirror
from tests.support.workers import (
    Tables,
    run_bookql,
    running_worker,
    start_worker,
    wait_until,
    worker_env,
)

pytestmark = pytest.mark.slow  # real crawls run by queued jobs and worker processes

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


def small_site() -> MirrorSite:
    site = MirrorSite()
    for book in site.books()[KEEP:]:
        site.remove_book(book["upc"])
    return site


def crawl_env(database: ScratchDatabase, delay: str = "0", **settings: str) -> dict[str, str]:
    """A worker's environment: crawls of the local mirror, ``delay`` seconds between pages."""
    flags = ",".join(f"{name}={value}" for name, value in {**FAST, "DOWNLOAD_DELAY": delay}.items())
    return worker_env(database, crawl_allowed_hosts="127.0.0.1", crawl_settings=flags, **settings)


def jobs_runner(database: ScratchDatabase, log: Path) -> AbstractContextManager[Any]:
    """Whoever runs jobs by default: the server itself on SQLite, a worker on PostgreSQL."""
    if database.backend == "sqlite":
        return nullcontext()
    return running_worker(crawl_env(database), log)


def test_admins_start_and_watch_a_crawl(empty_db: ScratchDatabase, tmp_path: Path) -> None:
    site = small_site()
    asyncio.run(make_admin(empty_db))
    with serve_mirror(site) as base_url, jobs_runner(empty_db, tmp_path / "worker.log"):
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
    from bookql.core.config import Settings
    from bookql.core.errors import BadUserInput
    from bookql.crawls.launcher import checked_start_url

    monkeypatch.setenv("BOOKQL_CRAWL_ALLOWED_HOSTS", hosts)
    allowed = Settings().crawl_allowed_hosts
    assert (
        checked_start_url("https://BOOKS.toscrape.com/", allowed) == "https://BOOKS.toscrape.com/"
    )
    with pytest.raises(BadUserInput):
        checked_start_url("http://169.254.169.254/latest/meta-data/", allowed)


@pytest.fixture
def tables(empty_db: ScratchDatabase) -> Iterator[Tables]:
    tables = Tables(empty_db)
    yield tables
    tables.close()


def enqueue_crawl(env: dict[str, str], start_url: str) -> tuple[int, int]:
    """``bookql jobs enqueue crawl``, as a schedule would run it: (run id, job id)."""
    result = run_bookql(env, "jobs", "enqueue", "crawl", "--start-url", start_url)
    assert result.returncode == 0, result.stderr
    queued = re.match(r"queued crawl run (\d+) \(job (\d+)\)", result.stdout)
    assert queued is not None, result.stdout
    return int(queued[1]), int(queued[2])


def test_a_crawl_survives_its_workers(
    empty_db: ScratchDatabase, tables: Tables, tmp_path: Path
) -> None:
    """A stopping worker gives the crawl back; a killed one's crawler stops and is run again."""
    env = crawl_env(empty_db, delay="0.3", job_lease_seconds="2", job_shutdown_grace_seconds="0")
    workers_log = tmp_path / "workers.log"
    crawl_log = empty_db.data_dir / "crawls"
    with serve_mirror(small_site()) as base_url:
        run_id, job_id = enqueue_crawl(env, base_url + "/")
        assert tables.run(run_id).status == "QUEUED"
        # one crawl at a time, queued ones included
        refused = run_bookql(env, "jobs", "enqueue", "crawl", "--start-url", base_url + "/")
        assert refused.returncode == 1
        assert "already queued or running" in refused.stderr

        stopping = start_worker(env, workers_log)
        wait_until(lambda: tables.run(run_id).status == "RUNNING", "the first attempt")
        stopping.send_signal(signal.SIGTERM)
        assert stopping.wait(timeout=60) == 0
        run, job = tables.run(run_id), tables.job(job_id)
        assert (run.status, run.message) == ("QUEUED", "its worker stopped; queued again")
        assert (job.status, job.attempts) == ("QUEUED", 0)

        doomed = start_worker(env, workers_log)
        wait_until(lambda: tables.run(run_id).status == "RUNNING", "the second attempt")
        crawler = tables.run(run_id).pid
        doomed.kill()
        doomed.wait()
        log = crawl_log / f"run-{run_id}.log"
        wait_until(lambda: not process_alive(crawler), "the crawler to die with its worker")
        assert tables.run(run_id).status == "RUNNING"  # left to its job

        with running_worker(env, workers_log):
            wait_until(lambda: tables.job(job_id).status == "SUCCEEDED", "the job to succeed")
    run, job = tables.run(run_id), tables.job(job_id)
    assert (run.status, run.complete, run.items, run.errors) == ("SUCCEEDED", True, KEEP, 0)
    assert (job.status, job.attempts) == ("SUCCEEDED", 2)
    assert "stopped renewing its claim" in job.error
    assert "interrupted (shutdown)" in log.read_text()
    assert not process_alive(run.pid)
