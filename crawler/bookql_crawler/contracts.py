"""``@fixture PATH``: a spider contract that runs a callback on a saved page, offline.

``scrapy check books`` then needs no network: the pages are the real site's, kept in
``tests/fixtures/books_toscrape/pages`` of the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scrapy.contracts import Contract

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "books_toscrape" / "pages"


class FixtureContract(Contract):
    name = "fixture"

    def adjust_request_args(self, args: dict[str, Any]) -> dict[str, Any]:
        page = FIXTURES / self.args[0]
        if not page.is_file():
            raise FileNotFoundError(f"no saved page {page}")
        args["url"] = page.as_uri()
        return args
