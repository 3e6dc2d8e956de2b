"""The catalogue's unit of exchange between sources (snapshot, crawler, admin) and storage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BookRecord:
    """Everything a product page says about one book, money in pence."""

    upc: str
    title: str
    product_type: str
    price_excl_tax_pence: int
    price_incl_tax_pence: int
    tax_pence: int
    currency: str
    availability: int
    rating: int
    num_reviews: int
    description: str | None
    category: str
    image_url: str
    product_url: str
