"""An in-memory books.toscrape.com: URL path in, response out, with changes and faults.

Pages are the real saved ones (``tests/fixtures/books_toscrape/pages``) while their content is
what it was when they were saved, and rendered from the (possibly changed) catalogue otherwise,
so a crawler test sees real markup wherever it can and still sees every change it makes.
Thread-safe: the HTTP server in :mod:`tests.support.mirror.server` calls :meth:`MirrorSite.get` from
many threads while a test changes the site.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.support.mirror.render import (
    PER_PAGE,
    ROOT_CATEGORY,
    Book,
    Category,
    category_of,
    page_count,
    product_path,
    render_listing_page,
    render_product_page,
    sidebar_categories,
)
from tests.support.snapshot_truth import snapshot_books

PAGES_DIR = Path(__file__).parents[2] / "fixtures" / "books_toscrape" / "pages"
HTML = "text/html; charset=utf-8"

_CATALOG_PAGE = re.compile(r"catalogue/page-(?P<page>[1-9]\d*)\.html")
_ROOT_CATEGORY_PAGE = re.compile(
    r"catalogue/category/books_1/(?:index|page-(?P<page>[1-9]\d*))\.html"
)
_CATEGORY_PAGE = re.compile(
    r"catalogue/category/books/(?P<slug>[^/]+)_(?P<id>\d+)/(?:index|page-(?P<page>[1-9]\d*))\.html"
)
_PRODUCT_PAGE = re.compile(r"catalogue/(?P<slug>[^/]+)_(?P<id>\d+)/index\.html")
_RECENT_LINK = re.compile(r'<h3><a href="\.\./(?P<dir>[^"/]+)/index\.html"')


@dataclass(frozen=True)
class Response:
    """What the mirror answers: status, Content-Type and the UTF-8 body."""

    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: fail every time


def recently_viewed_paths(html: str) -> list[str]:
    """Site paths of the books a product page lists under "Products you recently viewed"."""
    _, found, section = html.partition("<h2>Products you recently viewed</h2>")
    if not found:
        return []
    return [f"catalogue/{link['dir']}/index.html" for link in _RECENT_LINK.finditer(section)]


@cache
def _real_pages(directory: Path) -> dict[str, bytes]:
    """The saved real pages by site path; read once per process (they never change)."""
    return {
        file.relative_to(directory).as_posix(): file.read_bytes()
        for file in sorted(directory.rglob("*.html"))
    }


def _error(status: int) -> Response:
    phrase = HTTPStatus(status).phrase
    body = (
        f"<html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{phrase}</h1></body></html>\n"
    )
    return Response(status, HTML, body.encode("utf-8"))


def _price(value: float | Decimal | int | str) -> float:
    """A GBP amount rounded to pence, stored as the catalogue stores prices (a float)."""
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    if amount < 0:
        raise ValueError(f"negative price: {value!r}")
    return float(amount)


class MirrorSite:
    """books.toscrape.com from the bundled catalogue, with hooks to change it and break it.

    Paths are URL paths as a client sends them ("/", "/index.html", "/catalogue/page-2.html",
    "/catalogue/<slug>_<id>/index.html", "/catalogue/category/books/<slug>_<id>/index.html" or
    "page-K.html", "/catalogue/category/books_1/..."); a query string is ignored. Faults,
    truncation and request counts are keyed by that path without its query, exactly as sent
    ("/" and "/index.html" are different keys).

    Pages the real site has but the fixture does not hold are rendered: the 949 other product
    pages (with an empty "recently viewed" block, as for a fresh session), the other 78
    category pages, and the root category "Books" (books_1: all books, in catalogue order).
    A category's page-1.html is its index.html, as the pager's "previous" link on page 2
    expects. Everything else, robots.txt included, is 404.
    """

    def __init__(
        self, books: Iterable[Book] | None = None, *, pages_dir: Path | None = PAGES_DIR
    ) -> None:
        """``books`` defaults to the bundled catalogue; ``pages_dir=None`` renders every page."""
        reference = snapshot_books()
        initial = reference if books is None else tuple(books)
        self._lock = threading.RLock()
        self._initial = {int(book["id"]): dict(book) for book in initial}
        # Real pages are served only while what they show equals the bundled catalogue.
        self._reference = {int(book["id"]): dict(book) for book in reference}
        self._reference_listing: list[Book] = [
            book for _, book in sorted(self._reference.items(), key=_listing_order)
        ]
        self._real = {} if pages_dir is None else _real_pages(pages_dir)
        self._categories = sidebar_categories(initial)
        self._books: dict[int, dict[str, Any]] = {}
        self._by_upc: dict[str, int] = {}
        self._removed: set[int] = set()
        self._priceless: set[int] = set()
        self._faults: dict[str, _Fault] = {}
        self._truncated: set[str] = set()
        self._hits: Counter[str] = Counter()
        self._cache: dict[str, Response] = {}
        self.reset()

    # ------------------------------------------------------------------ changes and faults

    def reset(self) -> None:
        """Back to the initial catalogue: no changes, faults, truncations or request counts."""
        with self._lock:
            self._books = {book_id: dict(book) for book_id, book in self._initial.items()}
            self._by_upc = {book["upc"]: book_id for book_id, book in self._books.items()}
            self._removed.clear()
            self._priceless.clear()
            self._faults.clear()
            self._truncated.clear()
            self._hits.clear()
            self._cache.clear()

    def set_price(self, upc: str, price_gbp: float | Decimal | int | str) -> None:
        """Change the book's price (excl. and incl. tax, tax stays £0.00) everywhere it shows."""
        price = _price(price_gbp)
        self._update(upc, price=price, price_excl_tax=price, price_incl_tax=price)

    def set_availability(self, upc: str, available: int) -> None:
        """Change the stock count; 0 makes the book "Unavailable" (Oscar's out-of-stock text)."""
        if available < 0:
            raise ValueError(f"negative stock: {available}")
        text = f"In stock ({available} available)" if available else "Unavailable"
        self._update(upc, availability=text, availability_count=available, in_stock=available > 0)

    def remove_book(self, upc: str) -> None:
        """Take the book off the site: gone from every listing, its product page answers 404."""
        with self._lock:
            self._removed.add(self._id(upc))
            self._cache.clear()

    def drop_price(self, upc: str) -> None:
        """Serve the book's product page without p.price_color and the price/tax rows."""
        with self._lock:
            self._priceless.add(self._id(upc))
            self._cache.clear()

    def fail(self, path: str, status: int = 500, *, times: int | None = None) -> None:
        """Answer ``path`` with ``status``: always, or for the next ``times`` requests only."""
        if not 400 <= status <= 599:
            raise ValueError(f"not an error status: {status}")
        if times is not None and times < 1:
            raise ValueError(f"times must be positive: {times}")
        with self._lock:
            self._faults[_key(path)] = _Fault(status, times)

    def truncate(self, path: str) -> None:
        """Serve only the first half of ``path``'s body (a complete response, cut-off HTML)."""
        with self._lock:
            self._truncated.add(_key(path))

    # ------------------------------------------------------------------ inspection

    def hits(self, path: str) -> int:
        """How many times ``path`` (query string ignored) was requested."""
        with self._lock:
            return self._hits[_key(path)]

    @property
    def requests(self) -> dict[str, int]:
        """Request counts by path, a copy."""
        with self._lock:
            return dict(self._hits)

    def book(self, upc: str) -> dict[str, Any]:
        """The book's current row (a copy), removed or not."""
        with self._lock:
            return dict(self._books[self._id(upc)])

    def books(self) -> list[dict[str, Any]]:
        """The books on the site now, in "All products" order (copies)."""
        with self._lock:
            return [dict(book) for book in self._listed()]

    def product_url_path(self, upc: str) -> str:
        """The URL path of the book's product page, e.g. "/catalogue/olio_984/index.html"."""
        with self._lock:
            return "/" + product_path(self._books[self._id(upc)])

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    # ------------------------------------------------------------------ serving

    def get(self, path: str) -> Response:
        """The response to a GET of ``path``; counts the request and applies any fault."""
        key = _key(path)
        with self._lock:
            self._hits[key] += 1
            fault = self._faults.get(key)
            if fault is not None:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._faults[key]
                return _error(fault.status)
            response = self._cache.get(key)
            if response is None:
                response = self._cache[key] = self._route(key.lstrip("/"))
            if key in self._truncated:
                text = response.text
                response = Response(
                    response.status,
                    response.content_type,
                    text[: len(text) // 2].encode("utf-8"),
                )
            return response

    def _route(self, path: str) -> Response:
        if path in ("", "index.html"):
            return self._listing("index.html", self._listed(), None, 1, home=True)
        if match := _CATALOG_PAGE.fullmatch(path):
            return self._listing(path, self._listed(), None, int(match["page"]))
        if match := _ROOT_CATEGORY_PAGE.fullmatch(path):
            page = int(match["page"] or 1)
            return self._listing(ROOT_CATEGORY.page_path(page), self._listed(), ROOT_CATEGORY, page)
        if match := _CATEGORY_PAGE.fullmatch(path):
            wanted = (int(match["id"]), match["slug"])
            found = [known for known in self._categories if (known.id, known.slug) == wanted]
            if not found:
                return _error(404)
            books = _in_category(self._listed(), found[0])
            page = int(match["page"] or 1)
            # page-1.html (the pager's "previous" from page 2) is the category's index.html.
            return self._listing(found[0].page_path(page), books, found[0], page)
        if match := _PRODUCT_PAGE.fullmatch(path):
            book_id = int(match["id"])
            book = self._books.get(book_id)
            if book is None or book_id in self._removed or product_path(book) != path:
                return _error(404)
            return self._product(path, book_id)
        return _error(404)  # robots.txt included: the real site has none

    def _listed(self) -> list[dict[str, Any]]:
        return [
            book
            for book_id, book in sorted(self._books.items(), key=_listing_order)
            if book_id not in self._removed
        ]

    def _listing(
        self,
        path: str,
        books: Sequence[Book],
        category: Category | None,
        page: int,
        *,
        home: bool = False,
    ) -> Response:
        if page > page_count(len(books)):
            return _error(404)
        real = self._real.get(path)
        if real is not None and self._same_as_reference(books, category, page):
            return Response(200, HTML, real)
        html = render_listing_page(
            books, page=page, category=category, home=home, categories=self._categories
        )
        return Response(200, HTML, html.encode("utf-8"))

    def _same_as_reference(
        self, books: Sequence[Book], category: Category | None, page: int
    ) -> bool:
        """Whether a listing page shows what the saved real page shows: same total, same rows."""
        scope = self._reference_listing
        if category is not None and category != ROOT_CATEGORY:
            scope = _in_category(scope, category)
        window = slice((page - 1) * PER_PAGE, page * PER_PAGE)
        return len(scope) == len(books) and scope[window] == list(books[window])

    def _product(self, path: str, book_id: int) -> Response:
        book = self._books[book_id]
        real = self._real.get(path)
        recent_paths = recently_viewed_paths(real.decode("utf-8")) if real is not None else []
        by_path = {product_path(other): other_id for other_id, other in self._books.items()}
        recent_ids = [by_path[recent] for recent in recent_paths if recent in by_path]

        def unchanged(other_id: int) -> bool:
            return other_id not in self._removed and self._books[other_id] == self._reference.get(
                other_id
            )

        if (
            real is not None
            and book_id not in self._priceless
            and len(recent_ids) == len(recent_paths)
            and all(unchanged(other_id) for other_id in [book_id, *recent_ids])
        ):
            return Response(200, HTML, real)
        recently_viewed = [self._books[i] for i in recent_ids if i not in self._removed]
        html = render_product_page(
            book, recently_viewed=recently_viewed, show_price=book_id not in self._priceless
        )
        return Response(200, HTML, html.encode("utf-8"))

    # ------------------------------------------------------------------ helpers

    def _id(self, upc: str) -> int:
        try:
            return self._by_upc[upc]
        except KeyError:
            raise KeyError(f"no book with UPC {upc!r}") from None

    def _update(self, upc: str, **fields: Any) -> None:
        with self._lock:
            self._books[self._id(upc)].update(fields)
            self._cache.clear()


def _key(path: str) -> str:
    """A request path without query or fragment, percent-decoded, with its leading slash."""
    raw = urlsplit(path).path
    return "/" + unquote(raw).lstrip("/")


def _in_category(books: Iterable[Book], category: Category) -> list[Book]:
    """A category page's books: that category's, newest (highest id) first, as on the site."""
    chosen = [book for book in books if category_of(book) == category]
    return sorted(chosen, key=lambda book: -int(book["id"]))


def _listing_order(item: tuple[int, Book]) -> tuple[int, int, int]:
    """ "All products" order: the catalogue's listing page and position, then id descending."""
    book_id, book = item
    return (int(book.get("listing_page", 0)), int(book.get("listing_position", 0)), -book_id)
