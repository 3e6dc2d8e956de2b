"""Relay plumbing: global ids, the ``Node`` interface, ``PageInfo`` and page arguments."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement, FromClause, Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.core.errors import BadUserInput
from bookql.db.cursors import b64decode, b64encode, decode_cursor, encode_cursor
from bookql.db.keyset import Ordering, fetch_page

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

PageArgument = Annotated[
    int | None, strawberry.argument(description=f"Page size, at most {MAX_PAGE_SIZE}.")
]
CursorArgument = Annotated[str | None, strawberry.argument(description="An edge's cursor.")]


def to_global_id(type_name: str, key: str | int) -> str:
    """Opaque and type-tagged: ``Book`` + its UPC, ``Category`` + its number, and so on."""
    return b64encode(f"{type_name}:{key}")


def from_global_id(global_id: str) -> tuple[str, str]:
    """``(type name, key)``; a malformed id is the caller's mistake (``BAD_USER_INPUT``)."""
    try:
        type_name, _, key = b64decode(global_id).partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"{global_id!r} is not a valid id") from None
    if not type_name or not key:
        raise BadUserInput(f"{global_id!r} is not a valid id")
    return type_name, key


def expect_global_id(global_id: str, type_name: str) -> str:
    """The key of an id that must name a ``type_name``."""
    found, key = from_global_id(global_id)
    if found != type_name:
        raise BadUserInput(f"{global_id!r} is the id of a {found}, not of a {type_name}")
    return key


@strawberry.interface(description="An object with a global, opaque, type-tagged id.")
class Node:
    id: strawberry.ID


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Validated Relay arguments: how many rows, which way, and from which cursor."""

    size: int
    forward: bool
    cursor: str | None

    @classmethod
    def from_args(
        cls,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
        *,
        max_size: int = MAX_PAGE_SIZE,
        default_size: int = DEFAULT_PAGE_SIZE,
    ) -> PageRequest:
        if first is not None and last is not None:
            raise BadUserInput("pass either `first` or `last`, not both")
        if after is not None and before is not None:
            raise BadUserInput("pass either `after` or `before`, not both")
        if last is not None or (before is not None and first is None):
            if after is not None:
                raise BadUserInput("`after` goes with `first`; use `before` with `last`")
            size = _checked_size("last", last, max_size, default_size)
            return cls(size=size, forward=False, cursor=before)
        if before is not None:
            raise BadUserInput("`before` goes with `last`; use `after` with `first`")
        size = _checked_size("first", first, max_size, default_size)
        return cls(size=size, forward=True, cursor=after)


def _checked_size(name: str, value: int | None, max_size: int, default_size: int) -> int:
    if value is None:
        return default_size
    if value < 0:
        raise BadUserInput(f"`{name}` must not be negative", argument=name)
    if value > max_size:
        raise BadUserInput(
            f"`{name}` is capped at {max_size} rows per page", argument=name, maximum=max_size
        )
    return value


@dataclass(frozen=True, slots=True)
class PageSlice:
    """The rows of one connection page with their (encoded) cursors and its ``PageInfo``."""

    rows: list[Row[Any]]
    cursors: list[str]
    page_info: PageInfo


async def load_page(
    engine: AsyncEngine,
    page: PageRequest,
    *,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    ordering: Ordering,
    source: FromClause | None = None,
) -> PageSlice:
    after_values = None
    if page.cursor is not None:
        after_values = ordering.parse_cursor_payload(decode_cursor(page.cursor))
        if after_values is None:
            raise BadUserInput(f"{page.cursor!r} is not a cursor of this list", argument="cursor")
    async with engine.connect() as conn:
        result = await fetch_page(
            conn,
            columns=columns,
            where=where,
            ordering=ordering,
            size=page.size,
            forward=page.forward,
            after_values=after_values,
            source=source,
        )
    cursors = [encode_cursor(payload) for payload in result.cursor_payloads]
    page_info = page_info_for(page, result.has_more, cursors)
    return PageSlice(rows=result.rows, cursors=cursors, page_info=page_info)


async def count_rows(
    engine: AsyncEngine, source: FromClause, where: Sequence[ColumnElement[bool]] = ()
) -> int:
    """A connection's ``totalCount``: the rows its pages walk through."""
    async with engine.connect() as conn:
        statement = select(func.count()).select_from(source).where(*where)
        return int((await conn.execute(statement)).scalar_one())


def page_info_for(page: PageRequest, has_more: bool, cursors: list[str]) -> PageInfo:
    """Relay's page info: "more" is known in the paging direction; behind a cursor, yes."""
    from_cursor = page.cursor is not None
    return PageInfo(
        has_next_page=has_more if page.forward else from_cursor,
        has_previous_page=from_cursor if page.forward else has_more,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )
