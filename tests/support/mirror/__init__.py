"""An offline books.toscrape.com for the crawler's tests.

``render`` turns catalogue rows into the site's HTML, ``site.MirrorSite`` maps URL paths to
pages (real saved pages where possible, rendered ones otherwise) and takes changes and faults,
``server.serve_mirror`` puts it on 127.0.0.1. The fixtures below are for test modules to import
(``from tests.support.mirror import mirror, mirror_site``); tests/conftest.py is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.mirror.render import render_listing_page, render_product_page
from tests.support.mirror.server import serve_mirror
from tests.support.mirror.site import MirrorSite, Response

__all__ = [
    "Mirror",
    "MirrorSite",
    "Response",
    "mirror",
    "mirror_site",
    "render_listing_page",
    "render_product_page",
    "serve_mirror",
]


@dataclass(frozen=True)
class Mirror:
    """A running mirror: the site to change or break, and the URL it is served at."""

    site: MirrorSite
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")


@pytest.fixture
def mirror_site() -> MirrorSite:
    """A fresh, unchanged site per test (changes and faults never leak between tests)."""
    return MirrorSite()


@pytest.fixture
def mirror(mirror_site: MirrorSite) -> Iterator[Mirror]:
    """``mirror_site`` served on 127.0.0.1 for the length of the test."""
    with serve_mirror(mirror_site) as base_url:
        yield Mirror(mirror_site, base_url)
