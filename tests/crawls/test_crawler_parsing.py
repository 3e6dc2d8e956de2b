"""The spider and the item checks on the real saved pages, without any network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request

from bookql_crawler.items import BookItem
from bookql_crawler.spiders.books import BooksSpider
from bookql_crawler.validation import InvalidBook, to_record
from tests.support.snapshot_truth import snapshot_books

PAGES = Path(__file__).parents[1] / "fixtures" / "books_toscrape" / "pages"
CRAWLER = Path(__file__).parents[2] / "crawler"
SITE = "https://books.toscrape.com/"


def _response(relative: str) -> HtmlResponse:
    url = SITE + relative
    return HtmlResponse(
        url=url, body=(PAGES / relative).read_bytes(), encoding="utf-8", request=Request(url)
    )


def _spider() -> BooksSpider:
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(BooksSpider)
    spider = BooksSpider.from_crawler(crawler)
    crawler.spider = spider
    crawler.stats.open_spider()
    return spider


SAVED_PRODUCTS = sorted(
    str(path.relative_to(PAGES).parent) for path in (PAGES / "catalogue").glob("*_*/index.html")
)


def test_fifty_one_saved_product_pages() -> None:
    assert len(SAVED_PRODUCTS) == 51


@pytest.mark.parametrize("page", SAVED_PRODUCTS)
def test_every_saved_product_page_parses_to_its_catalog_record(page: str) -> None:
    truth = {book["product_url"]: book for book in snapshot_books()}
    [item] = list(_spider().parse_book(_response(f"{page}/index.html")))
    record = to_record(item)
    book = truth[item.product_url]
    assert record.upc == book["upc"]
    assert record.title == book["title"]
    assert record.product_type == book["product_type"]
    assert record.price_excl_tax_pence == round(book["price_excl_tax"] * 100)
    assert record.price_incl_tax_pence == round(book["price_incl_tax"] * 100)
    assert record.tax_pence == round(book["tax"] * 100)
    assert record.currency == "GBP"
    assert record.availability == book["availability_count"]
    assert record.rating == book["rating"]
    assert record.num_reviews == book["num_reviews"]
    assert record.description == book["description"]
    assert record.category == book["category"]
    assert record.image_url == book["image_url"]


def test_a_listing_page_yields_its_twenty_products_and_the_next_page() -> None:
    requests = list(_spider().parse(_response("catalogue/page-2.html")))
    products = [r.url for r in requests if getattr(r.callback, "__name__", "") == "parse_book"]
    listings = [r.url for r in requests if getattr(r.callback, "__name__", "") == "parse"]
    expected = [b["product_url"] for b in snapshot_books() if b["listing_page"] == 2]
    assert products == expected
    assert listings == [SITE + "catalogue/page-3.html"]


def test_the_last_listing_page_completes_the_walk() -> None:
    spider = _spider()
    requests = list(spider.parse(_response("catalogue/page-50.html")))
    assert len(requests) == 20
    assert spider.crawler.stats.get_value("bookql/listing_complete") == 1


def test_the_home_page_links_into_the_catalog() -> None:
    requests = list(_spider().parse(_response("index.html")))
    assert requests[0].url == SITE + "catalogue/a-light-in-the-attic_1000/index.html"
    assert requests[-1].url == SITE + "catalogue/page-2.html"


def test_start_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        BooksSpider(start_url="ftp://books.toscrape.com/")
    assert BooksSpider(start_url="http://127.0.0.1:8000/").allowed_domains == ["127.0.0.1"]


GOOD = BookItem(
    product_url=SITE + "catalogue/x_1/index.html",
    upc="abc",
    title="A Title",
    product_type="Books",
    price_excl_tax="£10.00",
    price_incl_tax="£10.00",
    tax="£0.00",
    price="£10.00",
    availability="In stock (3 available)",
    rating="Four",
    num_reviews="0",
    description="Words.",
    category="Poetry",
    image_url=SITE + "media/x.jpg",
)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"price": None}, "missing_price"),
        ({"upc": "  "}, "missing_upc"),
        ({"title": None}, "missing_title"),
        ({"price_excl_tax": "ten pounds"}, "bad_price_excl_tax"),
        ({"price_incl_tax": "£11.00", "price": "£11.00"}, "inconsistent_prices"),
        ({"price": "£9.99"}, "inconsistent_prices"),
        ({"rating": "Six"}, "bad_rating"),
        ({"availability": "Available soon"}, "bad_availability"),
        ({"num_reviews": "many"}, "bad_num_reviews"),
        ({"category": None}, "missing_category"),
    ],
)
def test_broken_pages_are_refused_with_a_reason(
    changes: dict[str, str | None], reason: str
) -> None:
    item = BookItem(**{**GOOD.__dict__, **changes})
    with pytest.raises(InvalidBook) as refused:
        to_record(item)
    assert refused.value.reason == reason


def test_out_of_stock_and_missing_description() -> None:
    item = BookItem(**{**GOOD.__dict__, "availability": "Out of stock", "description": None})
    record = to_record(item)
    assert record.availability == 0
    assert record.description is None


@pytest.mark.slow
def test_spider_contracts_pass_offline() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "check", "books"],
        cwd=CRAWLER,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Ran 6 contracts" in result.stderr
    assert "OK" in result.stderr
