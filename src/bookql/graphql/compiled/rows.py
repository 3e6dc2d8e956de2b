"""Response objects built straight from rows, one getter per response key.

A selection over rows becomes an ``ObjectShape``: for each response key, in response order,
a ``Prepare`` that sees the level's rows once (and may read once for all of them: the
nested objects of every row at that level come from one statement) and returns the getter
that gives the key's value for one row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Label, TableClause

from bookql.graphql.compiled.plan import Run

Getter: TypeAlias = Callable[[Any], Any]
"""A row (or any source) to one JSON value."""

Prepare: TypeAlias = Callable[[Run, Sequence[Any]], Getter]
"""A level's rows to the getter of one response key (reading, if it must, once for all)."""


class At:
    """The value at one position of a row, as it is; the generated builders inline it."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, row: Any) -> Any:
        return row[self.index]


class Constant:
    """A field that needs nothing beyond its own row: the same getter at every level."""

    __slots__ = ("getter",)

    def __init__(self, getter: Getter) -> None:
        self.getter = getter

    def __call__(self, _run: Run, _rows: Sequence[Any]) -> Getter:
        return self.getter


def _generated(name: str, source: str) -> Callable[..., list[dict[str, Any]]]:
    """Compiles a builder written below from response keys (GraphQL names, so valid
    Python string literals through ``repr``) and integers: no request data is ever in it."""
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<compiled {name}>", "exec"), namespace)  # noqa: S102
    builder: Callable[..., list[dict[str, Any]]] = namespace[name]
    return builder


@lru_cache(maxsize=1024)
def _object_builder(
    layout: tuple[tuple[str, int | None], ...],
) -> Callable[..., list[dict[str, Any]]]:
    """``build(rows, g0, …)``: a dict display per row, ``row[i]`` inlined where it can be:
    about three times faster than a comprehension over (key, getter) pairs."""
    values, getters = [], []
    for number, (key, index) in enumerate(layout):
        if index is None:
            getters.append(f"g{number}")
            values.append(f"{key!r}: g{number}(row)")
        else:
            values.append(f"{key!r}: row[{index}]")
    parameters = ", ".join(["rows", *getters])
    body = ", ".join(values)
    source = f"def build({parameters}):\n    return [{{{body}}} for row in rows]\n"
    return _generated("build", source)


@lru_cache(maxsize=1024)
def records(keys: tuple[str, ...]) -> Callable[..., list[dict[str, Any]]]:
    """``build(column0, …)``: one dict per position of the columns (the values of each key)."""
    columns = [f"c{number}" for number in range(len(keys))]
    values = ", ".join(f"{key!r}: v{number}" for number, key in enumerate(keys))
    names = "".join(f"v{number}, " for number in range(len(keys)))
    source = (
        f"def build({', '.join(columns)}):\n"
        f"    return [{{{values}}} for ({names}) in zip({', '.join(columns)})]\n"
    )
    return _generated("build", source)


class Columns:
    """The columns one statement selects, each labelled and at a known position."""

    def __init__(self) -> None:
        self._positions: dict[ColumnElement[Any], int] = {}
        self._selected: list[Label[Any]] | None = None
        self.columns: list[ColumnElement[Any]] = []

    def position(self, column: ColumnElement[Any]) -> int:
        found = self._positions.get(column)
        if found is None:
            found = self._positions[column] = len(self.columns)
            self.columns.append(column)
            self._selected = None
        return found

    def value(self, column: ColumnElement[Any]) -> Getter:
        return At(self.position(column))

    def uses(self, table: TableClause) -> bool:
        return any(getattr(column, "table", None) is table for column in self.columns)

    @property
    def selected(self) -> list[Label[Any]]:
        if self._selected is None:
            self._selected = [column.label(f"c{i}") for i, column in enumerate(self.columns)]
        return self._selected

    def values_of(self, row: Any) -> tuple[Any, ...]:
        """This statement's values picked by column from a row of a wider statement."""
        mapping = row._mapping
        return tuple(mapping[column] for column in self.columns)


class ObjectShape:
    """One object type's selection over rows: its response keys, in order."""

    __slots__ = ("_build", "_prepares")

    def __init__(self, fields: list[tuple[str, Prepare]]) -> None:
        layout: list[tuple[str, int | None]] = []
        self._prepares: list[Prepare] = []
        for key, prepare in fields:
            if isinstance(prepare, Constant) and isinstance(prepare.getter, At):
                layout.append((key, prepare.getter.index))
            else:
                layout.append((key, None))
                self._prepares.append(prepare)
        self._build = _object_builder(tuple(layout))

    def build(self, run: Run, rows: Sequence[Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        return self._build(rows, *[prepare(run, rows) for prepare in self._prepares])


def by_first_key(rows: Sequence[Any], position: int) -> dict[Any, Any]:
    """The first row of each distinct value at ``position``, in order of appearance."""
    firsts: dict[Any, Any] = {}
    for row in rows:
        firsts.setdefault(row[position], row)
    return firsts
