"""The web console in a real browser: every screen, with the figures the database holds.

One server (SQLite, jobs run by the server, only trusted documents accepted, access tokens
of a minute) and one Chromium session walk the console as its users would: the overview,
browsing with filters, order and pages, a book page, signing in, model versions (held-out
points, activation after a confirmation), a predicted price, a crawl of the offline mirror
watched live, the users screen, a token refresh, a reload, signing out. axe-core checks every
screen for serious or critical accessibility violations; the browser reports no error (a
Content-Security-Policy violation would be one) and loads nothing from another origin.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bookql.server import console
from tests.crawls.test_crawl_api import KEEP, small_site
from tests.support.browser import headless_chromium, require_chromium
from tests.support.crawling import FAST
from tests.support.live import bookql, live_server, server_env
from tests.support.mirror import serve_mirror

pytestmark = pytest.mark.slow  # headless Chromium, a crawl and two trainings

AXE = Path(__file__).parent / "console" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery"
LIGHT = "a897fe39b1053632"
MARKUP_TITLE = '<img src=x onerror="window.pwned=1">Attic <b>bold</b> & co'
MARKUP_TEXT = "<script>window.pwned=2</script> Plain <i>text</i>, never HTML."
REFRESH_KEY = "bookql.console.refreshToken"


def money(value: float | None) -> str:
    return "—" if value is None else f"£{value:,.2f}"


class Api:
    """The GraphQL API as the test's reference: the console's own documents by hash, and,
    as an administrator, any query (trusted-only mode excepts administrators)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.ids = {
            n: hashlib.sha256(t.encode()).hexdigest() for n, t in console.operations().items()
        }
        self.token = ""

    def console(self, name: str, **variables: Any) -> Any:
        body = {"documentId": f"sha256:{self.ids[name]}", "variables": variables}
        return self.http.post("/graphql", json=body).json()

    def admin(self, query: str, **variables: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        body = self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        ).json()
        assert "errors" not in body, body
        return body["data"]


class Walk:
    """The browser, and what the walk checks on each screen."""

    def __init__(self, browser: Any, url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.browser = browser
        self.url = url
        self.wait = WebDriverWait(browser, 30)
        self.accessibility: dict[str, list[Any]] = {}

    def js(self, script: str, *args: Any) -> Any:
        return self.browser.execute_script(script, *args)

    def until(self, condition: Callable[[], Any], timeout: float = 30) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.browser, timeout).until(lambda _: condition())

    def go(self, hash_: str, screen: str) -> None:
        self.js("window.location.hash = arguments[0]", hash_)
        self.shown(screen)

    def shown(self, screen: str) -> None:
        self.until(
            lambda: self.js(
                "const m = document.getElementById('main');"
                "return m.dataset.screen === arguments[0] && !m.hasAttribute('aria-busy')",
                screen,
            )
        )

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return str(self.js("return document.querySelector(arguments[0]).textContent", css))

    def rows(self, table: str) -> list[list[str]]:
        rows: list[list[str]] = self.js(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".map(r => [...r.cells].map(c => c.textContent))",
            table,
        )
        return rows

    def figure(self, name: str) -> str:
        return self.text(f'[data-figure="{name}"]')

    def charts_drawn(self, scope: str = "main") -> int:
        return int(
            self.until(
                lambda: self.js(
                    "const charts = document.querySelectorAll(arguments[0] + ' .chart');"
                    "return charts.length && [...charts].every(c => c.querySelector('canvas'))"
                    " && charts.length",
                    scope,
                )
            )
        )

    def audit(self, screen: str) -> None:
        """axe-core on the page as it is: serious and critical violations are kept."""
        if not self.js("return typeof window.axe === 'object'"):
            self.js(AXE.read_text())
        found = self.browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then("
            "  r => done(r.violations.map(v => ({id: v.id, impact: v.impact,"
            "    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))),"
            "  e => done([{id: 'axe failed', impact: 'critical', nodes: [String(e)]}]))"
        )
        self.accessibility[screen] = [v for v in found if v["impact"] in ("serious", "critical")]


