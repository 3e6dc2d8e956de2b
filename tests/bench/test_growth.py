"""The growth benchmark's synthetic catalogue and plumbing: the generator is deterministic,
its spreads are the ones documented, its records import cleanly on both databases, the kept
scratch databases are keyed by what their content depends on, and a tiny run goes end to end
(no timing is asserted anywhere)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from bench import growth
from bench.catalogue_generator import (
    GENERATOR_VERSION,
    expected_share,
    generate,
    search_word,
    upc,
    vocabulary,
    write_file,
)
from bench.summary import BENCHMARKS
from bookql.catalog.import_lines import record_from_line
from bookql.catalog.tables import books
from tests.conftest import PG_URL, ScratchDatabase, require_service

WORD = re.compile(r"[a-z]+")


@pytest.fixture(scope="module")
def sample() -> list[dict[str, object]]:
    return list(generate(4000))


def _words(record: dict[str, object]) -> list[str]:
    return WORD.findall(f"{record['title']} {record['description'] or ''}".lower())


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    write_file(tmp_path / "a.jsonl", 300, seed=5)
    write_file(tmp_path / "b.jsonl", 300, seed=5)
    write_file(tmp_path / "c.jsonl", 300, seed=6)
    first = (tmp_path / "a.jsonl").read_bytes()
    assert first == (tmp_path / "b.jsonl").read_bytes()
    assert first != (tmp_path / "c.jsonl").read_bytes()
    assert len(first.splitlines()) == 300


def test_every_record_is_a_valid_import_line(sample: list[dict[str, object]]) -> None:
    for record in sample[:500]:
        parsed = record_from_line(json.dumps(record))  # raises BadLine on a bad one
        assert parsed.upc == record["upc"]


def test_upcs_are_unique_hex_of_sixteen_digits() -> None:
    codes = [upc(index) for index in range(200_000)]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[0-9a-f]{16}", code) for code in codes[:1000])
    assert upc(7, seed=1) != upc(7, seed=2)


def test_words_follow_a_zipf_like_spread(sample: list[dict[str, object]]) -> None:
    counts = Counter(word for record in sample for word in _words(record))
    ranked = [count for _, count in counts.most_common()]
    total = sum(ranked)
    assert len(counts) > 10_000  # a large vocabulary, not a handful of repeated words
    assert 0.1 < sum(ranked[:10]) / total < 0.4  # a few words make up much of the text
    # frequency against rank on log-log axes, between ranks 10 and 1000: slope near -1
    slope = (math.log(ranked[999]) - math.log(ranked[9])) / (math.log(1000) - math.log(10))
    assert -1.3 < slope < -0.7, slope
    assert sum(ranked[len(ranked) // 2 :]) / total < 0.1  # a long tail of rare words


def test_the_search_word_is_in_about_a_quarter_of_the_books(
    sample: list[dict[str, object]],
) -> None:
    word = search_word()
    holding = sum(1 for record in sample if word in _words(record))
    assert 0.2 < holding / len(sample) < 0.3
    assert abs(expected_share(word) - 0.25) < 0.03
    assert len(word) >= 4 and word in vocabulary().description.words[:400]


def test_spreads_of_category_price_rating_and_stock(sample: list[dict[str, object]]) -> None:
    found = vocabulary()
    categories = Counter(record["category"] for record in sample)
    assert set(categories) <= set(found.categories) and len(found.categories) == 50
    assert categories.most_common(1)[0][0] == "Default"  # skewed as the real shop is
    ratings = Counter(record["rating"] for record in sample)
    assert ratings[4] + ratings[5] > 2 * (ratings[1] + ratings[2])
    prices = [float(str(record["price"])) for record in sample]
    assert min(prices) >= 0.99 and 5 < sorted(prices)[len(prices) // 2] < 20
    out_of_stock = sum(1 for record in sample if record["availability_count"] == 0)
    assert 0.03 < out_of_stock / len(sample) < 0.15


def test_records_import_cleanly_with_bookql_import(
    empty_db: ScratchDatabase, tmp_path: Path
) -> None:
    path = tmp_path / "catalogue.jsonl"
    write_file(path, 400)
    env = {"BOOKQL_DATABASE_URL": empty_db.url, "BOOKQL_DATA_DIR": str(empty_db.data_dir)}
    _, summary = growth.bookql_import(env, path)
    assert summary == "inserted 400, updated 0, unchanged 0, 0 bad lines skipped"
    engine = create_engine(empty_db.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(books)).scalar_one() == 400
    finally:
        engine.dispose()


def test_the_scratch_database_is_keyed_by_generator_schema_and_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = growth.scratch_name(1_000_000)
    assert name.startswith("bookql_bench_growth_1000000_") and len(name) <= 63
    assert name == growth.scratch_name(1_000_000)
    assert name != growth.scratch_name(100_000)
    assert name != growth.scratch_name(1_000_000, seed=2)
    monkeypatch.setattr(growth, "head_revision", lambda: "0099_a_later_revision")
    assert growth.scratch_name(1_000_000) != name
    monkeypatch.undo()
    monkeypatch.setattr(growth, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    assert growth.scratch_name(1_000_000) != name


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict[str, Any], str]:
    growth.main(["--rounds", "1", "--warm-up", "0", *args])
    output = capsys.readouterr().out
    results = json.loads(Path(output.split("written: ")[1].split(";")[0]).read_text())
    return results, output


def _check(results: dict[str, Any], books: int) -> None:
    (backend,) = results["backends"]
    assert backend["books"] == books
    assert {q["name"] for q in backend["queries"]} == {q.name for q in growth.QUERIES}
    assert backend["answers_differ"] == []  # both executors answer alike
    assert 0 < backend["search_matches"]["large"] < books
    rows = BENCHMARKS["growth"].rows(results)
    assert len(rows) == len(growth.QUERIES) + 1 and all(row.ratio > 0 for row in rows)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(growth, "SCRATCH", tmp_path / "scratch")
    monkeypatch.setattr("bench.harness.RESULTS", tmp_path / "results")
    return tmp_path / "scratch"


@pytest.mark.slow  # four `bookql serve` processes, twice
def test_a_tiny_run_on_sqlite_end_to_end_then_reused(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, output = _run(capsys, "--only", "sqlite", "--sqlite-books", "150")
    _check(results, 150)
    assert "`bookql import`" in output and "plain executemany" in output
    assert f'search "{search_word()}"' in output
    name = growth.scratch_name(150)
    assert (scratch / f"{name}.db").exists() and (scratch / f"{name}.json").exists()
    again, output = _run(capsys, "--only", "sqlite", "--sqlite-books", "150")
    assert again["backends"][0]["load"]["reused"] is True
    assert "reused" in output
    assert growth.drop_all("postgresql+psycopg://nobody@127.0.0.1:1/none", name)
    assert not list(scratch.iterdir())


@pytest.mark.slow  # four `bookql serve` processes
def test_a_tiny_run_on_postgresql_end_to_end(
    scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = require_service(PG_URL, "BOOKQL_TEST_DATABASE_URL", "PostgreSQL")
    name = growth.scratch_name(120)
    try:
        results, output = _run(
            capsys, "--only", "postgresql", "--postgres-books", "120", "--postgres", base, "--fresh"
        )
        _check(results, 120)
        assert "plain COPY" in output
        assert growth._postgres_marker(base, name) is not None  # kept, with its figures
    finally:
        assert growth.drop_all(base, name) == [name]
