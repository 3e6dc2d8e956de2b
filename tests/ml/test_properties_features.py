"""The one feature function, by properties: every path that computes features must agree.

Features come from ``feature_rows`` (row by row, plain Python), reach the model through
``features_frame``/``book_features`` (pandas), are stored in ``book_features`` and streamed
from there (rendered by Python on SQLite, by SQL on PostgreSQL), and are served by
``mlFeatures``. For any books Hypothesis can make (titles and descriptions of any text,
empty or missing, series numbers of any size, categories known or not), the computation
must be total, deterministic, per book (no book's features depend on another's), of the
declared columns and types, finite, and every path must give the same values.

The default run is bounded and reproducible; ``BOOKQL_TEST_PROPERTY_EXAMPLES=N`` runs N
random examples per property instead.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import math
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bookql.catalog.tables import books, categories, descriptions
from bookql.db.engine import create_async_db_engine, create_sync_engine
from bookql.ml.dataset import COLUMNS, FORMULA_STARTS, Shape, TrainingData
from bookql.ml.features import (
    FEATURES,
    NUMERIC,
    BookInputs,
    book_features,
    feature_rows,
    feature_types,
    features_frame,
)
from bookql.ml.tables import book_features as stored_features
from tests.catalog.test_properties_filters import CHARACTERS, chance, property_settings
from tests.conftest import ScratchDatabase
from tests.support.admin_session import AdminClient, admin_session
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # hypothesis properties

CATALOG_CATEGORIES = sorted({book["category"] for book in snapshot_books()})
INT_COLUMNS = [name for name in NUMERIC if name != "series_number"]

# -- strategies ---------------------------------------------------------------------------------


def digits() -> st.SearchStrategy[str]:
    """A series number as titles write it: small, decimal, a range, in other scripts, or
    far longer than any float holds."""
    return st.one_of(
        st.integers(0, 10**6).map(str),
        st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 99), st.integers(0, 99)),
        st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 99), st.integers(0, 99)),
        st.builds(lambda a, b: f"{a} - {b}.5", st.integers(0, 99), st.integers(0, 99)),
        # Arabic-Indic, fullwidth and Devanagari digits
        st.sampled_from(["\u0661\u0662", "\uff10\uff17", "\u096d"]),
        st.integers(300, 1000).map(lambda n: "9" * n),  # past float's range
    )


@st.composite
def series_titles(draw: st.DrawFn) -> str:
    base = draw(st.text(CHARACTERS, max_size=30))
    series = draw(st.sampled_from(["", "Saga, ", "The Dark (Collected) ", "Trilogy,"]))
    trailing = draw(st.sampled_from(["", " ", "\n", "  \t"]))
    return f"{base} ({series}#{draw(digits())}){trailing}"


def titles() -> st.SearchStrategy[str | None]:
    real = st.sampled_from([book["title"] for book in snapshot_books()])
    return st.one_of(
        st.text(CHARACTERS, max_size=60),
        st.sampled_from(["", " ", "\t\n", ":", "#1)", "(#)", "Title: A Subtitle"]),
        series_titles(),
        real,
        st.none(),
    )


def descriptions_text() -> st.SearchStrategy[str | None]:
    real = st.sampled_from([book["description"] for book in snapshot_books()[:50]])
    return st.one_of(st.none(), st.text(CHARACTERS, max_size=200), st.just(""), real)


def category_names() -> st.SearchStrategy[str | None]:
    odd = st.text(
        st.one_of(CHARACTERS, st.sampled_from('\r\n,"\\ \t')), min_size=1, max_size=20
    ).filter(lambda name: name.strip() != "")
    return st.one_of(st.sampled_from(CATALOG_CATEGORIES), odd, st.none())


def book_inputs() -> st.SearchStrategy[BookInputs]:
    return st.builds(
        BookInputs,
        category=category_names(),
        rating=st.integers(1, 5),
        availability=st.one_of(st.integers(0, 30), st.integers(0, 2**31 - 1)),
        title=titles(),
        description=descriptions_text(),
    )


def known_categories() -> st.SearchStrategy[list[str]]:
    """A model's categories: some of the catalogue's, in any order."""
    return st.lists(st.sampled_from(CATALOG_CATEGORIES), unique=True, max_size=12)


# -- feature_rows: the one computation ------------------------------------------------------------

WORD = re.compile(r"\w")


def check_row(book: BookInputs, known: set[str], row: tuple[Any, ...]) -> None:
    """What the design promises of one row, from the book alone."""
    assert len(row) == len(FEATURES)
    features = dict(zip(FEATURES, row, strict=True))
    title = book.title if isinstance(book.title, str) else ""
    text = book.description if isinstance(book.description, str) else ""
    assert features["category"] == (book.category if book.category in known else None)
    assert (features["rating"], features["availability"]) == (book.rating, book.availability)
    assert features["title_length"] == len(title)
    assert features["has_subtitle"] == (":" in title)
    assert features["has_description"] == (text != "")
    assert features["description_length"] == len(text)
    for name, source in (("title_words", title), ("description_words", text)):
        assert 0 <= features[name] <= len(source)
        assert (features[name] > 0) == bool(WORD.search(source)), (name, source)
    for name in INT_COLUMNS:
        assert type(features[name]) is int, (name, features[name])  # not bool, not numpy
    assert features["has_subtitle"] in (0, 1) and features["in_series"] in (0, 1)
    number = features["series_number"]
    assert type(number) is float and math.isfinite(number) and number >= 0, (title, number)
    if not features["in_series"]:
        assert number == 0.0


@property_settings(500)
@given(books=st.lists(book_inputs(), max_size=6), known=known_categories())
@example(
    books=[BookInputs("Poetry", 3, 1, "Big (Saga #" + "9" * 400 + ")", None)], known=["Poetry"]
)
def test_feature_rows_are_total_per_book_and_finite(
    books: list[BookInputs], known: list[str]
) -> None:
    rows = feature_rows(books, set(known))
    assert len(rows) == len(books)
    for book, row in zip(books, rows, strict=True):
        check_row(book, set(known), row)
    # deterministic, per book, in any order, and the same for tuples as for BookInputs
    assert feature_rows(books, set(known)) == rows
    assert [feature_rows([book], set(known))[0] for book in books] == rows
    assert feature_rows(reversed(books), set(known)) == rows[::-1]
    assert feature_rows([tuple(book) for book in books], frozenset(known)) == rows


@property_settings(300)
@given(
    base=st.text(CHARACTERS, max_size=30),
    number=st.integers(0, 10**9),
    fraction=st.one_of(st.none(), st.integers(0, 999)),
    upper=st.one_of(st.none(), st.integers(0, 10**9)),
    trailing=st.sampled_from(["", " ", "\n"]),
)
def test_series_numbers(
    base: str, number: int, fraction: int | None, upper: int | None, trailing: str
) -> None:
    """A title ending in "(Series, #N)" is in a series, number N (of a range, its first)."""
    written = f"{number}" if fraction is None else f"{number}.{fraction}"
    ending = written if upper is None else f"{written}-{upper}"
    title = f"{base} (Series, #{ending}){trailing}"
    [row] = feature_rows([BookInputs(None, 1, 0, title, None)], set())
    features = dict(zip(FEATURES, row, strict=True))
    assert (features["in_series"], features["series_number"]) == (1, float(written))
    # anything after the parenthesis: not a series
    [row] = feature_rows([BookInputs(None, 1, 0, title.rstrip() + " and more", None)], set())
    assert dict(zip(FEATURES, row, strict=True))["in_series"] == 0


# -- the frame the model reads --------------------------------------------------------------------


def assert_frame_of(
    frame: pd.DataFrame, rows: list[tuple[Any, ...]], known: list[str], index: Any
) -> None:
    """``frame`` holds ``rows`` in the declared columns and dtypes, with ``index``."""
    assert list(frame.columns) == list(FEATURES)
    assert len(frame) == len(rows)
    assert list(frame.index) == list(index)
    dtype = frame["category"].dtype
    assert isinstance(dtype, pd.CategoricalDtype) and not dtype.ordered
    assert list(dtype.categories) == known  # the model's encoding, in its order
    for name in NUMERIC:
        assert str(frame[name].dtype) == ("float64" if name == "series_number" else "int64")
    assert np.isfinite(frame[list(NUMERIC)].to_numpy(dtype="float64")).all()
    for position, row in enumerate(rows):
        got = frame.iloc[position]
        assert (row[0] is None and pd.isna(got["category"])) or got["category"] == row[0]
        assert [got[name] for name in NUMERIC] == list(row[1:])
    types = {c.name: c.type for c in COLUMNS}  # what the export declares for each column
    for declared in feature_types(frame):
        wanted = {"category": "category", "int64": "long", "float64": "double"}
        assert declared["type"] == wanted[types[declared["name"]]], declared


@st.composite
def book_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, list[BookInputs]]:
    """Books as a frame like the database's (pandas' own dtypes, or all objects), with an
    index of its own, and the same books as inputs."""
    inputs = draw(st.lists(book_inputs(), max_size=6))
    records = [book._asdict() for book in inputs]
    columns = list(BookInputs._fields)
    index = draw(st.sampled_from([None, "shuffled", "labels"]))
    frame = pd.DataFrame(records, columns=columns)
    if chance(draw, 3):
        frame = frame.astype(object)
    if index == "shuffled":
        frame.index = pd.Index(draw(st.permutations(range(len(frame)))))
    elif index == "labels":
        frame.index = pd.Index([f"upc-{n}" for n in range(len(frame))])
    return frame, inputs


@property_settings(300)
@given(case=book_frames(), known=known_categories())
def test_the_frame_builder_agrees_with_the_row_builder(
    case: tuple[pd.DataFrame, list[BookInputs]], known: list[str]
) -> None:
    frame, inputs = case
    rows = feature_rows(inputs, set(known))
    built = book_features(frame, known)
    assert_frame_of(built, rows, known, frame.index)
    assert_frame_of(features_frame(rows, known, index=frame.index), rows, known, frame.index)
    pd.testing.assert_frame_equal(built, features_frame(rows, known, index=frame.index))
    # a book's features are its own: alone, or among others, the same
    for position in range(len(frame)):
        alone = book_features(frame.iloc[[position]], known)
        pd.testing.assert_frame_equal(alone, built.iloc[[position]])


# -- stored, streamed and served: both databases --------------------------------------------------


@dataclass
class Shelf:
    """What the examples have added to the database so far: categories, and UPCs to come."""

    categories: dict[str, int]  # every category created so far, by name
    upcs: itertools.count[int]


@dataclass(frozen=True)
class NewBook:
    inputs: BookInputs
    pence: int


def new_books() -> st.SearchStrategy[list[NewBook]]:
    stored = book_inputs().filter(lambda b: b.category is not None and b.title is not None)
    return st.lists(st.builds(NewBook, stored, st.integers(0, 2**31 - 1)), min_size=1, max_size=4)


def _store(engine: Engine, shelf: Shelf, added: list[NewBook]) -> list[str]:
    """Inserts the books as a crawl would leave them; returns their UPCs, in id order."""
    now = datetime.now(UTC)
    upcs = []
    with engine.begin() as conn:
        for book in added:
            name = book.inputs.category
            assert name is not None
            if name not in shelf.categories:
                shelf.categories[name] = conn.execute(
                    insert(categories)
                    .values(name=name, slug=f"c-{len(shelf.categories)}")
                    .returning(categories.c.id)
                ).scalar_one()
            upc = f"prop-{next(shelf.upcs)}"
            book_id = conn.execute(
                insert(books)
                .values(
                    upc=upc,
                    title=book.inputs.title,
                    product_type="Books",
                    price_excl_tax_pence=book.pence,
                    price_incl_tax_pence=book.pence,
                    tax_pence=0,
                    currency="GBP",
                    availability=book.inputs.availability,
                    rating=book.inputs.rating,
                    num_reviews=0,
                    image_url="",
                    product_url="",
                    category_id=shelf.categories[name],
                    first_seen_at=now,
                    last_seen_at=now,
                )
                .returning(books.c.id)
            ).scalar_one()
            if book.inputs.description is not None:
                conn.execute(
                    insert(descriptions).values(
                        book_id=book_id, description=book.inputs.description
                    )
                )
            upcs.append(upc)
    return upcs


def _typed(row: list[str]) -> list[Any]:
    """A CSV row's values as the export's declared types say."""
    if len(row) != len(COLUMNS):
        return row  # a broken line: the comparison shows it
    convert = {"int64": int, "float64": float}
    return [convert.get(c.type, str)(value) for c, value in zip(COLUMNS, row, strict=True)]


def _guarded(row: list[Any]) -> list[Any]:
    """A row as the spreadsheet-safe CSV writes it: text that a spreadsheet would read as a
    formula gets a leading quote; numbers stay numbers."""
    return [
        f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
        for value in row
    ]


async def _streamed(engine: AsyncEngine, shape: Shape, after: int, size: int) -> list[list[Any]]:
    data = TrainingData(engine, limit=1)
    content = b"".join([c.data async for c in data.stream(shape, after=after, batch_size=size)])
    if shape in (Shape.CSV, Shape.SPREADSHEET_CSV):
        return [_typed(row) for row in csv.reader(io.StringIO(content.decode(), newline=""))]
    lines = [orjson.loads(line) for line in content.splitlines()]
    if shape is Shape.OBJECTS:
        assert all(list(line) == [c.name for c in COLUMNS] for line in lines)
        return [list(line.values()) for line in lines]
    return lines


ML_FEATURES = """query($n: Int) { mlFeatures(last: $n) { edges { node {
    book { upc } category rating availability titleLength titleWords hasSubtitle inSeries
    seriesNumber hasDescription descriptionLength descriptionWords price } } } }"""


async def check_paths(
    client: AdminClient,
    engine: AsyncEngine,
    sync: Engine,
    shelf: Shelf,
    added: list[NewBook],
    size: int,
) -> None:
    upcs = _store(sync, shelf, added)
    async with engine.connect() as conn:
        first_id = (
            await conn.execute(select(books.c.id).where(books.c.upc == upcs[0]))
        ).scalar_one()
    rows = feature_rows([book.inputs for book in added], set(shelf.categories))
    expected = [
        [upc, *row, book.pence / 100] for upc, row, book in zip(upcs, rows, added, strict=True)
    ]
    for shape in Shape:  # the first stream computes and stores the new books' features
        streamed = await _streamed(engine, shape, first_id - 1, size)
        wanted = [_guarded(row) for row in expected] if shape is Shape.SPREADSHEET_CSV else expected
        assert streamed == wanted, (shape, added)
    async with engine.connect() as conn:
        found = await conn.execute(
            select(stored_features)
            .where(stored_features.c.book_id >= first_id)
            .order_by(stored_features.c.book_id)
        )
        stored = [list(row)[1:] for row in found]
    assert stored == [list(row[1:]) for row in rows]
    served = await client.data(ML_FEATURES, {"n": len(added)}, token=client.user_token)
    nodes = [edge["node"] for edge in served["mlFeatures"]["edges"]]
    names = ["category", *NUMERIC]
    camel = [re.sub(r"_(\w)", lambda m: m.group(1).upper(), name) for name in names]
    assert [
        [node["book"]["upc"], *(node[key] for key in camel), node["price"]] for node in nodes
    ] == expected


def test_stored_streamed_and_served_features_agree(empty_db: ScratchDatabase) -> None:
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        client = runner.run(stack.enter_async_context(admin_session(empty_db, seeded=False)))
        engine = create_async_db_engine(empty_db.settings())
        sync = create_sync_engine(empty_db.settings())
        shelf = Shelf(categories={}, upcs=itertools.count())
        try:

            @property_settings(40)
            @given(added=new_books(), size=st.integers(1, 3))
            @example(
                added=[
                    NewBook(BookInputs("Saga\rSplit", 2, 1, "A (B, #" + "9" * 400 + ")", ""), 5),
                    NewBook(BookInputs('Comma, "Quoted"\n', 5, 0, "", None), 0),
                ],
                size=1,
            )
            def paths_agree(added: list[NewBook], size: int) -> None:
                runner.run(check_paths(client, engine, sync, shelf, added, size))

            paths_agree()
        finally:
            sync.dispose()
            runner.run(engine.dispose())
            runner.run(stack.aclose())
