"""Catalogue values as the API shows them, read from row positions without building objects.

Each matches what the standard types compute (``Book.from_row``, ``PricePoint.from_row``,
the ``DateTime`` scalar), so both paths print the same JSON.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement

from bookql.api.compiled.rows import Columns, Getter
from bookql.api.relay import to_global_id


def gbp(pence: int) -> float:
    """``from_pence`` without a Decimal: an integer over 100 is already the double nearest
    the exact quotient, which is what ``float(Decimal(pence) / 100)`` rounds to."""
    return pence / 100


def iso(value: datetime | None) -> str | None:
    """The ``DateTime`` scalar's serialisation (``isoformat``), null kept null."""
    return None if value is None else value.isoformat()


def money(columns: Columns, column: ColumnElement[int]) -> Getter:
    index = columns.position(column)
    return lambda row: row[index] / 100


def timestamp(columns: Columns, column: ColumnElement[Any]) -> Getter:
    index = columns.position(column)
    return lambda row: iso(row[index])


_global_ids = lru_cache(maxsize=16_384)(to_global_id)
"""Ids are base64 of the type and key: worth remembering across requests for a catalogue."""


def global_id(type_name: str, columns: Columns, column: ColumnElement[Any]) -> Getter:
    index = columns.position(column)
    return lambda row: _global_ids(type_name, row[index])


def positive(columns: Columns, column: ColumnElement[int]) -> Getter:
    index = columns.position(column)
    return lambda row: row[index] > 0
