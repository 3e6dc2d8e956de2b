"""What a crawl's status says, which start URLs are refused, and a crawler dying with its worker.

* A crawl that stored nothing (the site refused the connection, the start page redirected
  off the site) is ``FAILED`` with its reason; one that stored books but did not see the
  whole site is ``PARTIAL``; only a complete crawl is ``SUCCEEDED``.
* Start URLs with an invalid port are refused by ``startCrawl`` and by ``scrapy crawl``.
* A crawler whose worker is killed (``kill -9``) dies at once, not minutes later.

All against the local mirror, on both databases.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from bookql.core.errors import BadUserInput
from bookql.core.processes import process_alive
from bookql.crawls.job import CRAWL_JOB
from bookql.crawls.launcher import checked_start_url
from bookql.crawls.runs import create_run
from bookql.crawls.tables import CrawlStatus
from bookql.db.engine import create_async_db_engine
from bookql.jobs.queue import enqueue
from tests.conftest import ScratchDatabase, error_codes
from tests.crawls.test_crawl_api import crawl_env, enqueue_crawl, small_site
from tests.support.admin_session import admin_session
from tests.support.crawling import CRAWLER, Stored, crawl_command, run_crawl
from tests.support.crawling import crawl_env as command_env
from tests.support.mirror import MirrorSite
from tests.support.workers import Tables, running_worker, start_worker, wait_until

pytestmark = pytest.mark.slow  # real crawls, worker processes

INVALID_PORTS = ["70000", "65536", "abc", "-1", "0"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, site: MirrorSite, redirects: dict[str, str], slow: tuple[str, float] | None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.site = site
        self.redirects = redirects
        self.slow = slow


class _Handler(BaseHTTPRequestHandler):
    """The mirror, except paths that redirect elsewhere and (optionally) slow product pages."""

    server: _Server

    def do_GET(self) -> None:
        target = self.server.redirects.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        slow = self.server.slow
        if slow is not None and self.path.startswith(slow[0]):
            time.sleep(slow[1])
        response = self.server.site.get(self.path)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        with suppress(OSError):  # the crawler went away
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def serving(
    site: MirrorSite,
    redirects: dict[str, str] | None = None,
    slow: tuple[str, float] | None = None,
) -> Iterator[str]:
    """The mirror on 127.0.0.1 with redirects; yields its base URL (no trailing slash)."""
    server = _Server(site, redirects or {}, slow)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A port nothing listens on (just released by the OS)."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def stored(empty_db: ScratchDatabase) -> Iterator[Stored]:
    reader = Stored(empty_db)
    yield reader
    reader.close()


def test_a_crawl_that_stored_nothing_failed(empty_db: ScratchDatabase, stored: Stored) -> None:
    run_crawl(empty_db, f"http://127.0.0.1:{closed_port()}")
    refused = stored.runs()[-1]
    assert (refused.status, refused.pages, refused.items, refused.complete) == (
        "FAILED",
        0,
        0,
        False,
    )
    assert refused.message.startswith("nothing was stored: a listing page could not be fetched")
    assert "refused" in refused.message.lower()
    assert refused.errors == 1

    with serving(MirrorSite(), {"/": "http://localhost:9/elsewhere"}) as base_url:
        run_crawl(empty_db, base_url)
    away = stored.runs()[-1]
    assert (away.status, away.pages, away.items) == ("FAILED", 0, 0)
    assert "redirected off the site, to 'localhost'" in away.message
    assert away.errors == 1
    assert stored.books() == {}


def test_a_crawl_that_stored_books_but_missed_some_is_partial(
    empty_db: ScratchDatabase, stored: Stored
) -> None:
    site = small_site()
    [first, second, *_] = site.books()
    product = site.product_url_path(first["upc"])
    site.fail(site.product_url_path(second["upc"]), 404)
    with serving(site, {product: "http://localhost:9" + product}) as base_url:
        run_crawl(empty_db, base_url)
    [run] = stored.runs()
    assert (run.status, run.complete, run.items, run.errors) == ("PARTIAL", False, 8, 2)
    assert "1 pages redirected off the site, not followed" in run.message
    assert "1 pages could not be fetched" in run.message
    assert "removals not applied" in run.message

    with serving(site) as base_url:  # the redirect gone, one page still missing
        run_crawl(empty_db, base_url)
    assert stored.runs()[-1].status == "PARTIAL"
    site.reset()
    with serving(small_site()) as base_url:
        run_crawl(empty_db, base_url)
    last = stored.runs()[-1]
    assert (last.status, last.complete, last.message) == ("SUCCEEDED", True, None)


@pytest.mark.parametrize("port", INVALID_PORTS)
def test_start_urls_with_invalid_ports_are_refused(port: str) -> None:
    with pytest.raises(BadUserInput, match="invalid port"):
        checked_start_url(f"http://127.0.0.1:{port}/", ["127.0.0.1"])
    assert checked_start_url("http://127.0.0.1:8080/", ["127.0.0.1"]) == "http://127.0.0.1:8080/"


async def test_start_crawl_refuses_invalid_ports(empty_db: ScratchDatabase) -> None:
    async with admin_session(
        empty_db, seeded=False, crawl_allowed_hosts=["127.0.0.1"], run_jobs_in_server=False
    ) as client:
        for port in INVALID_PORTS:
            body = await client.execute(
                "mutation($u: String) { startCrawl(input: {startUrl: $u}) { id } }",
                {"u": f"http://127.0.0.1:{port}/"},
                token=client.admin_token,
            )
            assert error_codes(body) == ["BAD_USER_INPUT"], (port, body)
        runs = await client.admin("{ crawlRuns { totalCount } }")
        assert runs["crawlRuns"]["totalCount"] == 0


@pytest.mark.parametrize("port", ["70000", "abc"])
def test_scrapy_crawl_refuses_invalid_ports(
    empty_db: ScratchDatabase, stored: Stored, port: str
) -> None:
    done = subprocess.run(
        crawl_command(f"http://127.0.0.1:{port}"),
        cwd=CRAWLER,
        env=command_env(empty_db),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "start_url has an invalid port" in done.stderr
    assert stored.runs() == []  # refused before a run was recorded


def test_the_crawler_dies_with_its_killed_worker(empty_db: ScratchDatabase, tmp_path: Path) -> None:
    """kill -9 of the worker: its crawler (mid-download of slow pages) is gone at once."""
    env = crawl_env(empty_db, job_lease_seconds="30")
    tables = Tables(empty_db)
    try:
        with serving(small_site(), slow=("/catalogue/", 60.0)) as base_url:
            run_id, _ = enqueue_crawl(env, base_url + "/")
            worker = start_worker(env, tmp_path / "worker.log")
            run: Any = wait_until(
                lambda: (r := tables.run(run_id)).status == "RUNNING" and r.pid and r,
                "the crawl to start",
            )
            time.sleep(1.0)  # product pages requested and hanging
            assert process_alive(run.pid)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            killed_at = time.monotonic()
            wait_until(lambda: not process_alive(run.pid), "the crawler to die", timeout=30)
            outlived = time.monotonic() - killed_at
    finally:
        tables.close()
    assert outlived < 5.0, f"the crawler outlived its worker by {outlived:.1f} s"


def test_the_die_with_parent_hook_is_linux_only() -> None:
    from bookql.crawls.job import die_with_parent

    hook = die_with_parent()
    assert (hook is not None) == sys.platform.startswith("linux")


def test_a_queued_crawl_that_could_not_start_failed_with_its_reason(
    empty_db: ScratchDatabase, tmp_path: Path
) -> None:
    """A run queued past the checks (an older release, a hand-written row) fails, saying why."""
    env = crawl_env(empty_db, job_max_attempts="1")

    async def queue_bad_run() -> int:
        engine = create_async_db_engine(empty_db.settings())
        try:

            async def job(conn: AsyncConnection, run_id: int) -> int:
                return await enqueue(conn, CRAWL_JOB, {"run_id": run_id}, max_attempts=1)

            run = await create_run(
                engine, "http://127.0.0.1:70000/", status=CrawlStatus.QUEUED, queue=job
            )
            return int(run.id)
        finally:
            await engine.dispose()

    run_id = asyncio.run(queue_bad_run())
    tables = Tables(empty_db)
    try:
        with running_worker(env, tmp_path / "worker.log"):
            run: Any = wait_until(
                lambda: (r := tables.run(run_id)).status not in ("QUEUED", "RUNNING") and r,
                "the run to end",
            )
    finally:
        tables.close()
    assert (run.status, run.pages, run.items) == ("FAILED", 0, 0)
    assert "start_url has an invalid port" in run.message
