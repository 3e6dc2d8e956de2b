"""One line of an import file (the bundled snapshot's record format) to a checked ``BookRecord``.

The format carries some facts twice (``price`` and ``price_incl_tax``; the ``availability``
text, ``availability_count`` and ``in_stock``). A value given twice must agree: a line whose
redundant fields contradict each other is refused rather than guessed at, since either
side may be the wrong one. docs/importing.md states every rule.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bookql.catalog.money import to_pence
from bookql.catalog.records import BookRecord
from bookql.catalog.slugs import slugify

MAX_PENCE = 2**31 - 1  # the price columns are 32-bit integers on PostgreSQL
MAX_COUNT = 2**31 - 1
_UPC = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_IN_STOCK = re.compile(r"^In stock \((?P<count>\d+) available\)$")
_OUT_OF_STOCK = "Out of stock"
_TEXT_LIMITS = {"title": 1000, "product_type": 100, "category": 200}


class BadLine(ValueError):
    """A line that cannot become a book; the message says why, for the operator."""


def _text(row: dict[str, Any], name: str, default: str | None = None) -> str:
    value = row.get(name, default)
    if value is None:
        raise BadLine(f"`{name}` is required")
    if not isinstance(value, str):
        raise BadLine(f"`{name}` must be a string")
    value = value.strip()
    limit = _TEXT_LIMITS.get(name)
    if limit is not None and not value:
        raise BadLine(f"`{name}` must not be empty")
    if limit is not None and len(value) > limit:
        raise BadLine(f"`{name}` is longer than {limit} characters")
    return value


def _count(row: dict[str, Any], name: str) -> int | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLine(f"`{name}` must be a whole number")
    if not 0 <= value <= MAX_COUNT:
        raise BadLine(f"`{name}` must be between 0 and {MAX_COUNT}")
    return value


def _money(row: dict[str, Any], name: str) -> int | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadLine(f"`{name}` must be an amount in pounds")
    try:
        pence = to_pence(value)
    except ValueError as exc:
        raise BadLine(f"`{name}`: {exc}") from None
    if not 0 <= pence <= MAX_PENCE:
        raise BadLine(f"`{name}` must be between 0 and {MAX_PENCE / 100:.2f}")
    return pence


def _prices(row: dict[str, Any]) -> tuple[int, int, int]:
    """(excl, incl, tax): ``price_incl_tax`` or ``price`` (equal when both), the others derived."""
    incl, shown = _money(row, "price_incl_tax"), _money(row, "price")
    if incl is not None and shown is not None and incl != shown:
        raise BadLine("`price` and `price_incl_tax` disagree")
    incl = incl if incl is not None else shown
    if incl is None:
        raise BadLine("`price_incl_tax` (or `price`) is required")
    excl, tax = _money(row, "price_excl_tax"), _money(row, "tax")
    if excl is None and tax is None:
        excl, tax = incl, 0
    elif excl is None:
        assert tax is not None
        excl = incl - tax
    elif tax is None:
        tax = incl - excl
    if excl < 0 or tax < 0 or excl + tax != incl:
        raise BadLine("`price_incl_tax` is not `price_excl_tax` plus `tax`")
    return excl, incl, tax


def _stock_from_text(text: str) -> int:
    if text == _OUT_OF_STOCK:
        return 0
    match = _IN_STOCK.match(text)
    if match is None:
        raise BadLine(
            f"`availability` {text!r} is neither 'In stock (N available)' nor 'Out of stock'"
        )
    return int(match["count"])


def _availability(row: dict[str, Any]) -> int:
    """``availability_count`` wins for being exact; the text and ``in_stock`` must agree with it."""
    count = _count(row, "availability_count")
    text = row.get("availability")
    if text is not None:
        if not isinstance(text, str):
            raise BadLine("`availability` must be a string")
        from_text = _stock_from_text(text.strip())
        if count is not None and from_text != count:
            raise BadLine("`availability` and `availability_count` disagree")
        count = from_text if count is None else count
    if count is None:
        raise BadLine("`availability_count` (or `availability`) is required")
    in_stock = row.get("in_stock")
    if in_stock is not None:
        if not isinstance(in_stock, bool):
            raise BadLine("`in_stock` must be true or false")
        if in_stock != (count > 0):
            raise BadLine(f"`in_stock` is {str(in_stock).lower()} but the stock count is {count}")
    return count


def _rating(row: dict[str, Any]) -> int:
    rating = _count(row, "rating")
    if rating is None:
        raise BadLine("`rating` is required")
    if not 1 <= rating <= 5:
        raise BadLine("`rating` must be between 1 and 5")
    return rating


def _description(row: dict[str, Any]) -> str | None:
    value = row.get("description")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadLine("`description` must be a string or null")
    return value.strip() or None  # as the crawler stores it: blank is no description


def record_from_line(line: str) -> BookRecord:
    """The book a line describes, or ``BadLine`` saying what is wrong with it."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(row, dict):
        raise BadLine("not a JSON object")
    upc = _text(row, "upc")
    if not _UPC.match(upc):
        raise BadLine("`upc` is 1 to 64 letters, digits, '-' or '_'")
    category = _text(row, "category")
    try:
        slugify(category)
    except ValueError:
        raise BadLine(f"`category` {category!r} has no letters or digits for a slug") from None
    currency = _text(row, "currency", "GBP")
    if not _CURRENCY.match(currency):
        raise BadLine("`currency` is a three-letter code such as GBP")
    excl, incl, tax = _prices(row)
    return BookRecord(
        upc=upc,
        title=_text(row, "title"),
        product_type=_text(row, "product_type", "Books"),
        price_excl_tax_pence=excl,
        price_incl_tax_pence=incl,
        tax_pence=tax,
        currency=currency,
        availability=_availability(row),
        rating=_rating(row),
        num_reviews=_count(row, "num_reviews") or 0,
        description=_description(row),
        category=category,
        image_url=_text(row, "image_url", ""),
        product_url=_text(row, "product_url", ""),
    )
