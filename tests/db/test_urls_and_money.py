"""Database URLs and exact money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bookql.catalog.money import from_pence, to_pence
from bookql.catalog.slugs import slugify
from bookql.core.errors import ConfigError
from bookql.db.urls import async_url, parse_database_url, redact, sync_url


@pytest.mark.parametrize(
    ("raw", "sync", "asynchronous"),
    [
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        (
            "postgresql+psycopg://u@h/db",
            "postgresql+psycopg://u@h/db",
            "postgresql+psycopg://u@h/db",
        ),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgres://u@h:5433/db",
            "postgresql+psycopg://u@h:5433/db",
            "postgresql+psycopg://u@h:5433/db",
        ),
    ],
)
def test_supported_urls(raw: str, sync: str, asynchronous: str) -> None:
    url = parse_database_url(raw)
    assert sync_url(url).render_as_string() == sync
    assert async_url(url).render_as_string() == asynchronous


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("postgresql+asyncpg://u@h/db", "psycopg 3"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_urls_are_named(raw: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_database_url(raw)


def test_redaction_hides_the_password() -> None:
    url = parse_database_url("postgresql+psycopg://bob:hunter2@db.example/prod")
    assert "hunter2" not in redact(url)
    assert "bob:***@db.example" in redact(url)


@pytest.mark.parametrize(
    ("amount", "pence"),
    [(51.77, 5177), ("0.00", 0), (Decimal("10.10"), 1010), (0.1 + 0.2 - 0.3, 0)],
)
def test_to_pence_is_exact(amount: object, pence: int) -> None:
    if isinstance(amount, float) and amount != round(amount, 2):
        with pytest.raises(ValueError, match="fractions of a penny"):
            to_pence(amount)
        return
    assert to_pence(amount) == pence  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["1.005", "abc", "NaN", float("inf")])
def test_to_pence_rejects_non_money(amount: object) -> None:
    with pytest.raises(ValueError, match=r"penny|money"):
        to_pence(amount)  # type: ignore[arg-type]


def test_from_pence_round_trips_every_price() -> None:
    assert all(to_pence(from_pence(p)) == p for p in range(0, 100_000, 7))


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Historical Fiction", "historical-fiction"),
        ("Add a comment", "add-a-comment"),
        ("Self Help", "self-help"),
        ("Café  Noir!", "cafe-noir"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
