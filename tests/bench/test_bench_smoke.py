"""The catalogue benchmark's baseline stays comparable: the hand-written endpoints answer
exactly what GraphQL answers, compiled or plain; a ratio between different answers would
mean nothing. (Whether the SQL matches too, the benchmark reports: it may move first.)"""

from __future__ import annotations

from bench.catalog_queries import SCENARIOS, check, normalized_sql
from bench.summary import Row
from tests.conftest import ScratchDatabase


def test_handwritten_answers_match_graphql(seeded_db: ScratchDatabase) -> None:
    env = {"BOOKQL_DATA_DIR": str(seeded_db.data_dir), "BOOKQL_DATABASE_URL": seeded_db.url}
    report = check(env)  # raises when any side answers differently
    assert set(report) == {scenario.name for scenario in SCENARIOS}


def test_sql_comparison_ignores_rendering_only() -> None:
    sqlite = "SELECT a.x AS x_1 FROM a WHERE a.id IN (?, ?, ?) LIMIT ? OFFSET ?"
    postgres = "SELECT a.x AS x_1 FROM a\nWHERE a.id IN (%(id_1_1)s::INTEGER) LIMIT %(param_1)s"
    assert normalized_sql(sqlite) == normalized_sql(postgres)
    assert normalized_sql("SELECT a.x FROM a") != normalized_sql("SELECT a.x, a.y FROM a")


def test_summary_targets_read_both_ways() -> None:
    slower = Row("catalog", "p50", "1 ms", "2.5 ms", 2.5, 3.0)
    faster = Row("export", "rows/s", "100", "40", 0.4, 0.5, higher_is_better=True)
    assert (slower.target, slower.ok) == ("<= 3x", True)
    assert (faster.target, faster.ok) == (">= 0.5x", False)
    assert Row("predict", "batch", "2 s", "1 s", 0.5).ok is None
