"""The catalogue snapshot shipped inside the package, for a server that shows data at once."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from bookql.catalog.money import to_pence
from bookql.catalog.records import BookRecord

SNAPSHOT_RESOURCE = "catalogue.jsonl.gz"


def read_snapshot_rows() -> Iterator[dict[str, Any]]:
    """The raw JSON objects of the snapshot, in site order."""
    source = resources.files("bookql.catalog").joinpath("data", SNAPSHOT_RESOURCE)
    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def record_from_row(row: dict[str, Any]) -> BookRecord:
    return BookRecord(
        upc=row["upc"],
        title=row["title"],
        product_type=row["product_type"],
        price_excl_tax_pence=to_pence(row["price_excl_tax"]),
        price_incl_tax_pence=to_pence(row["price_incl_tax"]),
        tax_pence=to_pence(row["tax"]),
        currency=row["currency"],
        availability=int(row["availability_count"]),
        rating=int(row["rating"]),
        num_reviews=int(row["num_reviews"]),
        description=row["description"],
        category=row["category"],
        image_url=row["image_url"],
        product_url=row["product_url"],
    )


def load_snapshot() -> list[BookRecord]:
    return [record_from_row(row) for row in read_snapshot_rows()]
