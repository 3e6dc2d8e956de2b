"""Render books.toscrape.com pages from catalogue rows.

The real site is a static export of a django-oscar shop. Its markup is reproduced here as
templates; everything that varies from page to page comes from the catalogue rows (dicts shaped
like ``catalogue.jsonl``), so a test can change a book and get the page the site would serve.
The renderer is held to the real saved pages in ``tests/crawls/test_mirror.py``: equal after
whitespace normalisation (defined there), not byte for byte: indentation and blank lines
are left to taste.

All links are relative, as on the site, and computed from the page's own path, so the same
product pod renders correctly on the home page, a catalogue page, a category page or a product
page's "recently viewed" block.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from tests.support.snapshot_truth import snapshot_books

Book = Mapping[str, Any]

SITE = "https://books.toscrape.com/"
PER_PAGE = 20
STAR_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five")

# The static export stamped every page with the minute it was written, so <meta name="created">
# is constant per URL on the real site but not the same for every URL. These are the stamps of
# the saved real pages that differ from the usual one; the rest of the site (every other saved
# page: index, catalogue page 2, both categories, 50 of 51 products) says 09:29.
DEFAULT_CREATED = "24th Jun 2016 09:29"
CREATED: dict[str, str] = {
    "catalogue/page-1.html": "24th Jun 2016 09:30",
    "catalogue/page-3.html": "24th Jun 2016 09:30",
    "catalogue/page-4.html": "24th Jun 2016 09:31",
    "catalogue/page-5.html": "24th Jun 2016 09:31",
    **{f"catalogue/page-{n}.html": "24th Jun 2016 09:32" for n in range(6, 45)},
    **{f"catalogue/page-{n}.html": "24th Jun 2016 09:33" for n in range(45, 51)},
    "catalogue/the-bridge-to-consciousness-im-writing-the-bridge-between-science-and-our-"
    "old-and-new-beliefs_840/index.html": "24th Jun 2016 09:30",
}

_CATEGORY_URL = re.compile(r"catalogue/category/books/(?P<slug>[^/]+)_(?P<id>\d+)/index\.html$")
_PRODUCT_URL = re.compile(r"catalogue/(?P<slug>[^/]+)_(?P<id>\d+)/index\.html$")


@dataclass(frozen=True, order=True)
class Category:
    """A category as the sidebar and breadcrumbs show it; ``id`` 1 is the root "Books"."""

    id: int
    slug: str
    name: str

    @property
    def path(self) -> str:
        if self.id == 1:
            return "catalogue/category/books_1/index.html"
        return f"catalogue/category/books/{self.slug}_{self.id}/index.html"

    def page_path(self, page: int) -> str:
        """Page 1 is the category's index.html; later pages sit beside it as page-K.html."""
        if page == 1:
            return self.path
        return posixpath.join(posixpath.dirname(self.path), f"page-{page}.html")


ROOT_CATEGORY = Category(1, "books", "Books")


def category_of(book: Book) -> Category:
    """The book's category, from its ``category`` name and ``category_url``."""
    match = _CATEGORY_URL.search(book["category_url"])
    if match is None:
        raise ValueError(f"not a category URL: {book['category_url']!r}")
    return Category(int(match["id"]), match["slug"], book["category"])


def sidebar_categories(books: Iterable[Book]) -> tuple[Category, ...]:
    """The 50 sidebar categories in site order (by category id, 2..51)."""
    return tuple(sorted({category_of(book) for book in books}))


def product_path(book: Book) -> str:
    """Site path of the book's product page, e.g. ``catalogue/olio_984/index.html``."""
    path = site_path(book["product_url"])
    if _PRODUCT_URL.fullmatch(path) is None:
        raise ValueError(f"not a product URL: {book['product_url']!r}")
    return path


def catalog_page_path(page: int) -> str:
    return f"catalogue/page-{page}.html"


def site_path(url: str) -> str:
    """Path of a site URL relative to the site root (no leading slash)."""
    return url.removeprefix(SITE).lstrip("/")


def relative(target: str, page: str) -> str:
    """The link from the page at site path ``page`` to site path ``target``, as on the site."""
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


