"""GraphiQL works offline: its assets come from the package, and a real browser runs a query."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bookql.api import graphiql
from tests.conftest import IN_CI
from tests.live import live_server as serve


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


def _require_browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver and graphiql.assets_installed():
        return chromium, driver
    message = "the GraphiQL browser test needs Debian's chromium and chromium-driver, and npm"
    if IN_CI:
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    with serve({**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}) as url:
        yield url


def test_graphiql_runs_a_query_in_chromium(live_server: str, tmp_path: Path) -> None:
    chromium, chromedriver = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
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
    finally:
        browser.quit()