@pytest.fixture
def console_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A seeded server with an administrator, a reader, a trained version (not active),
    crawls allowed on the mirror only, and only trusted documents accepted."""
    other = "{ categories { name } }"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({hashlib.sha256(other.encode()).hexdigest(): other}))
    with serve_mirror(small_site()) as mirror:
        env = server_env(
            tmp_path,
            crawl_allowed_hosts="127.0.0.1",
            crawl_start_url=f"{mirror}/",
            # Slow enough (11 pages, 0.3 s apart) for progress to be reported while it runs.
            crawl_settings=",".join(
                f"{k}={v}" for k, v in {**FAST, "DOWNLOAD_DELAY": "0.3"}.items()
            ),
            access_token_ttl_seconds=60,
            trusted_documents=manifest,
            trusted_documents_only="true",
            job_poll_seconds=0.2,
        )
        bookql(env, "db", "upgrade")
        bookql(env, "seed")
        bookql(env, "users", "create", "root", "--admin", stdin=f"{PASSWORD}\n{PASSWORD}\n")
        bookql(env, "users", "create", "reader", stdin=f"{PASSWORD}\n{PASSWORD}\n")
        bookql(env, "train")
        with live_server(env, tmp_path / "server.log") as url:
            yield url, tmp_path / "bookql.db"


def test_every_screen_of_the_console(console_server: tuple[str, Path], tmp_path: Path) -> None:
    binaries = require_chromium(
        "the console browser test",
        also=console.libraries_installed() and AXE.is_file(),
        needs=", the console's libraries (sh scripts/fetch-console.sh) and axe-core "
        "(npm ci --prefix tests/server/console)",
    )
    url, database = console_server
    api = Api(url)
    login = api.console("ConsoleLogin", username="root", password=PASSWORD)
    api.token = login["data"]["login"]["accessToken"]
    refused = api.http.post("/graphql", json={"query": "{ stats { totalBooks } }"}).json()
    assert refused["errors"][0]["extensions"]["reason"] == "TRUSTED_DOCUMENTS_ONLY"
    light = api.admin(f'{{ book(upc: "{LIGHT}") {{ id }} }}')["book"]["id"]
    api.admin(
        "mutation($id: ID!, $t: String!, $d: String!) {"
        " updateBook(input: {id: $id, title: $t, description: $d}) { book { title } } }",
        id=light,
        t=MARKUP_TITLE,
        d=MARKUP_TEXT,
    )

    page = httpx.get(f"{url}/console")
    assert page.headers["content-security-policy"] == console.CSP

    with headless_chromium(binaries, tmp_path / "chromium") as browser:
        browser.set_window_size(1280, 1000)
        browser.set_script_timeout(60)
        walk = Walk(browser, url)
        browser.get(f"{url}/console")
        walk.shown("overview")
        check_overview(walk, api, database)
        walk.audit("overview")

        check_browsing(walk, api)
        walk.audit("browse")

        walk.go(f"#/book/{LIGHT}", "book")
        assert walk.text("main h1") == MARKUP_TITLE
        assert walk.text("#description") == MARKUP_TEXT
        assert (
            walk.js(
                "return document.querySelectorAll('main img, main b, main i, main script').length"
            )
            == 0
        )
        assert walk.js("return window.pwned === undefined")
        assert "Sign in" in walk.text("#prediction")
        assert walk.charts_drawn() == 1
        walk.audit("book")

        walk.find("#session a").click()
        walk.shown("signin")
        walk.audit("sign in")
        walk.find("input[name=username]").send_keys("root")
        walk.find("input[name=password]").send_keys(PASSWORD)
        walk.find("main form button").click()
        walk.until(lambda: "root (administrator)" in walk.text("#session"))
        signed_in_at = time.monotonic()
        first_token = walk.js(f"return sessionStorage.getItem('{REFRESH_KEY}')")
        assert first_token
        assert walk.js("return localStorage.length") == 0
        assert walk.js("return document.cookie") == ""

        version = check_models(walk, api)
        walk.go(f"#/book/{LIGHT}", "book")
        prediction = api.admin(
            f'mutation {{ predictPrice(input: {{upc: "{LIGHT}"}}) {{ price lower upper }} }}'
        )["predictPrice"]
        shown = walk.until(
            lambda: walk.js(
                "const p = document.querySelector('[data-prediction]'); return p && p.textContent"
            )
        )
        assert f"version {version}" in shown
        for key in ("price", "lower", "upper"):
            assert money(prediction[key]) in shown
        walk.audit("book, signed in")

        check_crawl(walk, api)
        walk.go("#/overview", "overview")
        check_overview(walk, api, database)

        check_users(walk, api)

        # The access token lives a minute: the console refreshed it ahead of expiry.
        walk.until(
            lambda: walk.js(f"return sessionStorage.getItem('{REFRESH_KEY}')") != first_token,
            timeout=max(1.0, 45 - (time.monotonic() - signed_in_at)),
        )
        walk.go("#/models", "models")
        assert len(walk.rows("#models")) == 2
        browser.refresh()  # the tab keeps its session
        walk.shown("models")
        assert "root (administrator)" in walk.text("#session")
        last_token = walk.js(f"return sessionStorage.getItem('{REFRESH_KEY}')")

        walk.find("#session button").click()
        walk.until(lambda: walk.text("#session") == "Sign in")
        assert walk.js(f"return sessionStorage.getItem('{REFRESH_KEY}')") is None
        ended = api.console("ConsoleRefresh", refreshToken=last_token)
        assert ended["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        walk.go("#/users", "users")
        assert "for administrators" in walk.text("main")

        errors = [entry["message"] for entry in browser.get_log("browser")]
        resources = walk.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert errors == []
    assert resources and all(name.startswith(url) for name in resources), resources
    assert all(not found for found in walk.accessibility.values()), walk.accessibility


def check_overview(walk: Walk, api: Api, database: Path) -> None:
    stats = api.admin(
        "{ stats { totalBooks totalCategories totalStock averagePrice medianPrice minPrice"
        " maxPrice averageRating ratingDistribution { rating count }"
        " priceHistogram(bucketWidth: 5) { count }"
        " categories { category { name } bookCount averagePrice totalStock } } }"
    )["stats"]
    with sqlite3.connect(database) as db:
        books, stock = db.execute(
            "SELECT count(*), sum(availability) FROM books WHERE removed_at IS NULL"
        ).fetchone()
    assert (stats["totalBooks"], stats["totalStock"]) == (books, stock)
    walk.until(lambda: walk.figure("totalBooks") == f"{books:,}")
    assert walk.figure("totalStock") == f"{stock:,}"
    assert walk.figure("totalCategories") == f"{stats['totalCategories']:,}"
    for name in ("averagePrice", "medianPrice", "minPrice", "maxPrice"):
        assert walk.figure(name) == money(stats[name])
    assert walk.figure("averageRating") == f"{stats['averageRating']:.2f}"
    histogram = [int(row[1].replace(",", "")) for row in walk.rows("#price-histogram")]
    assert histogram == [bucket["count"] for bucket in stats["priceHistogram"]]
    ratings = [(row[0], int(row[1])) for row in walk.rows("#rating-distribution")]
    assert ratings == [(f"{r['rating']} of 5", r["count"]) for r in stats["ratingDistribution"]]
    categories = walk.rows("#categories")
    assert [(row[0], int(row[1])) for row in categories] == [
        (c["category"]["name"], c["bookCount"]) for c in stats["categories"]
    ]
    assert [row[2] for row in categories] == [money(c["averagePrice"]) for c in stats["categories"]]
    assert walk.charts_drawn() == 2


def check_browsing(walk: Walk, api: Api) -> None:
    from selenium.webdriver.support.ui import Select

    categories = api.admin("{ categories { name slug bookCount } }")["categories"]
    chosen = next(c for c in categories if 20 < c["bookCount"] <= 40)
    query = (
        "query($after: String, $first: Int) {"
        f' books(first: $first, after: $after, filter: {{category: "{chosen["slug"]}"}},'
        " orderBy: [{field: PRICE, direction: DESC}]) {"
        " totalCount pageInfo { endCursor } edges { node { title price } } } }"
    )
    first = api.admin(query, first=20)["books"]
    second = api.admin(query, first=20, after=first["pageInfo"]["endCursor"])["books"]

    walk.go("#/browse", "browse")
    Select(walk.find("select[name=category]")).select_by_visible_text(chosen["name"])
    Select(walk.find("select[name=order]")).select_by_visible_text("Price, highest first")
    walk.find("main form button").click()
    walk.until(
        lambda: walk.text("#result-count").startswith(f"{chosen['bookCount']} books found; page 1")
    )

    def titles() -> list[str]:
        return [row[0] for row in walk.rows("#books")]

    assert titles() == [edge["node"]["title"] for edge in first["edges"]]
    assert [row[2] for row in walk.rows("#books")] == [
        money(e["node"]["price"]) for e in first["edges"]
    ]
    walk.find("a[rel=next]").click()
    walk.until(lambda: "page 2" in walk.text("#result-count"))
    assert titles() == [edge["node"]["title"] for edge in second["edges"]]
    walk.find("a[rel=prev]").click()
    walk.until(lambda: "page 1" in walk.text("#result-count"))
    assert titles() == [edge["node"]["title"] for edge in first["edges"]]

    walk.go("#/browse?q=shakespeare&order=relevance", "browse")
    found = api.admin(
        '{ books(first: 20, search: "shakespeare", orderBy: [{field: RELEVANCE, direction: DESC}])'
        " { totalCount edges { node { title } } } }"
    )["books"]
    assert found["totalCount"] > 0
    assert titles() == [edge["node"]["title"] for edge in found["edges"]]
    assert walk.js("return document.querySelector('input[name=q]').value") == "shakespeare"


def check_models(walk: Walk, api: Api) -> str:
    models = api.admin(
        "{ models { id version active metrics { model { mae rmse r2 } baselineMean { mae } }"
        " heldOutPredictions { title actual predicted } } }"
    )["models"]
    assert len(models) == 1 and not models[0]["active"]
    model = models[0]
    version = str(model["version"])
    walk.go("#/models", "models")
    assert [row[0] for row in walk.rows("#models")] == [version]
    walk.go(f"#/models/{version}", "models")
    scores = walk.rows("#model-scores")
    assert scores[0][1:] == [
        f"{model['metrics']['model']['mae']:.2f}",
        f"{model['metrics']['model']['rmse']:.2f}",
        f"{model['metrics']['model']['r2']:.3f}",
    ]
    assert scores[1][1] == f"{model['metrics']['baselineMean']['mae']:.2f}"
    held_out = walk.rows("#held-out")
    points = model["heldOutPredictions"]
    assert len(held_out) == len(points) == 200
    first = points[0]
    assert held_out[0] == [first["title"], money(first["actual"]), money(first["predicted"])]
    assert walk.charts_drawn("#model-detail") == 1
    walk.audit("models")

    activate = f'button[aria-label="Activate {version}"]'
    walk.find(activate).click()
    walk.until(lambda: walk.js("return document.querySelector('#confirm-activation')?.open"))
    walk.audit("activation dialog")
    walk.find("#confirm-activation button.secondary").click()
    walk.until(lambda: walk.js("return !document.querySelector('#confirm-activation')"))
    assert api.admin("{ activeModel { version } }")["activeModel"] is None
    walk.find(activate).click()
    walk.until(lambda: walk.js("return document.querySelector('#confirm-activation')?.open"))
    walk.find("#confirm-activation button:not(.secondary)").click()
    walk.until(lambda: walk.text("#notice") == f"Version {version} is active.")
    assert api.admin("{ activeModel { version } }")["activeModel"]["version"] == version
    walk.shown("models")
    assert [row[2] for row in walk.rows("#models")] == ["active"]

    # A new version, trained by the server while the walk goes on.
    walk.find("main > button").click()
    walk.until(lambda: walk.text("#notice").startswith("Training version "))
    walk.shown("models")
    training = walk.text("#notice").split()[2].rstrip(";")
    assert [row[0] for row in walk.rows("#models")] == [training, version]
    return version


def check_crawl(walk: Walk, api: Api) -> None:
    walk.go("#/crawls", "crawls")
    walk.audit("crawl runs")
    walk.js(
        "window.seen = [];"
        "const p = document.getElementById('crawl-progress');"
        "new MutationObserver(() => window.seen.push(p.textContent))"
        ".observe(p, {childList: true, characterData: true, subtree: true});"
    )
    walk.find("main form button").click()
    walk.until(
        lambda: walk.js("return 'finished' in document.getElementById('crawl-progress').dataset"),
        120,
    )
    seen: list[str] = walk.js("return window.seen")
    run = api.admin(
        "{ crawlRuns(first: 1) { edges { node { status pages items newBooks updatedBooks"
        " unchangedBooks removedBooks errors } } } }"
    )["crawlRuns"]["edges"][0]["node"]
    assert run["status"] == "SUCCEEDED" and run["items"] == KEEP
    assert any(text.startswith("Crawl running") for text in seen), seen
    final = walk.text("#crawl-progress")
    assert final.startswith("Crawl succeeded:"), final
    assert f"{run['pages']} pages, {run['items']} books read" in final
    assert f"{run['removedBooks']:,} removed" in final
    walk.until(lambda: walk.rows("#crawl-runs") and walk.rows("#crawl-runs")[0][0] == "SUCCEEDED")


def check_users(walk: Walk, api: Api) -> None:
    from selenium.webdriver.support.ui import Select

    walk.go("#/users", "users")
    assert [row[0] for row in walk.rows("#users")] == ["root", "reader"]
    walk.audit("users")
    Select(walk.find('select[data-user="reader"]')).select_by_value("ADMIN")
    walk.until(lambda: "reader is now an administrator" in walk.text("main"))
    walk.find('input[data-user="reader"]').click()
    walk.until(lambda: "reader is deactivated" in walk.text("main"))
    users = api.admin("{ users(first: 10) { edges { node { username role active } } } }")
    reader = next(e["node"] for e in users["users"]["edges"] if e["node"]["username"] == "reader")
    assert (reader["role"], reader["active"]) == ("ADMIN", False)