def escape(text: str) -> str:
    """Django's ``escape``: differs from ``html.escape`` in writing ' as &#39;."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def money(amount: float | Decimal) -> str:
    """A GBP amount as the site shows it: ``£51.77``."""
    return f"£{Decimal(str(amount)):.2f}"


def truncate_words(text: str, count: int = 4) -> str:
    """Django's old ``truncatewords``: the listing's h3 text ("A Light in the ...")."""
    words = text.split()
    if len(words) <= count:
        return text
    kept = words[:count]
    if not kept[-1].endswith("..."):
        kept.append("...")
    return " ".join(kept)


# --------------------------------------------------------------------------- page frame


def _head(page: str, title: str, description: str) -> str:
    static = relative("static/oscar", page)
    created = CREATED.get(page, DEFAULT_CREATED)
    return f"""<!DOCTYPE html>
<!--[if lt IE 7]>      <html lang="en-us" class="no-js lt-ie9 lt-ie8 lt-ie7"> <![endif]-->
<!--[if IE 7]>         <html lang="en-us" class="no-js lt-ie9 lt-ie8"> <![endif]-->
<!--[if IE 8]>         <html lang="en-us" class="no-js lt-ie9"> <![endif]-->
<!--[if gt IE 8]><!--> <html lang="en-us" class="no-js"> <!--<![endif]-->
    <head>
        <title>
    {title}
</title>

        <meta http-equiv="content-type" content="text/html; charset=UTF-8" />
        <meta name="created" content="{created}" />
        <meta name="description" content="{description}" />
        <meta name="viewport" content="width=device-width" />
        <meta name="robots" content="NOARCHIVE,NOCACHE" />

        <!-- Le HTML5 shim, for IE6-8 support of HTML elements -->
        <!--[if lt IE 9]>
        <script src="//html5shim.googlecode.com/svn/trunk/html5.js"></script>
        <![endif]-->

            <link rel="shortcut icon" href="{static}/favicon.ico" />

        <link rel="stylesheet" type="text/css" href="{static}/css/styles.css" />

    <link rel="stylesheet" href="{static}/js/bootstrap-datetimepicker/bootstrap-datetimepicker.css" />
    <link rel="stylesheet" type="text/css" href="{static}/css/datetimepicker.css" />

    </head>

    <body id="default" class="default">

    <header class="header container-fluid">
        <div class="page_inner">
            <div class="row">
                <div class="col-sm-8 h1"><a href="{relative("index.html", page)}">Books to Scrape</a><small> We love being scraped!</small>
</div>

            </div>
        </div>
    </header>
"""  # noqa: E501


def _foot(page: str, *, search: bool) -> str:
    static = relative("static/oscar", page)
    search_init = "\n    oscar.search.init();\n" if search else ""
    return f"""
<footer class="footer container-fluid">

</footer>

            <!-- jQuery -->
            <script src="http://ajax.googleapis.com/ajax/libs/jquery/1.9.1/jquery.min.js"></script>
            <script>window.jQuery || document.write('<script src="{static}/js/jquery/jquery-1.9.1.min.js"><\\/script>')</script>

    <!-- Twitter Bootstrap -->
    <script type="text/javascript" src="{static}/js/bootstrap3/bootstrap.min.js"></script>
    <!-- Oscar -->
    <script src="{static}/js/oscar/ui.js" type="text/javascript" charset="utf-8"></script>

    <script src="{static}/js/bootstrap-datetimepicker/bootstrap-datetimepicker.js" type="text/javascript" charset="utf-8"></script>
    <script src="{static}/js/bootstrap-datetimepicker/locales/bootstrap-datetimepicker.all.js" type="text/javascript" charset="utf-8"></script>

        <script type="text/javascript">
            $(function() {{

    oscar.init();
{search_init}
            }});
        </script>

        <!-- Version: N/A -->

    </body>
