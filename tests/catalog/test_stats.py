"""``stats`` on both databases, against figures computed here from the snapshot file."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest

from tests.conftest import GraphQLClient, ScratchDatabase, error_codes
from tests.support.admin_session import admin_session
from tests.support.snapshot_truth import snapshot_books

STATS = """{ stats {
    totalBooks totalCategories totalStock averagePrice medianPrice minPrice maxPrice
    averageRating ratingDistribution { rating count }
} }"""
CATEGORY_STATS = """{ stats { categories {
    category { name slug } bookCount averagePrice minPrice maxPrice averageRating totalStock
} } }"""
HISTOGRAM = "query($w: Float!) { stats { priceHistogram(bucketWidth: $w) { low high count } } }"


def pence(book: dict[str, Any]) -> int:
    """The shown price (incl. tax) in exact pence, from the snapshot's decimal text."""
    return int(Decimal(str(book["price_incl_tax"])) * 100)


def gbp(amount: Fraction | int) -> float:
    """Pence as GBP rounded to the penny, halves up, computed exactly."""
    exact = Decimal(amount.numerator) / Decimal(amount.denominator)
    return float((exact / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def figures(books: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What ``stats`` should say about ``books``."""
    listed = list(books)
    prices = sorted(pence(b) for b in listed)
    count = len(prices)
    middle = prices[(count - 1) // 2 : count // 2 + 1]
    ratings = Counter(b["rating"] for b in listed)
    return {
        "totalBooks": count,
        "totalStock": sum(b["availability_count"] for b in listed),
        "averagePrice": gbp(Fraction(sum(prices), count)),
        "medianPrice": float(Decimal(sum(middle)) / len(middle) / 100),
        "minPrice": gbp(prices[0]),
        "maxPrice": gbp(prices[-1]),
        "averageRating": float(Fraction(sum(b["rating"] for b in listed), count)),
        "ratingDistribution": [{"rating": r, "count": ratings[r]} for r in range(1, 6)],
    }


def histogram(books: Iterable[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """Contiguous ``[low, high)`` buckets of ``width`` pence, cheapest book's to dearest's."""
    buckets = Counter(pence(b) // width for b in books)
    return [
        {
            "low": float(Decimal(b * width) / 100),
            "high": float(Decimal((b + 1) * width) / 100),
            "count": buckets[b],
        }
        for b in range(min(buckets), max(buckets) + 1)
    ]


def check(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    rating = actual.pop("averageRating")
    assert rating == pytest.approx(expected.pop("averageRating"), rel=1e-12)
    assert actual == expected


async def test_catalog_figures(gql: GraphQLClient) -> None:
    stats = (await gql.data(STATS))["stats"]
    expected = figures(snapshot_books())
    assert expected["totalBooks"] == 1000 and expected["medianPrice"] == 35.98
    categories = {b["category"] for b in snapshot_books()}
    assert stats.pop("totalCategories") == len(categories) == 50
    check(stats, expected)


async def test_median_is_exact(gql: GraphQLClient) -> None:
    """With an even count the median is the mean of the middle two, to the half penny."""
    prices = sorted(pence(b) for b in snapshot_books())
    middle = prices[499:501]
    stats = (await gql.data("{ stats { medianPrice } }"))["stats"]
    assert stats["medianPrice"] == float(Decimal(sum(middle)) / 200)


@pytest.mark.parametrize("width", [None, 10.0, 5.0, 0.5, 7.77, 100.0])
async def test_price_histogram(gql: GraphQLClient, width: float | None) -> None:
    if width is None:  # the default is 10 GBP
        data = await gql.data("{ stats { priceHistogram { low high count } } }")
        width_pence = 1000
    else:
        data = await gql.data(HISTOGRAM, {"w": width})
        width_pence = int(Decimal(str(width)) * 100)
    buckets = data["stats"]["priceHistogram"]
    assert buckets == histogram(snapshot_books(), width_pence)
    assert sum(b["count"] for b in buckets) == 1000
    assert all(b["high"] - b["low"] == pytest.approx(width_pence / 100) for b in buckets)


async def test_every_bucket_is_counted_once_per_request(gql: GraphQLClient) -> None:
    """Two widths in one request are two histograms, not one reused."""
    data = await gql.data(
        """{ stats { a: priceHistogram(bucketWidth: 5.0) { count }
                     b: priceHistogram(bucketWidth: 20.0) { count } } }"""
    )
    assert [b["count"] for b in data["stats"]["a"]] == [
        b["count"] for b in histogram(snapshot_books(), 500)
    ]
    assert [b["count"] for b in data["stats"]["b"]] == [
        b["count"] for b in histogram(snapshot_books(), 2000)
    ]


@pytest.mark.parametrize(
    "width",
    [
        0.0,
        -5.0,
        -0.01,
        0.001,  # a fraction of a penny
        0.01,  # 5000 buckets: too many
        0.04,  # 1250 buckets
        1e300,
    ],
)
async def test_bad_bucket_widths(gql: GraphQLClient, width: float) -> None:
    body = await gql.execute(HISTOGRAM, {"w": width})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["data"] is None


async def test_narrowest_accepted_width(gql: GraphQLClient) -> None:
    """Prices span 1000 to 5999 pence: 5 pence buckets make exactly 1000 buckets."""
    data = await gql.data(HISTOGRAM, {"w": 0.05})
    assert len(data["stats"]["priceHistogram"]) == 1000
    assert data["stats"]["priceHistogram"] == histogram(snapshot_books(), 5)


async def test_category_figures(gql: GraphQLClient) -> None:
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for book in snapshot_books():
        by_category[book["category"]].append(book)
    rows = (await gql.data(CATEGORY_STATS))["stats"]["categories"]
    assert [row["category"]["name"] for row in rows] == sorted(by_category)
    for row in rows:
        books = by_category[row["category"]["name"]]
        expected = figures(books)
        assert row["bookCount"] == expected["totalBooks"]
        assert row["totalStock"] == expected["totalStock"]
        assert row["averagePrice"] == expected["averagePrice"], row["category"]
        assert row["minPrice"] == expected["minPrice"]
        assert row["maxPrice"] == expected["maxPrice"]
        assert row["averageRating"] == pytest.approx(expected["averageRating"], rel=1e-12)
    by_name = {row["category"]["name"]: row for row in rows}
    assert by_name["Historical Fiction"]["category"]["slug"] == "historical-fiction"
    # 34.385 GBP: a half penny, rounded up (a float's round() would say 34.38)
    assert by_name["Christian Fiction"]["averagePrice"] == 34.39


async def test_empty_catalog(empty_db: ScratchDatabase) -> None:
    async with admin_session(empty_db, seeded=False) as client:
        stats = (await client.data(STATS))["stats"]
        assert stats == {
            "totalBooks": 0,
            "totalCategories": 0,
            "totalStock": 0,
            "averagePrice": None,
            "medianPrice": None,
            "minPrice": None,
            "maxPrice": None,
            "averageRating": None,
            "ratingDistribution": [{"rating": r, "count": 0} for r in range(1, 6)],
        }
        data = await client.data(
            "{ stats { a: priceHistogram { count } b: priceHistogram(bucketWidth: 0.01) { count }"
            " categories { bookCount } } }"
        )
        assert data["stats"] == {"a": [], "b": [], "categories": []}
        await client.admin(
            'mutation { createCategory(input: {name: "Empty Shelf"}) { category { id } } }'
        )
        data = await client.data(
            """{ stats { totalCategories totalBooks categories {
                category { name slug } bookCount averagePrice minPrice maxPrice averageRating
                totalStock } } }"""
        )
    assert data["stats"] == {
        "totalCategories": 1,
        "totalBooks": 0,
        "categories": [
            {
                "category": {"name": "Empty Shelf", "slug": "empty-shelf"},
                "bookCount": 0,
                "averagePrice": None,
                "minPrice": None,
                "maxPrice": None,
                "averageRating": None,
                "totalStock": 0,
            }
        ],
    }


@pytest.mark.slow
async def test_removed_books_leave_the_figures(empty_db: ScratchDatabase) -> None:
    truth = snapshot_books()
    # the dearest book and the only book of its category, so every figure moves
    dearest = max(truth, key=pence)
    counts = Counter(b["category"] for b in truth)
    lonely = next(b for b in truth if counts[b["category"]] == 1)
    async with admin_session(empty_db) as client:
        for book in (dearest, lonely):
            book_id = (await client.data(f'{{ book(upc: "{book["upc"]}") {{ id }} }}'))["book"]
            await client.admin(
                "mutation($id: ID!) { deleteBook(input: {id: $id}) { book { removedAt } } }",
                {"id": book_id["id"]},
            )
        stats = (await client.data(STATS))["stats"]
        rows = (await client.data(CATEGORY_STATS))["stats"]["categories"]
        buckets = (await client.data(HISTOGRAM, {"w": 1.0}))["stats"]["priceHistogram"]
    gone = {dearest["upc"], lonely["upc"]}
    remaining = [b for b in truth if b["upc"] not in gone]
    assert stats.pop("totalCategories") == 50  # the emptied category is still a category
    check(stats, figures(remaining))
    assert stats["maxPrice"] < gbp(pence(dearest))
    assert buckets == histogram(remaining, 100)
    empty = next(row for row in rows if row["category"]["name"] == lonely["category"])
    assert empty["bookCount"] == 0 and empty["totalStock"] == 0
    assert empty["averagePrice"] is None and empty["averageRating"] is None
    assert empty["minPrice"] is None and empty["maxPrice"] is None
    of_dearest = next(row for row in rows if row["category"]["name"] == dearest["category"])
    assert of_dearest["bookCount"] == counts[dearest["category"]] - 1
