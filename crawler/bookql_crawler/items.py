"""What the spider reads off a product page: text as the page shows it, checked later."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BookItem:
    """One product page; any field may be missing from a broken page (``None``)."""

    product_url: str
    upc: str | None = None
    title: str | None = None
    product_type: str | None = None
    price_excl_tax: str | None = None  # "£51.77"
    price_incl_tax: str | None = None
    tax: str | None = None
    price: str | None = None  # the price as shown (p.price_color)
    availability: str | None = None  # "In stock (22 available)"
    rating: str | None = None  # the star-rating word: "Three"
    num_reviews: str | None = None
    description: str | None = None
    category: str | None = None
    image_url: str | None = None
