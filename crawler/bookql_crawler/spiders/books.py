"""``books``: the paginated catalogue, then every product page it lists.

Only the listing's own products are followed (``ol.row article.product_pod``); product pages
carry "recently viewed" links that would otherwise wander. Progress and failures go into the
crawler's stats, which the database pipeline turns into the crawl run's record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure

from bookql_crawler.items import BookItem

DEFAULT_START_URL = "https://books.toscrape.com/"


def _text(value: str | None) -> str | None:
    return " ".join(value.split()) if value is not None else None


class BooksSpider(scrapy.Spider):
    name = "books"

    def __init__(self, start_url: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_url = start_url or DEFAULT_START_URL
        parts = urlsplit(self.start_url)
        if parts.scheme not in ("http", "https", "file") or (
            parts.scheme != "file" and not parts.hostname
        ):
            raise ValueError(f"start_url must be an http(s) URL, not {self.start_url!r}")
        try:
            port = parts.port  # out of range or not a number: refused here, not fetched
        except ValueError as invalid:
            raise ValueError(f"start_url has an invalid port: {invalid}") from None
        if port == 0:
            raise ValueError("start_url has an invalid port: 0")
        if parts.hostname:
            self.allowed_domains = [parts.hostname]

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(self.start_url, callback=self.parse, errback=self.listing_failed)

    def _count(self, key: str, by: int = 1) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"bookql/{key}", by)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request]:
        """A listing page: its 20 products, then the next page.

        @fixture index.html
        @returns items 0 0
        @returns requests 21 21
        """
        self._count("pages")
        self._count("listing_pages")
        for href in response.css("ol.row article.product_pod h3 a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_book, errback=self.product_failed)
        next_page = response.css("ul.pager li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse, errback=self.listing_failed)
        else:
            assert self.crawler.stats is not None
            self.crawler.stats.set_value("bookql/listing_complete", 1)

    def parse_book(self, response: Response) -> Iterator[BookItem]:
        """A product page: every field the page has.

        @fixture catalogue/a-light-in-the-attic_1000/index.html
        @returns items 1 1
        @returns requests 0 0
        @scrapes upc title product_type price_excl_tax price_incl_tax tax price availability
        @scrapes rating num_reviews description category image_url product_url
        """
        self._count("pages")
        self._count("product_pages")
        main = response.css("article.product_page div.product_main")
        table = {
            _text(row.css("th::text").get()): _text(row.css("td::text").get())
            for row in response.css("table.table-striped tr")
        }
        rating = [
            name
            for name in (main.css("p.star-rating::attr(class)").get() or "").split()
            if name != "star-rating"
        ]
        image = response.css("#product_gallery .item.active img::attr(src)").get()
        yield BookItem(
            product_url=response.url,
            upc=table.get("UPC"),
            title=_text(main.css("h1::text").get()),
            product_type=table.get("Product Type"),
            price_excl_tax=table.get("Price (excl. tax)"),
            price_incl_tax=table.get("Price (incl. tax)"),
            tax=table.get("Tax"),
            price=_text(main.css("p.price_color::text").get()),
            availability=table.get("Availability")
            or _text(" ".join(main.css("p.availability::text").getall())),
            rating=rating[0] if rating else None,
            num_reviews=table.get("Number of reviews"),
            description=response.css("#product_description + p::text").get(),
            category=_text(response.css("ul.breadcrumb li:nth-child(3) a::text").get()),
            image_url=response.urljoin(image) if image else None,
        )

    def listing_failed(self, failure: Failure) -> None:
        self._count("failed_requests")
        self._count("failed_listings")
        self._first_error(f"a listing page could not be fetched: {failure.getErrorMessage()}")
        self.logger.error("listing page failed: %s", failure.getErrorMessage())

    def product_failed(self, failure: Failure) -> None:
        self._count("failed_requests")
        self._first_error(f"a product page could not be fetched: {failure.getErrorMessage()}")
        self.logger.error("product page failed: %s", failure.getErrorMessage())

    def offsite_dropped(self, request: scrapy.Request) -> None:
        """A page of ours that redirected off the site (``ReportedOffsiteMiddleware``)."""
        if request.callback not in (self.parse, self.parse_book):
            return  # robots.txt, which Scrapy fetches for itself
        host = urlsplit(request.url).hostname or ""
        self._count("offsite_redirects")
        if request.callback == self.parse:
            self._count("failed_listings")
        self._first_error(f"a page redirected off the site, to {host!r}, and was not followed")
        self.logger.error("page redirected off the site: %s", request.url)

    def _first_error(self, message: str) -> None:
        """What went wrong first: the run's reason when nothing could be stored."""
        assert self.crawler.stats is not None
        if self.crawler.stats.get_value("bookql/first_error") is None:
            self.crawler.stats.set_value("bookql/first_error", message)
