"""CORS as a browser enforces it: headless Chromium on pages served from two other origins
calls the API; the listed one reads answers and refusals, the unlisted one is blocked."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import headless_chromium, require_chromium
from tests.support.live import free_port
from tests.support.live import live_server as serve

pytestmark = pytest.mark.slow  # headless Chromium

# Runs in the page: every call resolves to what the page's script could see.
CALLS = """
const [api, done] = [arguments[0], arguments[arguments.length - 1]];
const json = {"Content-Type": "application/json", "X-Request-ID": "from-the-browser"};
const seen = async (request) => {
  try {
    const response = await request;
    return {status: response.status, requestId: response.headers.get("X-Request-ID"),
            body: await response.json()};
  } catch (error) {
    return {blocked: String(error)};
  }
};
const socket = () => new Promise((resolve) => {
  const ws = new WebSocket(api.replace("http", "ws") + "/graphql", "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({type: "connection_init", payload: {}}));
  ws.onmessage = (event) => { resolve(JSON.parse(event.data).type); ws.close(); };
  ws.onclose = () => resolve("closed");
});
Promise.all([
  seen(fetch(api + "/graphql", {method: "POST", headers: json,
      body: JSON.stringify({query: "{ books(first: 1) { totalCount } }"})})),
  seen(fetch(api + "/graphql?query=" + encodeURIComponent("mutation { __typename }"))),
  seen(fetch(api + "/graphql", {method: "POST", headers: json,
      body: JSON.stringify({query: "{ __typename }", pad: "x".repeat(20000)})})),
  socket(),
]).then(([query, mutationOverGet, tooLarge, websocket]) =>
  done({query, mutationOverGet, tooLarge, websocket}));
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two static sites on other ports: the origin the API lists, and one it does not."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>frontend</title><p>frontend")
    handler = partial(_Quiet, directory=str(site))
    servers = [ThreadingHTTPServer(("127.0.0.1", free_port()), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        listed, unlisted = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
        yield listed, unlisted
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    binaries = require_chromium("the CORS browser test")
    with headless_chromium(binaries, tmp_path / "chromium") as driver:
        driver.set_script_timeout(30)
        yield driver


def test_a_listed_origin_is_answered_and_others_are_blocked(
    pages: tuple[str, str], browser: Any, tmp_path: Path
) -> None:
    listed, unlisted = pages
    env = {
        **os.environ,
        "BOOKQL_DATA_DIR": str(tmp_path),
        "BOOKQL_CORS_ORIGINS": listed,
        "BOOKQL_MAX_REQUEST_BYTES": "10000",
    }
    with serve(env, tmp_path / "server.log") as api:
        seen = {}
        for origin in (listed, unlisted):
            browser.get(f"{origin}/index.html")
            seen[origin] = browser.execute_async_script(CALLS, api)
    allowed, blocked = seen[listed], seen[unlisted]
    assert allowed["query"]["body"] == {"data": {"books": {"totalCount": 1000}}}
    assert allowed["query"]["requestId"] == "from-the-browser"  # exposed
    assert allowed["mutationOverGet"]["status"] == 405  # the refusal is readable
    assert allowed["mutationOverGet"]["body"]["errors"][0]["extensions"]["code"]
    assert allowed["tooLarge"]["status"] == 413
    assert allowed["tooLarge"]["body"]["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert allowed["websocket"] == "connection_ack"
    for call in ("query", "mutationOverGet", "tooLarge"):
        assert "TypeError" in blocked[call].get("blocked", ""), (call, blocked[call])
    assert blocked["websocket"] == "closed"
