"""``Book``, ``Category``, ``PricePoint`` and ``BookConnection`` selections over rows.

A statement of books selects only the columns its selection reads, with the category and
description it shows joined in; each list nested below (price histories, a category's books
and book count) is one more statement for the whole level, never one per object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any, TypeAlias

from bookql.catalog import queries
from bookql.catalog.graphql.compiled.listings import (
    PageData,
    category_books_listing,
    category_pages,
    page_request,
)
from bookql.catalog.graphql.compiled.values import ColumnValue, column_readers
from bookql.catalog.graphql.loaders import HISTORY_CAP
from bookql.catalog.graphql.types import Book, Category, PricePoint
from bookql.catalog.tables import books, categories, descriptions, price_points
from bookql.graphql.compiled.plan import Fallback, PlannedField, Run, Unsupported, typename
from bookql.graphql.compiled.rows import (
    Columns,
    Constant,
    Getter,
    ObjectShape,
    Prepare,
    by_first_key,
    records,
)

BOOK_VALUES: dict[str, ColumnValue] = {
    **column_readers(Book),
    # a resolver (its DataLoader) on the standard path; here the description is joined in
    "description": lambda c: c.value(descriptions.c.description),
}

CATEGORY_VALUES: dict[str, ColumnValue] = column_readers(Category)


def _price_point_values() -> dict[str, Getter]:
    """``PricePoint``'s readers over the rows of ``queries.price_history_by_book_ids``:
    every column of ``price_points`` in table order (then the rank)."""
    columns = Columns()
    for column in price_points.columns:
        columns.position(column)
    values = {name: read(columns) for name, read in column_readers(PricePoint).items()}
    return {**values, "__typename": typename("PricePoint")}


PRICE_POINT_VALUES = _price_point_values()

PAGE_INFO_VALUES: dict[str, Getter] = {
    "hasNextPage": attrgetter("has_next_page"),
    "hasPreviousPage": attrgetter("has_previous_page"),
    "startCursor": attrgetter("start_cursor"),
    "endCursor": attrgetter("end_cursor"),
    "__typename": typename("PageInfo"),
}


def _known(values: dict[str, Any], field: PlannedField) -> Any:
    found = values.get(field.name)
    if found is None:
        raise Unsupported(f"{field.parent.name}.{field.name}")
    return found


def _bounded_count(field: PlannedField) -> PageGetter:
    """``count(limit:)`` as the resolver answers it; a limit it refuses goes back to it."""
    values = {"count": itemgetter(0), "precision": itemgetter(1), "__typename": typename("Count")}
    fields = [(f.key, _known(values, f)) for f in field.selection("Count")]

    def count(page: PageData, _offset: int, _nodes: list[list[dict[str, Any]]]) -> dict[str, Any]:
        found, exact = page.at_most(field)
        source = (found, "EXACT" if exact else "AT_LEAST")
        return {key: get(source) for key, get in fields}

    return count


def book_shape(selection: list[PlannedField], columns: Columns) -> ObjectShape:
    """Books over rows of ``columns``: the plain fields read their columns, nested ones batch."""
    columns.position(books.c.id)
    return ObjectShape([(field.key, _book_field(field, columns)) for field in selection])


def _book_field(field: PlannedField, columns: Columns) -> Prepare:
    if field.name == "__typename":
        return Constant(typename("Book"))
    if field.name == "category":
        return _book_category(field, columns)
    if field.name == "priceHistory":
        return _price_history(field, columns)
    value: ColumnValue = _known(BOOK_VALUES, field)
    return Constant(value(columns))


def _book_category(field: PlannedField, columns: Columns) -> Prepare:
    """Each distinct category of the level built once, from the joined columns."""
    shape = category_shape(field.selection("Category"), columns)
    key = columns.position(categories.c.id)

    def prepare(run: Run, rows: Sequence[Any]) -> Getter:
        firsts = by_first_key(rows, key)
        built = dict(zip(firsts, shape.build(run, list(firsts.values())), strict=True))
        return lambda row: built[row[key]]

    return prepare


def _price_history(field: PlannedField, columns: Columns) -> Prepare:
    """Every book's newest points in one statement (the standard loader's own)."""
    shape = ObjectShape(
        [
            (point.key, Constant(_known(PRICE_POINT_VALUES, point)))
            for point in field.selection("PricePoint")
        ]
    )
    key = columns.position(books.c.id)

    def prepare(run: Run, rows: Sequence[Any]) -> Getter:
        first = run.arguments(field)["first"]
        if not 1 <= first <= HISTORY_CAP:
            raise Fallback("priceHistory(first:) out of range")
        book_ids = list(by_first_key(rows, key))
        histories = run.read(queries.price_history_by_book_ids, book_ids, first)
        points = [point for book_id in book_ids for point in histories.get(book_id, ())]
        built = iter(shape.build(run, points))
        by_book = {
            book_id: list(islice(built, len(histories.get(book_id, ())))) for book_id in book_ids
        }
        return lambda row: by_book[row[key]]

    return prepare


def category_shape(selection: list[PlannedField], columns: Columns) -> ObjectShape:
    """Categories over rows of ``columns`` (their own table, or joined to books)."""
    key = columns.position(categories.c.id)
    return ObjectShape([(field.key, _category_field(field, columns, key)) for field in selection])


def _category_field(field: PlannedField, columns: Columns, key: int) -> Prepare:
    if field.name == "__typename":
        return Constant(typename("Category"))
    if field.name == "bookCount":
        return _book_count(key)
    if field.name == "books":
        return _category_books(field, key)
    value: ColumnValue = _known(CATEGORY_VALUES, field)
    return Constant(value(columns))


def _book_count(key: int) -> Prepare:
    def prepare(run: Run, rows: Sequence[Any]) -> Getter:
        counts = run.read(queries.book_counts_by_category, list(by_first_key(rows, key)))
        return lambda row: counts.get(row[key], 0)

    return prepare


def _category_books(field: PlannedField, key: int) -> Prepare:
    connection = ConnectionShape(field.selection("BookConnection"))

    def prepare(run: Run, rows: Sequence[Any]) -> Getter:
        arguments = run.arguments(field)
        page = page_request(arguments)
        listing = category_books_listing(arguments)
        category_ids = list(by_first_key(rows, key))
        pages = category_pages(run, connection.columns, listing, page, category_ids)
        built = dict(zip(category_ids, connection.build(run, pages), strict=True))
        return lambda row: built[row[key]]

    return prepare


PageGetter: TypeAlias = Callable[[PageData, int, list[list[dict[str, Any]]]], Any]
"""One key of a page's connection object: the page, its first book's place, the books."""


class ConnectionShape:
    """``BookConnection`` over pages of book rows; the books of all pages are one level."""

    def __init__(self, selection: list[PlannedField]) -> None:
        self.columns = Columns()
        self.columns.position(books.c.id)
        self.nodes: list[ObjectShape] = []
        self.fields: list[tuple[str, PageGetter]] = [
            (field.key, self._field(field)) for field in selection
        ]

    def build(self, run: Run, pages: Sequence[PageData]) -> list[dict[str, Any]]:
        rows = [row for page in pages for row in page.rows]
        nodes = [shape.build(run, rows) for shape in self.nodes]
        built = []
        offset = 0
        for page in pages:
            built.append({key: get(page, offset, nodes) for key, get in self.fields})
            offset += len(page.rows)
        return built

    def _field(self, field: PlannedField) -> PageGetter:
        if field.name == "__typename":
            return lambda _page, _offset, _nodes: "BookConnection"
        if field.name == "totalCount":
            return lambda page, _offset, _nodes: page.total()
        if field.name == "count":
            return _bounded_count(field)
        if field.name == "pageInfo":
            info = [(f.key, _known(PAGE_INFO_VALUES, f)) for f in field.selection("PageInfo")]
            return lambda page, _offset, _nodes: {key: get(page.info) for key, get in info}
        if field.name == "edges":
            return self._edges(field.selection("BookEdge"))
        raise Unsupported(f"BookConnection.{field.name}")

    def _edges(self, selection: list[PlannedField]) -> PageGetter:
        """Edges built column by column: each key's values for the whole page at once."""
        if not selection:  # every field skipped: one empty object per edge all the same
            return lambda page, _offset, _nodes: [{} for _ in page.rows]
        build = records(tuple(field.key for field in selection))
        columns = [self._edge_column(field) for field in selection]
        return lambda page, offset, nodes: build(*[c(page, offset, nodes) for c in columns])

    def _edge_column(self, field: PlannedField) -> PageGetter:
        if field.name == "__typename":
            return lambda page, _offset, _nodes: ["BookEdge"] * len(page.rows)
        if field.name == "cursor":
            return lambda page, _offset, _nodes: page.cursors
        if field.name == "node":
            shape = len(self.nodes)
            self.nodes.append(book_shape(field.selection("Book"), self.columns))
            return lambda page, offset, nodes: nodes[shape][offset : offset + len(page.rows)]
        raise Unsupported(f"BookEdge.{field.name}")
