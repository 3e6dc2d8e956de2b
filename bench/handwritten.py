"""The hand-written baseline of the catalogue benchmark: Starlette and orjson, no GraphQL.

It answers what ``bench.catalog_queries`` asks the GraphQL API with the same JSON (the whole
GraphQL response, ``{"data": …}``), reading as bookql's compiled queries read: bookql's
``BlockingDatabase`` (a sync engine from bookql's own factory, so the same driver, pool and
SQLite pragmas), each request's reads whole on one connection on a worker thread, with the
same SQL written out by hand: a page or a book joined to its category, and one statement
per aggregate of ``stats``. The benchmark captures both sides' statements and drivers and
warns when they drift apart. Rows come back as the driver returns them, and nothing is
cached between requests: what remains between the two sides is the API layer.

    python -m bench.handwritten --port 8001   # the database from BOOKQL_DATA_DIR / _DATABASE_URL
"""

from __future__ import annotations

import argparse
import base64
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

import orjson
import uvicorn
from sqlalchemy import Connection, Engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookql.core.config import Settings, get_settings
from bookql.db.blocking import BlockingDatabase

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_BUCKET_PENCE = 1000
BOOKS_PAGE = text(
    "SELECT books.id, books.upc, books.title, books.price_incl_tax_pence,"
    " books.price_excl_tax_pence, books.availability, books.rating, books.num_reviews,"
    " books.image_url, categories.id AS category_id, categories.name AS category_name,"
    " categories.slug AS category_slug, books.id AS sort_id"
    " FROM books JOIN categories ON categories.id = books.category_id"
    " WHERE books.removed_at IS NULL ORDER BY books.id ASC LIMIT :limit"
)
BOOK_BY_UPC = text(
    "SELECT books.id, books.upc, books.title, books.price_incl_tax_pence,"
    " books.price_excl_tax_pence, books.availability, books.rating, books.num_reviews,"
    " books.image_url, categories.id AS category_id, categories.name AS category_name,"
    " categories.slug AS category_slug"
    " FROM books JOIN categories ON categories.id = books.category_id WHERE books.upc = :upc"
)
FIGURES = text(
    "SELECT count(books.id) AS count_1, coalesce(sum(books.availability), :zero) AS coalesce_1,"
    " avg(books.price_incl_tax_pence) AS avg_1, min(books.price_incl_tax_pence) AS min_1,"
    " max(books.price_incl_tax_pence) AS max_1, avg(books.rating) AS avg_2"
    " FROM books WHERE books.removed_at IS NULL"
)
CATEGORY_COUNT = text("SELECT count(*) AS count_1 FROM categories")
LISTED_COUNT = text("SELECT count(*) AS count_1 FROM books WHERE books.removed_at IS NULL")
MIDDLE_PRICES = text(
    "SELECT books.price_incl_tax_pence FROM books WHERE books.removed_at IS NULL"
    " ORDER BY books.price_incl_tax_pence LIMIT :limit OFFSET :offset"
)
RATINGS = text(
    "SELECT books.rating, count(*) AS count_1 FROM books WHERE books.removed_at IS NULL"
    " GROUP BY books.rating"
)
HISTOGRAM = text(
    "SELECT books.price_incl_tax_pence / :width AS bucket, count(*) AS count_1 FROM books"
    " WHERE books.removed_at IS NULL GROUP BY books.price_incl_tax_pence / :width"
    " ORDER BY bucket"
)
BY_CATEGORY = text(
    "SELECT categories.id, categories.name, categories.slug,"
    " count(books.id) AS count_1, coalesce(sum(books.availability), :zero) AS coalesce_1,"
    " avg(books.price_incl_tax_pence) AS avg_1, min(books.price_incl_tax_pence) AS min_1,"
    " max(books.price_incl_tax_pence) AS max_1, avg(books.rating) AS avg_2"
    " FROM categories LEFT OUTER JOIN books"
    " ON books.category_id = categories.id AND books.removed_at IS NULL"
    " GROUP BY categories.id, categories.name, categories.slug ORDER BY categories.name"
)


