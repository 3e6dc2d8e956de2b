"""``stats``, compiled: each figure the selection reads computed once, in the catalogue's SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from operator import itemgetter
from typing import Any, TypeAlias

from bookql.catalog import stats
from bookql.catalog.admin import pence
from bookql.catalog.graphql.compiled.objects import category_shape
from bookql.catalog.graphql.compiled.values import gbp
from bookql.catalog.graphql.stats import money_figure
from bookql.graphql.compiled.plan import (
    Fallback,
    PlannedField,
    RootFetch,
    Run,
    Unsupported,
    typename,
)
from bookql.graphql.compiled.rows import Columns, Getter, ObjectShape


class StatsReads:
    """The statistics of one request, each read at most once however often it is shown."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._histograms: dict[int, list[tuple[int, int]]] = {}

    @cached_property
    def figures(self) -> stats.Figures:
        return self.run.read(stats.catalog_figures)

    @cached_property
    def category_count(self) -> int:
        return self.run.read(stats.category_count)

    @cached_property
    def median(self) -> float | None:
        return self.run.read(stats.median_price_pence)

    @cached_property
    def ratings(self) -> dict[int, int]:
        return self.run.read(stats.rating_counts)

    @cached_property
    def by_category(self) -> list[tuple[Any, stats.Figures]]:
        return self.run.read(stats.figures_by_category)

    def histogram(self, width: int) -> list[tuple[int, int]]:
        if width not in self._histograms:
            self._histograms[width] = self.run.read(stats.price_histogram, width)
        return self._histograms[width]


StatsGetter: TypeAlias = Callable[[StatsReads], Any]

FIGURES: dict[str, StatsGetter] = {
    "totalBooks": lambda s: s.figures.book_count,
    "totalCategories": lambda s: s.category_count,
    "totalStock": lambda s: s.figures.total_stock,
    "averagePrice": lambda s: money_figure(s.figures.average_price_pence),
    "medianPrice": lambda s: None if s.median is None else s.median / 100,
    "minPrice": lambda s: money_figure(s.figures.min_price_pence),
    "maxPrice": lambda s: money_figure(s.figures.max_price_pence),
    "averageRating": lambda s: s.figures.average_rating,
    "__typename": typename("CatalogueStats"),
}

CATEGORY_FIGURES: dict[str, Callable[[stats.Figures], Any]] = {
    "bookCount": lambda f: f.book_count,
    "averagePrice": lambda f: money_figure(f.average_price_pence),
    "minPrice": lambda f: money_figure(f.min_price_pence),
    "maxPrice": lambda f: money_figure(f.max_price_pence),
    "averageRating": lambda f: f.average_rating,
    "totalStock": lambda f: f.total_stock,
}


def compile_stats(field: PlannedField) -> RootFetch:
    figures = [(f.key, _figure(f)) for f in field.selection("CatalogueStats")]

    def fetch(run: Run) -> dict[str, Any]:
        reads = StatsReads(run)
        return {key: get(reads) for key, get in figures}

    return fetch


def _figure(field: PlannedField) -> StatsGetter:
    if field.name == "ratingDistribution":
        return _ratings(field)
    if field.name == "priceHistogram":
        return _histogram(field)
    if field.name == "categories":
        return _categories(field)
    found = FIGURES.get(field.name)
    if found is None:
        raise Unsupported(f"CatalogueStats.{field.name}")
    return found


def _object(
    field: PlannedField, type_name: str, values: Mapping[str, Getter]
) -> list[tuple[str, Getter]]:
    """A small object's selection as getters over its source (a tuple of its values)."""
    found: list[tuple[str, Getter]] = []
    for sub in field.selection(type_name):
        if sub.name == "__typename":
            found.append((sub.key, typename(type_name)))
        elif sub.name in values:
            found.append((sub.key, values[sub.name]))
        else:
            raise Unsupported(f"{type_name}.{sub.name}")
    return found


def _build(fields: list[tuple[str, Getter]], sources: Iterable[Any]) -> list[dict[str, Any]]:
    return [{key: get(source) for key, get in fields} for source in sources]


def _ratings(field: PlannedField) -> StatsGetter:
    fields = _object(field, "RatingCount", {"rating": itemgetter(0), "count": itemgetter(1)})
    return lambda s: _build(fields, s.ratings.items())


def _histogram(field: PlannedField) -> StatsGetter:
    """Buckets as the resolver makes them, refused (to the standard path) as it refuses."""
    values = {"low": itemgetter(0), "high": itemgetter(1), "count": itemgetter(2)}
    fields = _object(field, "PriceBucket", values)

    def get(s: StatsReads) -> list[dict[str, Any]]:
        width = pence("bucketWidth", s.run.arguments(field)["bucketWidth"])
        if width == 0:
            raise Fallback("bucketWidth is zero")
        low, high = s.figures.min_price_pence, s.figures.max_price_pence
        if (
            low is not None
            and high is not None
            and high // width - low // width + 1 > stats.MAX_HISTOGRAM_BUCKETS
        ):
            raise Fallback("too many buckets")
        buckets = s.histogram(width)
        return _build(
            fields, ((gbp(b * width), gbp((b + 1) * width), count) for b, count in buckets)
        )

    return get


def _nth_category(index: int) -> Getter:
    return lambda source: source[0][index]


def _of_figures(figure: Callable[[stats.Figures], Any]) -> Getter:
    return lambda source: figure(source[1])


def _categories(field: PlannedField) -> StatsGetter:
    """Per-category figures; each ``category`` in them is one level of ``Category`` objects."""
    columns = Columns()
    shapes: list[ObjectShape] = []
    fields: list[tuple[str, Getter]] = []
    for sub in field.selection("CategoryStats"):
        if sub.name == "category":
            fields.append((sub.key, _nth_category(len(shapes))))
            shapes.append(category_shape(sub.selection("Category"), columns))
        elif sub.name == "__typename":
            fields.append((sub.key, typename("CategoryStats")))
        elif sub.name in CATEGORY_FIGURES:
            fields.append((sub.key, _of_figures(CATEGORY_FIGURES[sub.name])))
        else:
            raise Unsupported(f"CategoryStats.{sub.name}")

    def get(s: StatsReads) -> list[dict[str, Any]]:
        rows = s.by_category
        category_rows = [columns.values_of(row) for row, _ in rows]
        built = [shape.build(s.run, category_rows) for shape in shapes]
        objects = zip(*built, strict=True) if built else ((),) * len(rows)
        return _build(fields, zip(objects, (figures for _, figures in rows), strict=True))

    return get
