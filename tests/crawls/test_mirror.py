"""The offline books.toscrape.com mirror: its renderer against the real pages, and its site.

Equality with a real page means equality after :func:`normalise`: every run of ASCII
whitespace (space, tab, newline, carriage return, form feed, vertical tab) is replaced by one
space and the result is stripped at both ends. Nothing else is touched: tags, attributes,
entities, comments and non-ASCII characters (no-break spaces included) must match exactly.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

import pytest

from tests.support import mirror as mirror_package
from tests.support.mirror import Mirror
from tests.support.mirror.render import (
    Category,
    category_of,
    product_path,
    render_listing_page,
    render_product_page,
    sidebar_categories,
)
from tests.support.mirror.server import serve_mirror
from tests.support.mirror.site import PAGES_DIR, MirrorSite, recently_viewed_paths
from tests.support.snapshot_truth import snapshot_books

BOOKS = snapshot_books()
BY_PATH = {product_path(book): book for book in BOOKS}
BY_ID = {int(book["id"]): book for book in BOOKS}
CATEGORIES = {category.path: category for category in sidebar_categories(BOOKS)}
REAL = sorted(path.relative_to(PAGES_DIR).as_posix() for path in PAGES_DIR.rglob("*.html"))
PRODUCT_PAGES = [path for path in REAL if path in BY_PATH]
LISTING_PAGES = [path for path in REAL if path not in BY_PATH]

# The package's fixtures, bound here so pytest finds them (tests/conftest.py is not ours).
mirror_site = mirror_package.mirror_site
mirror = mirror_package.mirror

ATTIC = "a897fe39b1053632"  # A Light in the Attic, id 1000: home page, Poetry, £51.77


def normalise(html: str) -> str:
    """Collapse every run of ASCII whitespace to one space and strip (see the module doc)."""
    return re.sub(r"[ \t\n\r\f\v]+", " ", html).strip()


def real_page(path: str) -> str:
    return (PAGES_DIR / path).read_text(encoding="utf-8")


def links(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


def next_link(html: str) -> str | None:
    found = links(html, r'<li class="next"><a href="([^"]+)">next</a></li>')
    return found[0] if found else None


def product_links(html: str) -> list[str]:
    return links(html, r'<h3><a href="([^"]+)" title=')


def render_real_listing(path: str) -> str:
    """Render the listing page at ``path`` from the catalogue alone."""
    if path == "index.html":
        return render_listing_page(BOOKS, home=True)
    if match := re.fullmatch(r"catalogue/page-(\d+)\.html", path):
        return render_listing_page(BOOKS, page=int(match[1]))
    category = CATEGORIES[path]
    books = sorted(
        (book for book in BOOKS if category_of(book) == category), key=lambda b: -b["id"]
    )
    return render_listing_page(books, category=category)


def in_category(category: Category) -> set[str]:
    return {product_path(book) for book in BOOKS if category_of(book) == category}


# --------------------------------------------------------------------------- renderer


def test_the_fixture_holds_the_104_real_pages():
    """Guards the parametrised tests below against silently shrinking."""
    assert len(PRODUCT_PAGES) == 51
    assert len(LISTING_PAGES) == 53
    assert "index.html" in LISTING_PAGES
    assert {f"catalogue/page-{n}.html" for n in range(1, 51)} <= set(LISTING_PAGES)
    assert {
        "catalogue/category/books/travel_2/index.html",
        "catalogue/category/books/mystery_3/index.html",
    } <= set(LISTING_PAGES)


@pytest.mark.parametrize("path", PRODUCT_PAGES)
def test_product_page_renders_as_the_real_page(path: str):
    real = real_page(path)
    recent = [BY_PATH[recent] for recent in recently_viewed_paths(real)]
    rendered = render_product_page(BY_PATH[path], recently_viewed=recent)
    assert normalise(rendered) == normalise(real)


def test_recently_viewed_blocks_were_really_rendered():
    """50 of the 51 real product pages have the block; the equality above covered them all."""
    with_block = [path for path in PRODUCT_PAGES if recently_viewed_paths(real_page(path))]
    assert len(with_block) == 50
    assert recently_viewed_paths(real_page("catalogue/sharp-objects_997/index.html")) == [
        "catalogue/soumission_998/index.html",
        "catalogue/tipping-the-velvet_999/index.html",
        "catalogue/a-light-in-the-attic_1000/index.html",
    ]


@pytest.mark.parametrize("path", LISTING_PAGES)
def test_listing_page_renders_as_the_real_page(path: str):
    assert normalise(render_real_listing(path)) == normalise(real_page(path))


def test_books_without_description_have_no_description_block():
    for book_id in (5, 840):
        html = render_product_page(BY_ID[book_id])
        assert BY_ID[book_id]["description"] is None
        assert 'id="product_description"' not in html
    assert 'id="product_description"' in render_product_page(BY_ID[1000])


def test_rendering_follows_the_row():
    """Every per-book value on a page comes from the catalogue row, not from a saved page."""
    book = dict(BY_ID[1000], title='A & B\'s "C" D E', price=7.5, rating=5, upc="u1")
    book.update(price_excl_tax=7.5, price_incl_tax=7.5, availability="In stock (2 available)")
    product = render_product_page(book)
    assert "<h1>A &amp; B&#39;s &quot;C&quot; D E</h1>" in product
    assert '<p class="price_color">£7.50</p>' in product
    assert "<th>UPC</th><td>u1</td>" in product
    assert "In stock (2 available)" in product
    assert '<p class="star-rating Five">' in product
    listing = normalise(render_listing_page([book], category=category_of(book)))
    assert "A &amp; B&#39;s &quot;C&quot; ..." in listing  # four words, then " ..."
    assert "<strong>1</strong> result." in listing
    assert 'class="pager"' not in listing


def test_category_page_two_has_the_catalog_pager():
    mystery = CATEGORIES["catalogue/category/books/mystery_3/index.html"]
    books = sorted((b for b in BOOKS if category_of(b) == mystery), key=lambda b: -b["id"])
    html = normalise(render_listing_page(books, category=mystery, page=2))
    assert (
        "<strong>32</strong> results - showing <strong>21</strong> to <strong>32</strong>." in html
    )
    assert '<li class="previous"><a href="page-1.html">previous</a></li>' in html
    assert "Page 2 of 2" in html
    assert 'class="next"' not in html
    assert len(product_links(html)) == 12
    assert all(link.startswith("../../../") for link in product_links(html))
    assert 'src="../../../../media/cache/' in html


# --------------------------------------------------------------------------- site


def test_unchanged_pages_are_the_real_bytes(mirror_site: MirrorSite):
    for path in ("index.html", "catalogue/page-7.html", "catalogue/sharp-objects_997/index.html"):
        response = mirror_site.get("/" + path)
        assert response.status == 200
        assert response.content_type == "text/html; charset=utf-8"
        assert response.body == (PAGES_DIR / path).read_bytes()
    assert mirror_site.get("/").body == (PAGES_DIR / "index.html").read_bytes()


def test_pages_without_a_saved_copy_are_rendered(mirror_site: MirrorSite):
    olio_neighbour = mirror_site.get("/catalogue/in-her-wake_980/index.html")
    assert olio_neighbour.status == 200
    assert "<h1>In Her Wake</h1>" in olio_neighbour.text
    poetry = mirror_site.get("/catalogue/category/books/poetry_23/index.html")
    assert "<strong>19</strong> results." in poetry.text
    assert mirror_site.get("/catalogue/category/books/default_15/page-8.html").status == 200
    assert mirror_site.get("/catalogue/category/books_1/page-50.html").status == 200


def test_price_change_shows_on_product_and_listing_pages(mirror_site: MirrorSite):
    mirror_site.set_price(ATTIC, 12.3)
    product = mirror_site.get("/catalogue/a-light-in-the-attic_1000/index.html").text
    assert '<p class="price_color">£12.30</p>' in product
    assert "<th>Price (incl. tax)</th><td>£12.30</td>" in product
    assert "£51.77" not in product
    for path in (
        "/index.html",
        "/catalogue/page-1.html",
        "/catalogue/category/books/poetry_23/index.html",
    ):
        html = mirror_site.get(path).text
        assert '<p class="price_color">£12.30</p>' in html, path
        assert "£51.77" not in html, path
    # Sharp Objects lists the book under "recently viewed": rendered too, with the new price.
    sharp = mirror_site.get("/catalogue/sharp-objects_997/index.html").text
    assert "£12.30" in sharp
    assert "£51.77" not in sharp
    # Pages that do not show the book stay the real ones.
    assert mirror_site.get("/catalogue/page-2.html").body == real_page(
        "catalogue/page-2.html"
    ).encode("utf-8")


def test_setting_the_same_price_serves_the_real_page_again(mirror_site: MirrorSite):
    mirror_site.set_price(ATTIC, "51.77")
    assert mirror_site.get("/index.html").body == (PAGES_DIR / "index.html").read_bytes()


def test_availability_change(mirror_site: MirrorSite):
    mirror_site.set_availability(ATTIC, 3)
    product = mirror_site.get("/catalogue/a-light-in-the-attic_1000/index.html").text
    assert normalise(product).count("In stock (3 available)") == 2  # main block and table
    mirror_site.set_availability(ATTIC, 0)
    product = normalise(mirror_site.get("/catalogue/a-light-in-the-attic_1000/index.html").text)
    assert '<p class="outofstock availability"> <i class="icon-remove"></i> Unavailable' in product
    assert "<td>Unavailable</td>" in product


def test_remove_book(mirror_site: MirrorSite):
    mirror_site.remove_book(ATTIC)
    assert mirror_site.get("/catalogue/a-light-in-the-attic_1000/index.html").status == 404
    home = mirror_site.get("/index.html").text
    assert "a-light-in-the-attic_1000" not in home
    assert (
        "<strong>999</strong> results - showing <strong>1</strong> to <strong>20</strong>." in home
    )
    assert len(product_links(home)) == 20  # the next book moved up from page 2
    assert len(product_links(mirror_site.get("/catalogue/page-50.html").text)) == 19
    poetry = mirror_site.get("/catalogue/category/books/poetry_23/index.html").text
    assert "<strong>18</strong> results." in poetry
    assert "a-light-in-the-attic_1000" not in poetry
    sharp = mirror_site.get("/catalogue/sharp-objects_997/index.html").text
    assert "a-light-in-the-attic_1000" not in sharp


def test_drop_price(mirror_site: MirrorSite):
    mirror_site.drop_price(ATTIC)
    product = mirror_site.get("/catalogue/a-light-in-the-attic_1000/index.html").text
    assert "price_color" not in product
    assert "Price (excl. tax)" not in product
    assert "Price (incl. tax)" not in product
    assert "<th>Tax</th>" not in product
    assert "<th>UPC</th><td>a897fe39b1053632</td>" in product
    assert '<p class="price_color">£51.77</p>' in mirror_site.get("/index.html").text


def test_unknown_paths_404(mirror_site: MirrorSite):
    for path in (
        "/robots.txt",
        "/nope.html",
        "/catalogue/page-51.html",
        "/catalogue/page-0.html",
        "/catalogue/a-light-in-the-attic_999/index.html",  # slug of another id
        "/catalogue/category/books/travel_2/page-2.html",  # Travel has one page
        "/catalogue/category/books/travel_3/index.html",
    ):
        assert mirror_site.get(path).status == 404, path


def test_reset(mirror_site: MirrorSite):
    mirror_site.set_price(ATTIC, 1)
    mirror_site.remove_book("e00eb4fd7b871a48")
    mirror_site.fail("/index.html", 500)
    mirror_site.truncate("/catalogue/page-2.html")
    mirror_site.reset()
    assert mirror_site.get("/index.html").body == (PAGES_DIR / "index.html").read_bytes()
    assert mirror_site.get("/catalogue/sharp-objects_997/index.html").status == 200
    full = (PAGES_DIR / "catalogue/page-2.html").read_bytes()
    assert mirror_site.get("/catalogue/page-2.html").body == full
    assert mirror_site.requests == {
        "/index.html": 1,
        "/catalogue/sharp-objects_997/index.html": 1,
        "/catalogue/page-2.html": 1,
    }


def test_unknown_upc_is_an_error(mirror_site: MirrorSite):
    with pytest.raises(KeyError):
        mirror_site.set_price("not-a-upc", 1)


# --------------------------------------------------------------------------- over HTTP


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 (127.0.0.1 only)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_served_with_length_and_type(mirror: Mirror):
    assert urlsplit(mirror.base_url).hostname == "127.0.0.1"
    status, headers, body = fetch(mirror.url("/index.html"))
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    assert body == (PAGES_DIR / "index.html").read_bytes()
    status, headers, body = fetch(mirror.url("/index.html"), method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == (PAGES_DIR / "index.html").stat().st_size


def test_robots_txt_is_404_like_the_real_site(mirror: Mirror):
    assert fetch(mirror.url("/robots.txt"))[0] == 404
    assert mirror.site.hits("/robots.txt") == 1


def test_fail_then_recover(mirror: Mirror):
    url = mirror.url("/catalogue/page-2.html")
    mirror.site.fail("/catalogue/page-2.html", 503, times=2)
    assert [fetch(url)[0] for _ in range(4)] == [503, 503, 200, 200]
    assert mirror.site.hits("/catalogue/page-2.html") == 4


def test_fail_always(mirror: Mirror):
    mirror.site.fail("/catalogue/page-3.html", 404)
    assert [fetch(mirror.url("/catalogue/page-3.html"))[0] for _ in range(3)] == [404] * 3
    assert fetch(mirror.url("/catalogue/page-4.html"))[0] == 200


def test_truncate(mirror: Mirror):
    mirror.site.truncate("/catalogue/page-2.html")
    status, headers, body = fetch(mirror.url("/catalogue/page-2.html?ignored=1"))
    full = real_page("catalogue/page-2.html")
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    assert body.decode("utf-8") == full[: len(full) // 2]
    assert "</html>" not in body.decode("utf-8")


def test_catalog_next_links_walk_50_pages_and_1000_books(mirror: Mirror):
    """What a crawler of the real site sees: index.html, then "next" until there is none."""
    url: str | None = mirror.url("/index.html")
    pages: list[str] = []
    books: list[str] = []
    while url is not None:
        status, _, body = fetch(url)
        assert status == 200, url
        html = body.decode("utf-8")
        pages.append(urlsplit(url).path)
        books += [urljoin(url, link) for link in product_links(html)]
        following = next_link(html)
        url = None if following is None else urljoin(url, following)
    assert pages == ["/index.html"] + [f"/catalogue/page-{n}.html" for n in range(2, 51)]
    assert len(books) == len(set(books)) == 1000
    assert {urlsplit(book).path.lstrip("/") for book in books} == set(BY_PATH)


@pytest.mark.slow
def test_category_pages_link_to_every_book_of_their_category(mirror_site: MirrorSite):
    page_counts: Counter[int] = Counter()
    for category in CATEGORIES.values():
        path: str | None = "/" + category.path
        found: list[str] = []
        while path is not None:
            response = mirror_site.get(path)
            assert response.status == 200, path
            found += [urljoin(path, link).lstrip("/") for link in product_links(response.text)]
            following = next_link(response.text)
            path = None if following is None else urljoin(path, following)
            page_counts[category.id] += 1
        assert len(found) == len(set(found)), category
        assert set(found) == in_category(category), category
    assert sum(page_counts.values()) == 80  # the site's 80 category listing pages
    assert page_counts[15] == 8  # Default


def test_concurrent_requests_are_counted(mirror: Mirror):
    paths = [f"/catalogue/page-{n}.html" for n in range(1, 51)] * 2

    def get(path: str) -> int:
        return fetch(mirror.url(path))[0]

    stop = threading.Event()

    def meddle() -> None:  # change the site while it is being read
        price = 10
        while not stop.is_set():
            mirror.site.set_price(ATTIC, price)
            price = price % 50 + 10
            stop.wait(0.001)

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(get, paths))
    finally:
        stop.set()
        meddler.join()
    assert statuses == [200] * 100
    assert all(mirror.site.hits(path) == 2 for path in paths)


def test_serve_mirror_shuts_down():
    with serve_mirror(MirrorSite()) as base_url:
        assert fetch(base_url + "/")[0] == 200
    with pytest.raises(urllib.error.URLError):
        fetch(base_url + "/")