def _global_id(type_name: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def _money(pence: Any) -> float | None:
    """GBP rounded to the penny, halves up: what the API promises for averages."""
    if pence is None:
        return None
    exact = Decimal(repr(float(pence))) / 100
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _book(row: Sequence[Any]) -> dict[str, Any]:
    # unpacked by position: a Row's attribute look-up costs ~1 us, ten times its index
    _, upc, title, price, price_excl_tax, availability, rating, reviews, image, *category = row
    return {
        "id": _global_id("Book", upc),
        "upc": upc,
        "title": title,
        "price": price / 100,
        "priceExclTax": price_excl_tax / 100,
        "availability": availability,
        "inStock": availability > 0,
        "rating": rating,
        "numReviews": reviews,
        "imageUrl": image,
        "category": {"name": category[1], "slug": category[2]},
    }


def read_books(conn: Connection, first: int) -> dict[str, Any]:
    """``books(first: N)``: one page in site order, each book with its category."""
    rows = conn.execute(BOOKS_PAGE, {"limit": first + 1}).all()[:first]
    return {"books": {"edges": [{"node": _book(row)} for row in rows]}}


def read_book(conn: Connection, upc: str) -> dict[str, Any]:
    """``book(upc:)``: the book and its category, or null."""
    row = conn.execute(BOOK_BY_UPC, {"upc": upc}).first()
    return {"book": None if row is None else _book(row)}


def _figures(values: Any) -> dict[str, Any]:
    count, stock, average, low, high, rating = values
    return {
        "bookCount": count,
        "averagePrice": _money(average),
        "minPrice": _money(low),
        "maxPrice": _money(high),
        "averageRating": None if rating is None else float(rating),
        "totalStock": int(stock),
    }


def read_stats(conn: Connection, width: int) -> dict[str, Any]:
    """``stats``: every catalogue figure, one statement per aggregate."""
    figures = _figures(conn.execute(FIGURES, {"zero": 0}).one())
    categories = conn.execute(CATEGORY_COUNT).scalar_one()
    listed = conn.execute(LISTED_COUNT).scalar_one()
    median = None
    if listed:
        middle = {"limit": 2 - listed % 2, "offset": (listed - 1) // 2}
        prices = conn.execute(MIDDLE_PRICES, middle).scalars().all()
        median = sum(prices) / len(prices) / 100
    ratings: dict[int, int] = dict(conn.execute(RATINGS).all())
    buckets: dict[int, int] = dict(conn.execute(HISTOGRAM, {"width": width}).all())
    by_category = conn.execute(BY_CATEGORY, {"zero": 0}).all()  # a few dozen rows
    span = range(min(buckets), max(buckets) + 1) if buckets else range(0)
    return {
        "stats": {
            "totalBooks": figures["bookCount"],
            "totalCategories": categories,
            "totalStock": figures["totalStock"],
            "averagePrice": figures["averagePrice"],
            "medianPrice": median,
            "minPrice": figures["minPrice"],
            "maxPrice": figures["maxPrice"],
            "averageRating": figures["averageRating"],
            "ratingDistribution": [{"rating": r, "count": ratings.get(r, 0)} for r in range(1, 6)],
            "priceHistogram": [
                {"low": b * width / 100, "high": (b + 1) * width / 100, "count": buckets.get(b, 0)}
                for b in span
            ],
            "categories": [
                {"category": {"name": row[1], "slug": row[2]}, **_figures(row[3:])}
                for row in by_category
            ],
        }
    }


def _on_connection(engine: Engine, read: Callable[[Connection, T], Any], argument: T) -> Any:
    with engine.connect() as conn:
        return read(conn, argument)


async def _answer(request: Request, read: Callable[[Connection, T], Any], argument: T) -> Response:
    """``read`` whole on a worker thread (one hop, as bookql's compiled queries read), then
    the response, serialised by orjson on the event loop."""
    db: BlockingDatabase = request.app.state.db
    data = await db.run(_on_connection, db.engine, read, argument)
    return Response(orjson.dumps({"data": data}), media_type="application/json")


async def books_page(request: Request) -> Response:
    first = int(request.query_params.get("first", MAX_PAGE))
    if not 1 <= first <= MAX_PAGE:
        return Response(f"first: 1 to {MAX_PAGE}", status_code=400)
    return await _answer(request, read_books, first)


async def book_by_upc(request: Request) -> Response:
    return await _answer(request, read_book, request.query_params["upc"])


async def stats(request: Request) -> Response:
    width = int(request.query_params.get("bucketWidthPence", DEFAULT_BUCKET_PENCE))
    return await _answer(request, read_stats, width)


async def healthz(_request: Request) -> Response:
    return Response("ok")


def create_app(settings: Settings | None = None) -> Starlette:
    db = BlockingDatabase.for_settings(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        gc.freeze()  # as bookql's app does: what startup loaded stays out of collections
        yield
        db.close()

    app = Starlette(
        routes=[
            Route("/books", books_page),
            Route("/book", book_by_upc),
            Route("/stats", stats),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.db = db
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # uvicorn as `bookql serve` runs it: the same HTTP stack, logging and access log
    uvicorn.run(
        "bench.handwritten:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