</html>
"""  # noqa: E501


_WARNING = (
    '<div class="alert alert-warning" role="alert"><strong>Warning!</strong> This is a demo'
    " website for web scraping purposes. Prices and ratings here were randomly assigned and"
    " have no real meaning.</div>"
)


def _availability(book: Book, *, verbose: bool) -> str:
    """Oscar's stock message: "In stock" on listings, "In stock (N available)" on products."""
    count = int(book["availability_count"])
    if count > 0:
        code, icon = "instock", "ok"
        message = book["availability"] if verbose else "In stock"
    else:  # never seen on the real site: every book is in stock; this is Oscar's wording
        code, icon, message = "outofstock", "remove", "Unavailable"
    return f"""<p class="{code} availability">
    <i class="icon-{icon}"></i>

        {escape(message)}

</p>"""


def _stars(book: Book) -> str:
    return STAR_WORDS[int(book["rating"])]


def product_pod(book: Book, page: str) -> str:
    """One ``article.product_pod``: a book as listings and "recently viewed" show it."""
    href = relative(product_path(book), page)
    thumbnail = relative(site_path(book["thumbnail_url"]), page)
    title = escape(book["title"])
    short_title = escape(truncate_words(book["title"]))
    star = '\n                    <i class="icon-star"></i>' * 5
    return f"""
    <article class="product_pod">

            <div class="image_container">

                    <a href="{href}"><img src="{thumbnail}" alt="{title}" class="thumbnail"></a>

            </div>

                <p class="star-rating {_stars(book)}">{star}
                </p>

            <h3><a href="{href}" title="{title}">{short_title}</a></h3>

            <div class="product_price">

        <p class="price_color">{money(book["price"])}</p>

{_availability(book, verbose=False)}

    <form>
        <button type="submit" class="btn btn-primary btn-block" data-loading-text="Adding...">Add to basket</button>
    </form>

            </div>

    </article>
"""  # noqa: E501


# --------------------------------------------------------------------------- listings


def _sidebar(page: str, categories: Sequence[Category], current: Category | None) -> str:
    def entry(category: Category) -> str:
        name = escape(category.name)
        if category == current:
            name = f"<strong>{name}</strong>"
        return f"""
                    <li>
                        <a href="{relative(category.path, page)}">

                                {name}

                        </a>
"""

    children = "".join(
        f"{entry(category)}\n                        </li>\n" for category in categories
    )
    return f"""
        <div class="side_categories">
            <ul class="nav nav-list">
{entry(ROOT_CATEGORY)}
                        <ul>
{children}
                            </ul></li>

            </ul>
        </div>
"""


def _breadcrumb_listing(page: str, category: Category | None) -> str:
    home = relative("index.html", page)
    if category is None:
        trail, active = "", "All products"
    else:
        trail = ""
        if category != ROOT_CATEGORY:
            trail = f"""
            <li>
                <a href="{relative(ROOT_CATEGORY.path, page)}">Books</a>
            </li>
"""
        active = escape(category.name)
    return f"""
    <ul class="breadcrumb">
        <li>
            <a href="{home}">Home</a>
        </li>{trail}
        <li class="active">{active}</li>
    </ul>
"""


def _result_counter(total: int, first: int, last: int, pages: int) -> str:
    """Oscar's browse.html counter, singular and plural (the site only shows the plural)."""
    if total == 0:
        return "<p>\n                <strong>0</strong> results.\n            </p>"
    if pages > 1:
        return (
            f"<strong>{total}</strong> results - showing <strong>{first}</strong>"
            f" to <strong>{last}</strong>."
        )
    if total == 1:
        return f"<strong>{total}</strong> result."
    return f"<strong>{total}</strong> results."


def _pager(page: str, number: int, pages: int, path_of: Callable[[int], str]) -> str:
    if pages <= 1:
        return ""
    previous = next_ = ""
    if number > 1:
        href = relative(path_of(number - 1), page)
        previous = f'\n                <li class="previous"><a href="{href}">previous</a></li>\n'
    if number < pages:
        href = relative(path_of(number + 1), page)
        next_ = f'\n                <li class="next"><a href="{href}">next</a></li>\n'
    return f"""
    <div>
        <ul class="pager">
{previous}
            <li class="current">

                Page {number} of {pages}

            </li>
{next_}
        </ul>
    </div>
"""


