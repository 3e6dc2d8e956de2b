"""Catalogue values as the API shows them, read from row positions without building objects.

The readers of stored fields follow from their declarations (``fields.stored``): each shows
what the standard type's ``from_row`` and the scalars' serialisation show, so both paths
print the same JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from bookql.catalog.graphql.fields import Stored, stored_fields
from bookql.graphql.compiled.rows import At, Columns, Getter

ColumnValue: TypeAlias = Callable[[Columns], Getter]
"""A field's reader: positions its column in a statement, returns its getter over rows."""


def gbp(pence: int) -> float:
    """``from_pence`` without a Decimal: an integer over 100 is already the double nearest
    the exact quotient, which is what ``float(Decimal(pence) / 100)`` rounds to."""
    return pence / 100


def column_reader(declared: Stored) -> ColumnValue:
    def read(columns: Columns) -> Getter:
        index = columns.position(declared.column)
        getter = declared.shown.getter(index)
        return At(index) if getter is None else getter

    return read


def column_readers(cls: type) -> dict[str, ColumnValue]:
    """The reader of every stored field of a Strawberry type, by GraphQL name."""
    return {name: column_reader(declared) for name, declared in stored_fields(cls).items()}
