"""One definition per stored field of the catalogue's GraphQL types.

A field read from one column is declared once, on its Strawberry type::

    rating: int = stored(books.c.rating, description="Star rating, 1 to 5.")
    price: float = stored(books.c.price_incl_tax_pence, MONEY)

The annotation is the field's type; ``stored`` names the column, and how its value is shown
(``Shown``: as stored unless told otherwise; datetime columns as the ``DateTime`` scalar
shows them). From that one line follow the Strawberry field (its GraphQL name, type,
description, deprecation), ``row_values`` (what ``from_row`` builds the object from) and,
through ``stored_fields``, the compiled path's reader of the field
(``bookql.catalog.graphql.compiled.values.column_readers``). Values that are not in the
schema but that resolvers need (the row's own id) are ``private`` columns.

Fields with resolvers (a book's category, description, price history, ...) stay explicit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from operator import attrgetter
from typing import Any, TypeAlias

import strawberry
from sqlalchemy import Column, DateTime, Row
from strawberry.types.base import get_object_definition
from strawberry.utils.str_converters import to_camel_case

from bookql.catalog.money import from_pence
from bookql.graphql.relay import to_global_id

STORED = "bookql.stored"
"""The key of a field's declaration in its dataclass field's metadata."""

RowGetter: TypeAlias = Callable[[Sequence[Any]], Any]
"""A row (a tuple of selected values) to one JSON value, on the compiled path."""


class Shown:
    """How a stored value is shown: as it is stored. Subclasses convert it.

    ``value`` is what the Strawberry object holds (the standard executor serialises it);
    ``getter`` is what the compiled path shows, read from a row position, already JSON.
    """

    def value(self, stored: Any) -> Any:
        return stored

    def getter(self, index: int) -> RowGetter | None:
        """None: the value at ``index`` as it is (the compiled builders inline that)."""
        return None


class Money(Shown):
    """Integer pence shown as GBP (``5177`` -> ``51.77``)."""

    def value(self, stored: Any) -> Any:
        return from_pence(stored)

    def getter(self, index: int) -> RowGetter:
        # ``from_pence`` without a Decimal: an integer over 100 is already the double
        # nearest the exact quotient, which is what ``from_pence`` rounds to.
        return lambda row: row[index] / 100


class Positive(Shown):
    """A count shown as whether there is any (stock -> in stock)."""

    def value(self, stored: Any) -> Any:
        return stored > 0

    def getter(self, index: int) -> RowGetter:
        return lambda row: row[index] > 0


def iso(value: datetime | None) -> str | None:
    """The ``DateTime`` scalar's serialisation (``isoformat``), null kept null."""
    return None if value is None else value.isoformat()


class Timestamp(Shown):
    """A datetime, shown as the ``DateTime`` scalar shows it."""

    def getter(self, index: int) -> RowGetter:
        return lambda row: iso(row[index])


_global_ids = lru_cache(maxsize=16_384)(to_global_id)
"""Ids are base64 of the type and key: worth remembering across requests for a catalogue."""


@dataclass(frozen=True)
class GlobalId(Shown):
    """A key shown as the type's global id (``Node.id``)."""

    type_name: str

    def value(self, stored: Any) -> Any:
        return strawberry.ID(to_global_id(self.type_name, stored))

    def getter(self, index: int) -> RowGetter:
        type_name = self.type_name
        return lambda row: _global_ids(type_name, row[index])


AS_STORED = Shown()
MONEY = Money()
POSITIVE = Positive()
TIMESTAMP = Timestamp()


@dataclass(frozen=True)
class Stored:
    """A field's column, and how its value is shown."""

    column: Column[Any]
    shown: Shown


def _shown_by_default(column: Column[Any]) -> Shown:
    column_type = getattr(column.type, "impl", column.type)  # through ``UTCDateTime``
    return TIMESTAMP if isinstance(column_type, DateTime) else AS_STORED


def stored(
    column: Column[Any],
    shown: Shown | None = None,
    *,
    description: str | None = None,
    deprecation_reason: str | None = None,
    name: str | None = None,
) -> Any:
    """A Strawberry field whose value is read from ``column`` and shown by ``shown``."""
    return strawberry.field(
        name=name,
        description=description,
        deprecation_reason=deprecation_reason,
        metadata={STORED: Stored(column, shown or _shown_by_default(column))},
    )


def private(column: Column[Any]) -> Any:
    """A value the resolvers need, read from ``column``, that the schema does not show
    (annotate it ``strawberry.Private[...]``)."""
    return dataclasses.field(metadata={STORED: Stored(column, AS_STORED)})


@dataclass(frozen=True)
class _RowReader:
    """How ``cls`` is built from a row: its column-backed attributes, the row attributes
    they read (all at once), and each one's conversion (None: as stored)."""

    names: tuple[str, ...]
    read: Callable[[Row[Any]], tuple[Any, ...]]
    converts: tuple[Callable[[Any], Any] | None, ...]


@cache
def _row_reader(cls: type) -> _RowReader:
    declared = [
        (field.name, field.metadata[STORED])
        for field in dataclasses.fields(cls)
        if STORED in field.metadata
    ]
    keys = [stored_as.column.key for _, stored_as in declared]
    # ``attrgetter`` of several names gives a tuple: one call in C for the whole row.
    read = attrgetter(*keys) if len(keys) > 1 else lambda row: (getattr(row, keys[0]),)
    converts = [
        None if type(stored_as.shown).value is Shown.value else stored_as.shown.value
        for _, stored_as in declared
    ]
    return _RowReader(tuple(name for name, _ in declared), read, tuple(converts))


def row_values(cls: type, row: Row[Any]) -> dict[str, Any]:
    """The keyword arguments of ``cls`` built from a row holding its columns."""
    reader = _row_reader(cls)
    return {
        name: value if convert is None else convert(value)
        for name, value, convert in zip(
            reader.names, reader.read(row), reader.converts, strict=True
        )
    }


def stored_fields(cls: type) -> dict[str, Stored]:
    """The declaration of each stored field of a Strawberry type, by GraphQL name."""
    definition = get_object_definition(cls, strict=True)
    return {
        field.graphql_name or to_camel_case(field.python_name): field.metadata[STORED]
        for field in definition.fields
        if STORED in field.metadata
    }
