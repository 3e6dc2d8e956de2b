"""GraphiQL works offline: its assets come from the package, and a real browser runs a query."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookql.server import graphiql
from tests.support.browser import headless_chromium, require_chromium
from tests.support.live import live_server as serve

pytestmark = pytest.mark.slow  # headless Chromium


def test_page_uses_packaged_assets_or_falls_back_to_the_cdn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(graphiql, "STATIC_DIR", tmp_path)
    assert "https://unpkg.com/graphiql@3.8.3/graphiql.min.js" in graphiql.graphiql_page()
    for asset in graphiql.ASSETS.values():
        (tmp_path / asset.file).write_text("/* asset */")
    page = graphiql.graphiql_page()
    assert "unpkg.com" not in page
    assert "/static/graphiql/graphiql.min.js" in page


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    with serve({**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}) as url:
        yield url


def test_graphiql_runs_a_query_in_chromium(live_server: str, tmp_path: Path) -> None:
    binaries = require_chromium(
        "the GraphiQL browser test", also=graphiql.assets_installed(), needs=", and npm"
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium(binaries, tmp_path / "chromium") as browser:
        browser.get(f"{live_server}/graphql")
        wait = WebDriverWait(browser, 30)
        run = wait.until(
            expected_conditions.element_to_be_clickable(
                (By.CSS_SELECTOR, ".graphiql-execute-button")
            )
        )
        run.click()
        wait.until(
            expected_conditions.text_to_be_present_in_element(
                (By.CSS_SELECTOR, ".graphiql-response"), '"totalCount": 1000'
            )
        )
        result = browser.find_element(By.CSS_SELECTOR, ".graphiql-response").text
        assert '"title"' in result
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert resources, "the page loaded no assets"
        assert all(name.startswith(live_server) for name in resources), resources
