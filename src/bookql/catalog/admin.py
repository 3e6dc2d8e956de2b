"""Administrators' corrections to the catalogue, validated, each price change recorded.

Deleting a book marks it removed (its price history and predictions keep pointing at it).
Every change reads the row it changes locked, in its write transaction (``FOR UPDATE`` on
PostgreSQL; SQLite's write transactions begin ``IMMEDIATE``), and takes its time and
derived values (the shown price) after the lock: concurrent edits apply one after the
other, and the newest price point is always the book as it is. A ``version`` given by the
client must be the row's current one, else the edit is ``CONFLICT`` and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookql.catalog.money import to_pence
from bookql.catalog.queries import BOOK_COLUMNS
from bookql.catalog.slugs import slugify
from bookql.catalog.tables import ADMIN, books, categories, descriptions, price_points
from bookql.core.errors import BadUserInput, Conflict, NotFound
from bookql.db.engine import async_write_transaction
from bookql.db.types import utcnow

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_UPC = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PRICED = ("price_excl_tax_pence", "price_incl_tax_pence", "tax_pence", "availability")
MAX_PENCE = 2**31 - 1  # the price columns are 32-bit integers on PostgreSQL


def pence(name: str, amount: float) -> int:
    """GBP from the API as exact pence; negative or sub-penny amounts are refused."""
    try:
        value = to_pence(amount)
    except ValueError as exc:
        raise BadUserInput(f"`{name}`: {exc}", field=name) from None
    if value < 0:
        raise BadUserInput(f"`{name}` must not be negative", field=name)
    if value > MAX_PENCE:
        raise BadUserInput(f"`{name}` is above {MAX_PENCE / 100:.2f}", field=name)
    return value


def _text(name: str, value: str, *, limit: int = 10_000) -> str:
    value = value.strip()
    if not value:
        raise BadUserInput(f"`{name}` must not be empty", field=name)
    if len(value) > limit:
        raise BadUserInput(f"`{name}` is longer than {limit} characters", field=name)
    return value


@dataclass
class BookChanges:
    """Validated column values for an insert or an update; ``None`` fields are left alone."""

    title: str | None = None
    product_type: str | None = None
    price_excl_tax_pence: int | None = None
    price_incl_tax_pence: int | None = None
    tax_pence: int | None = None
    currency: str | None = None
    availability: int | None = None
    rating: int | None = None
    num_reviews: int | None = None
    image_url: str | None = None
    product_url: str | None = None
    category_id: int | None = None
    description: str | None = field(default=None)
    clear_description: bool = False

    def validate(self) -> None:
        if self.title is not None:
            self.title = _text("title", self.title, limit=1000)
        if self.product_type is not None:
            self.product_type = _text("productType", self.product_type, limit=100)
        if self.rating is not None and not 1 <= self.rating <= 5:
            raise BadUserInput("`rating` must be between 1 and 5", field="rating")
        for name, value in (("availability", self.availability), ("numReviews", self.num_reviews)):
            if value is not None and value < 0:
                raise BadUserInput(f"`{name}` must not be negative", field=name)
        if self.currency is not None and not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise BadUserInput("`currency` is a three-letter code such as GBP", field="currency")
        for name, url in (("imageUrl", self.image_url), ("productUrl", self.product_url)):
            if url is not None and not re.match(r"^https?://\S+$", url):
                raise BadUserInput(f"`{name}` must be an http(s) URL", field=name)

    def columns(self) -> dict[str, Any]:
        skip = {"description", "clear_description"}
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }


def _check_prices(row: dict[str, Any]) -> None:
    if row["price_incl_tax_pence"] != row["price_excl_tax_pence"] + row["tax_pence"]:
        raise BadUserInput(
            "`priceInclTax` must equal `priceExclTax` plus `tax`", field="priceInclTax"
        )


class CatalogAdmin:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_book(self, upc: str, changes: BookChanges) -> Row[Any]:
        if not _UPC.match(upc):
            raise BadUserInput("`upc` is 1 to 64 letters, digits, '-' or '_'", field="upc")
        changes.validate()
        values = changes.columns()
        missing = [
            name
            for name in ("title", "price_excl_tax_pence", "availability", "rating", "category_id")
            if name not in values
        ]
        if missing:
            raise BadUserInput(f"missing: {', '.join(missing)}")
        values.setdefault("tax_pence", 0)
        values.setdefault(
            "price_incl_tax_pence", values["price_excl_tax_pence"] + values["tax_pence"]
        )
        values.setdefault("product_type", "Books")
        values.setdefault("currency", "GBP")
        values.setdefault("num_reviews", 0)
        values.setdefault("image_url", "")
        values.setdefault("product_url", "")
        _check_prices(values)
        try:
            async with async_write_transaction(self.engine) as conn:
                now = utcnow()
                result = await conn.execute(
                    books.insert()
                    .values(upc=upc, first_seen_at=now, last_seen_at=now, source=ADMIN, **values)
                    .returning(books.c.id)
                )
                book_id = result.scalar_one()
                if changes.description:
                    await conn.execute(
                        descriptions.insert().values(
                            book_id=book_id, description=changes.description
                        )
                    )
                await _record_price(conn, book_id, values, now)
                return await _book(conn, book_id)
        except IntegrityError:
            raise Conflict(f"a book with UPC {upc!r} exists already", field="upc") from None

    async def update_book(
        self, upc: str, changes: BookChanges, *, version: int | None = None
    ) -> Row[Any]:
        changes.validate()
        values = changes.columns()
        async with async_write_transaction(self.engine) as conn:
            current = await _locked_book(conn, upc)
            _expect_version("book", current.version, version)
            now = utcnow()  # after the lock: price points follow the order of the writes
            merged = {**current._asdict(), **values}
            if any(
                name in values
                for name in ("price_excl_tax_pence", "price_incl_tax_pence", "tax_pence")
            ):
                if "price_incl_tax_pence" not in values:
                    merged["price_incl_tax_pence"] = (
                        merged["price_excl_tax_pence"] + merged["tax_pence"]
                    )
                    values["price_incl_tax_pence"] = merged["price_incl_tax_pence"]
                _check_prices(merged)
            if values:
                await conn.execute(update(books).where(books.c.id == current.id).values(**values))
            if any(merged[name] != getattr(current, name) for name in PRICED):
                await _record_price(conn, current.id, merged, now)
            if changes.clear_description:
                await conn.execute(
                    descriptions.delete().where(descriptions.c.book_id == current.id)
                )
            elif changes.description is not None:
                await _set_description(conn, current.id, changes.description)
            return await _book(conn, current.id)

    async def delete_book(self, upc: str, *, version: int | None = None) -> Row[Any]:
        async with async_write_transaction(self.engine) as conn:
            current = await _locked_book(conn, upc)
            _expect_version("book", current.version, version)
            if current.removed_at is None:
                await conn.execute(
                    update(books).where(books.c.id == current.id).values(removed_at=utcnow())
                )
            return await _book(conn, current.id)

    async def create_category(self, name: str, slug: str | None) -> Row[Any]:
        name = _text("name", name, limit=200)
        slug = _checked_slug(slug) if slug is not None else _slug_of(name)
        try:
            async with async_write_transaction(self.engine) as conn:
                result = await conn.execute(
                    categories.insert().values(name=name, slug=slug).returning(*categories.c)
                )
                return result.one()
        except IntegrityError:
            raise Conflict("a category with that name or slug exists already") from None

    async def update_category(
        self, category_id: int, name: str | None, slug: str | None, *, version: int | None = None
    ) -> Row[Any]:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = _text("name", name, limit=200)
        if slug is not None:
            values["slug"] = _checked_slug(slug)
        by_id = categories.c.id == category_id
        try:
            async with async_write_transaction(self.engine) as conn:
                current = (
                    await conn.execute(select(categories).where(by_id).with_for_update())
                ).one_or_none()
                if current is None:
                    raise NotFound("no such category", field="id")
                _expect_version("category", current.version, version)
                if values:
                    await conn.execute(update(categories).where(by_id).values(**values))
                # Read again, not RETURNING: on SQLite a trigger moves the version afterwards.
                return (await conn.execute(select(categories).where(by_id))).one()
        except IntegrityError:
            raise Conflict("a category with that name or slug exists already") from None


def _checked_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise BadUserInput("a slug is lower-case words joined by '-'", field="slug")
    return slug


def _slug_of(name: str) -> str:
    try:
        return slugify(name)
    except ValueError:
        raise BadUserInput(
            "the name has no letters or digits to make a slug of", field="name"
        ) from None


async def _book(conn: AsyncConnection, book_id: int) -> Row[Any]:
    result = await conn.execute(select(*BOOK_COLUMNS).where(books.c.id == book_id))
    return result.one()


async def _locked_book(conn: AsyncConnection, upc: str) -> Row[Any]:
    """The book's row, locked until the transaction ends (SQLite: the whole database is)."""
    statement = select(books).where(books.c.upc == upc).with_for_update()
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        raise NotFound(f"no book with UPC {upc!r}", field="id")
    return row


def _expect_version(what: str, current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise Conflict(
            f"the {what} changed since version {expected} (it is at version {current}):"
            " read it again and redo the edit",
            field="version",
            currentVersion=current,
        )


async def _record_price(
    conn: AsyncConnection, book_id: int, values: dict[str, Any], now: datetime
) -> None:
    await conn.execute(
        price_points.insert().values(
            book_id=book_id, observed_at=now, **{name: values[name] for name in PRICED}
        )
    )


async def _set_description(conn: AsyncConnection, book_id: int, text: str) -> None:
    updated = await conn.execute(
        update(descriptions).where(descriptions.c.book_id == book_id).values(description=text)
    )
    if updated.rowcount == 0:
        await conn.execute(descriptions.insert().values(book_id=book_id, description=text))
