"""The catalogue's root fields and ``node`` types, compiled.

Each look-up is one statement prepared at planning time (only its key is bound per request)
and selects only the columns its selection reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select

from bookql.catalog.graphql.compiled.listings import (
    BooksPages,
    book_source,
    books_listing,
    page_request,
)
from bookql.catalog.graphql.compiled.objects import ConnectionShape, book_shape, category_shape
from bookql.catalog.graphql.compiled.stats import compile_stats
from bookql.catalog.tables import books, categories
from bookql.graphql.compiled.node import NodeCompiler, NodeFetch
from bookql.graphql.compiled.plan import Fallback, PlannedField, RootCompiler, RootFetch, Run
from bookql.graphql.compiled.rows import Columns, ObjectShape
from bookql.graphql.relay import expect_global_id


def _one_of(arguments: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """The one argument given (``book``'s id or upc, say); the resolver refuses otherwise."""
    given = [(name, arguments[name]) for name in names if arguments[name] is not None]
    if len(given) != 1:
        raise Fallback(f"not exactly one of {names}")
    return given[0]


class Lookup:
    """Objects of one selection by one key column: a statement prepared once."""

    def __init__(self, shape: ObjectShape, statement: Select[Any], key: ColumnElement[Any]) -> None:
        self.shape = shape
        self.statement = statement.where(key == bindparam("key"))

    def fetch(self, run: Run, key: Any) -> dict[str, Any] | None:
        rows = run.conn.execute(self.statement, {"key": key}).all()
        return self.shape.build(run, rows)[0] if rows else None


def _book_lookup(selection: list[PlannedField], key: ColumnElement[Any]) -> Lookup:
    columns = Columns()
    shape = book_shape(selection, columns)
    statement = select(*columns.selected).select_from(book_source(books, columns))
    return Lookup(shape, statement, key)


def _category_lookup(selection: list[PlannedField], key: ColumnElement[Any]) -> Lookup:
    columns = Columns()
    shape = category_shape(selection, columns)
    return Lookup(shape, select(*columns.selected), key)


def compile_book(field: PlannedField) -> RootFetch:
    lookup = _book_lookup(field.selection("Book"), books.c.upc)

    def fetch(run: Run) -> Any:
        name, value = _one_of(run.arguments(field), "id", "upc")
        return lookup.fetch(run, expect_global_id(value, "Book") if name == "id" else value)

    return fetch


def compile_books(field: PlannedField) -> RootFetch:
    connection = ConnectionShape(field.selection("BookConnection"))
    pages = BooksPages(connection.columns)

    def fetch(run: Run) -> Any:
        arguments = run.arguments(field)
        page = page_request(arguments)
        listing = books_listing(run, arguments)
        return connection.build(run, [pages.page(run, listing, page)])[0]

    return fetch


def compile_category(field: PlannedField) -> RootFetch:
    selection = field.selection("Category")
    by_id = _category_lookup(selection, categories.c.id)
    by_slug = _category_lookup(selection, categories.c.slug)

    def fetch(run: Run) -> Any:
        name, value = _one_of(run.arguments(field), "id", "slug")
        if name == "slug":
            return by_slug.fetch(run, value)
        key = expect_global_id(value, "Category")
        return by_id.fetch(run, int(key)) if key.isdigit() else None

    return fetch


def compile_categories(field: PlannedField) -> RootFetch:
    columns = Columns()
    shape = category_shape(field.selection("Category"), columns)
    statement = select(*columns.selected).order_by(categories.c.name)
    return lambda run: shape.build(run, run.conn.execute(statement).all())


def book_node(selection: list[PlannedField]) -> NodeFetch:
    return _book_lookup(selection, books.c.upc).fetch


def category_node(selection: list[PlannedField]) -> NodeFetch:
    lookup = _category_lookup(selection, categories.c.id)
    return lambda run, key: lookup.fetch(run, int(key)) if key.isdigit() else None


ROOTS: dict[str, RootCompiler] = {
    "book": compile_book,
    "books": compile_books,
    "category": compile_category,
    "categories": compile_categories,
    "stats": compile_stats,
}

NODES: dict[str, NodeCompiler] = {"Book": book_node, "Category": category_node}
