"""From a ``BookItem`` (page text) to a ``BookRecord`` (checked values, money in pence).

Anything missing or malformed raises ``InvalidBook`` with a reason, so that the page is
dropped, counted and logged instead of storing half a book.
"""

from __future__ import annotations

import re

from bookql.catalog.money import to_pence
from bookql.catalog.records import BookRecord
from bookql_crawler.items import BookItem

RATINGS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}
CURRENCIES = {"£": "GBP", "€": "EUR", "$": "USD"}
_MONEY = re.compile(r"^\s*(?P<symbol>[£€$])\s*(?P<amount>\d+(?:\.\d{1,2})?)\s*$")
_IN_STOCK = re.compile(r"In stock \((?P<count>\d+) available\)")


class InvalidBook(ValueError):
    """A product page that cannot become a book; ``reason`` is short and stable (for stats)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _required(item: BookItem, name: str) -> str:
    value = getattr(item, name)
    if value is None or not str(value).strip():
        raise InvalidBook(f"missing_{name}", f"the page has no {name.replace('_', ' ')}")
    return str(value).strip()


def _money(item: BookItem, name: str) -> tuple[int, str]:
    text = _required(item, name)
    match = _MONEY.match(text)
    if match is None:
        raise InvalidBook(f"bad_{name}", f"{text!r} is not an amount of money")
    return to_pence(match["amount"]), CURRENCIES[match["symbol"]]


def _availability(text: str) -> int:
    if "out of stock" in text.lower():
        return 0
    match = _IN_STOCK.search(text)
    if match is None:
        raise InvalidBook("bad_availability", f"{text!r} gives no stock count")
    return int(match["count"])


def to_record(item: BookItem) -> BookRecord:
    excl, currency = _money(item, "price_excl_tax")
    incl, _ = _money(item, "price_incl_tax")
    tax, _ = _money(item, "tax")
    shown, _ = _money(item, "price")
    if incl != excl + tax:
        raise InvalidBook("inconsistent_prices", "price incl. tax is not price excl. tax + tax")
    if shown != incl:
        raise InvalidBook("inconsistent_prices", "the shown price is not the price incl. tax")
    rating_word = _required(item, "rating")
    if rating_word not in RATINGS:
        raise InvalidBook("bad_rating", f"{rating_word!r} is not a star rating")
    reviews = _required(item, "num_reviews")
    if not reviews.isdigit():
        raise InvalidBook("bad_num_reviews", f"{reviews!r} is not a count")
    description = item.description.strip() if item.description else None
    return BookRecord(
        upc=_required(item, "upc"),
        title=_required(item, "title"),
        product_type=_required(item, "product_type"),
        price_excl_tax_pence=excl,
        price_incl_tax_pence=incl,
        tax_pence=tax,
        currency=currency,
        availability=_availability(_required(item, "availability")),
        rating=RATINGS[rating_word],
        num_reviews=int(reviews),
        description=description or None,
        category=_required(item, "category"),
        image_url=_required(item, "image_url"),
        product_url=item.product_url,
    )