def listing_path(*, page: int = 1, category: Category | None = None, home: bool = False) -> str:
    """Site path of a listing page: the home page, "All products" page N, or a category page."""
    if home:
        if category is not None or page != 1:
            raise ValueError("the home page is page 1 of All products")
        return "index.html"
    if category is None:
        return catalog_page_path(page)
    return category.page_path(page)


def page_count(total: int, per_page: int = PER_PAGE) -> int:
    """Number of listing pages for ``total`` books: an empty listing still has its one page."""
    return max(1, -(-total // per_page))


def render_listing_page(
    books: Sequence[Book],
    *,
    page: int = 1,
    category: Category | None = None,
    home: bool = False,
    categories: Sequence[Category] | None = None,
    per_page: int = PER_PAGE,
) -> str:
    """A listing page: ``index.html``, ``catalogue/page-N.html`` or a category page.

    ``books`` is the whole listing in display order (the full catalogue for "All products",
    the category's books for a category), not just one page; ``page`` picks the slice and the
    counter and pager come from the total. ``categories`` is the sidebar (default: the 50
    categories of the bundled catalogue).
    """
    pages = page_count(len(books), per_page)
    if not 1 <= page <= pages:
        raise ValueError(f"page {page} is outside 1..{pages}")
    path = listing_path(page=page, category=category, home=home)
    sidebar = sidebar_categories_default() if categories is None else categories
    shown = books[(page - 1) * per_page : page * per_page]
    first = (page - 1) * per_page + 1
    counter = _result_counter(len(books), first, first + len(shown) - 1, pages)
    if category is None:
        title, heading, description = "All products | Books to Scrape - Sandbox", "All products", ""
    else:
        name = escape(category.name)
        title, heading = f"{name} | \n     Books to Scrape - Sandbox\n", name
        description = "\n    \n"
    pods = "".join(
        f'\n                        <li class="col-xs-6 col-sm-4 col-md-3 col-lg-3">\n'
        f"{product_pod(book, path)}\n</li>\n"
        for book in shown
    )

    def path_of(number: int) -> str:
        # The static export turned Oscar's ?page=N into page-N.html, page 1 included.
        if category is None:
            return catalog_page_path(number)
        return posixpath.join(posixpath.dirname(category.path), f"page-{number}.html")

    products = f"""
        <section>
            {_WARNING}

            <div>
                <ol class="row">
{pods}
                </ol>
{_pager(path, page, pages, path_of)}
            </div>
        </section>
"""
    if not books:  # Oscar's browse.html; never seen on the real site
        products = '\n        <p class="nonefound">No products found.</p>\n'

    prefix = "" if home else "\n\n"
    return f"""{prefix}{_head(path, title, description)}
<div class="container-fluid page">
    <div class="page_inner">
{_breadcrumb_listing(path, category)}
        <div class="row">

            <aside class="sidebar col-sm-4 col-md-3">

                <div id="promotions_left">

                </div>
{_sidebar(path, sidebar, category)}
            </aside>

            <div class="col-sm-8 col-md-9">

                <div class="page-header action">
                    <h1>{heading}</h1>
                </div>

<div id="messages">

</div>

                <div id="promotions">

                </div>

    <form method="get" class="form-horizontal">

        <div style="display:none">

        </div>

                    {counter}

    </form>
{products}
            </div>

        </div><!-- /row -->
    </div><!-- /page_inner -->
</div><!-- /container-fluid -->
{_foot(path, search=True)}"""


@cache
def sidebar_categories_default() -> tuple[Category, ...]:
    """The sidebar of the bundled catalogue (the real site's 50 categories)."""
    return sidebar_categories(snapshot_books())


# --------------------------------------------------------------------------- product page


def _recently_viewed(books: Sequence[Book], page: str) -> str:
    if not books:
        return ""
    pods = "".join(
        f'\n                <li class="col-xs-6 col-sm-4 col-md-3 col-lg-3">\n'
        f"{product_pod(book, page)}\n</li>\n"
        for book in books
    )
    return f"""
        <div class="sub-header">
            <h2>Products you recently viewed</h2>
        </div>

        <ul class="row">
{pods}
        </ul>
"""


def _price_rows(book: Book) -> str:
    return f"""
            <tr>
                <th>Price (excl. tax)</th><td>{money(book["price_excl_tax"])}</td>
            </tr>

                <tr>
                    <th>Price (incl. tax)</th><td>{money(book["price_incl_tax"])}</td>
                </tr>
                <tr>
                    <th>Tax</th><td>{money(book["tax"])}</td>
                </tr>
"""


def render_product_page(
    book: Book, *, recently_viewed: Sequence[Book] = (), show_price: bool = True
) -> str:
    """A product page ``catalogue/<slug>_<id>/index.html``.

    ``recently_viewed`` is the browsing session's "Products you recently viewed" block (most
    recent first, as the real pages list them); it is empty for a fresh session.
    ``show_price=False`` leaves out ``p.price_color`` and the price/tax table rows, a fault
    for crawler tests.
    """
    path = product_path(book)
    title = escape(book["title"])
    category = category_of(book)
    review = f"/{posixpath.dirname(path)}/reviews/"
    description = book.get("description")
    meta = "\n    " + ("" if description is None else escape(_strip_tags(description))) + "\n"
    head_title = f"{title} | Books to Scrape - Sandbox"
    price = f'\n        <p class="price_color">{money(book["price"])}</p>\n' if show_price else ""
    description_block = ""
    # The site writes the description raw in the <p> (quotes and "&" unescaped) but escapes it
    # in <meta name="description">; the real pages show both.
    if description is not None:
        description_block = f"""
        <div id="product_description" class="sub-header">
            <h2>Product Description</h2>
        </div>
        <p>{description}</p>
"""
    star = '\n        <i class="icon-star"></i>' * 5
    return f"""

{_head(path, head_title, meta)}
        <div class="container-fluid page">
            <div class="page_inner">

<ul class="breadcrumb">
    <li>
        <a href="{relative("index.html", path)}">Home</a>
    </li>

        <li>
            <a href="{relative(ROOT_CATEGORY.path, path)}">Books</a>
        </li>

        <li>
            <a href="{relative(category.path, path)}">{escape(category.name)}</a>
        </li>

        <li class="active">{title}</li>

</ul>

<div id="messages">

</div>

                <div class="content">

                    <div id="promotions">

                    </div>

                    <div id="content_inner">

<article class="product_page"><!-- Start of product page -->

    <div class="row">

        <div class="col-sm-6">

        <div id="product_gallery" class="carousel">
            <div class="thumbnail">
                <div class="carousel-inner">
                    <div class="item active">

                            <img src="{relative(site_path(book["image_url"]), path)}" alt="{title}" />

                    </div>
                </div>
            </div>
        </div>

        </div>

        <div class="col-sm-6 product_main">

            <h1>{title}</h1>
{price}
{_availability(book, verbose=True)}

    <p class="star-rating {_stars(book)}">{star}

        <!-- <small><a href="{review}">

                    0 customer reviews

        </a></small>
         -->&nbsp;

<!--
    <a id="write_review" href="{review}add/#addreview" class="btn btn-success btn-sm">
        Write a review
    </a>

 --></p>

            <hr/>

            {_WARNING}

        </div><!-- /col-sm-6 -->

    </div><!-- /row -->
{description_block}
    <div class="sub-header">
        <h2>Product Information</h2>
    </div>
    <table class="table table-striped">

        <tr>
            <th>UPC</th><td>{escape(book["upc"])}</td>
        </tr>

        <tr>
            <th>Product Type</th><td>{escape(book["product_type"])}</td>
        </tr>
{_price_rows(book) if show_price else ""}
            <tr>
                <th>Availability</th>
                <td>{escape(book["availability"])}</td>
            </tr>

            <tr>
                <th>Number of reviews</th>
                <td>{int(book["num_reviews"])}</td>
            </tr>

    </table>

        <section>
            <div id="reviews" class="sub-header">
            </div>
        </section>
{_recently_viewed(recently_viewed, path)}
</article><!-- End of product page -->
</div>
                </div>
            </div>
        </div>
{_foot(path, search=False)}"""  # noqa: E501


def _strip_tags(text: str) -> str:
    """Django's ``striptags`` for the meta description (the catalogue text holds no tags)."""
    return re.sub(r"<[^>]*>", "", text)
