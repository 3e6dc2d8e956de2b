"""Headless Chromium (Debian's, driven by selenium) for the tests that need a real browser.

CI installs ``chromium`` and ``chromium-driver`` (``.ci/run``); elsewhere the tests skip with a
message. The flags keep the browser off the network: this machine reaches nothing outside.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium(what: str, *, also: bool = True, needs: str = "") -> tuple[str, str]:
    """Chromium and its driver, or a skip (a failure in CI) naming what ``what`` needs;
    ``also`` is any further condition, ``needs`` what it stands for."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver and also:
        return chromium, driver
    message = f"{what} needs Debian's chromium and chromium-driver{needs}"
    if IN_CI:
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


@contextmanager
def headless_chromium(binaries: tuple[str, str], profile: Path) -> Iterator[Any]:
    """A browser with a fresh profile in ``profile``, quit however the test ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The page's errors (a Content-Security-Policy violation is one), for browser.get_log.
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
