"""Settings: the data directory anchors every default, production refuses insecure ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bookql.core.config import Settings, checkout_root, get_settings
from bookql.core.errors import ConfigError

REPO = Path(__file__).parents[2]
STRONG = "x" * 40


def test_defaults_live_in_the_checkout() -> None:
    settings = Settings()
    assert checkout_root() == REPO
    assert settings.data_dir == REPO
    assert settings.effective_database_url == f"sqlite:///{REPO / 'bookql.db'}"
    assert settings.effective_models_dir == REPO / "models_store"
    assert settings.public_catalogue is True
    assert settings.crawl_allowed_hosts == ["books.toscrape.com"]


@pytest.mark.slow
def test_database_is_the_same_file_from_any_directory(tmp_path: Path) -> None:
    code = "from bookql.core.config import Settings; print(Settings().effective_database_url)"
    urls = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        for cwd in (REPO, REPO / "crawler", tmp_path)
    }
    assert urls == {f"sqlite:///{REPO / 'bookql.db'}"}


def test_relative_data_dir_is_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOOKQL_DATA_DIR", "data")
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'bookql.db'}"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKQL_CRAWL_ALLOWED_HOSTS", "books.toscrape.com, Mirror.Example ,")
    monkeypatch.setenv("BOOKQL_PUBLIC_CATALOGUE", "false")
    monkeypatch.setenv("BOOKQL_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.crawl_allowed_hosts == ["books.toscrape.com", "mirror.example"]
    assert settings.public_catalogue is False
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKQL_ENV", "prod")
    monkeypatch.setenv("BOOKQL_REDIS_URL", "http://localhost")
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as caught:
        get_settings()
    get_settings.cache_clear()
    message = str(caught.value)
    assert "BOOKQL_ENV" in message and "BOOKQL_REDIS_URL" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({}, "set BOOKQL_JWT_SECRET"),
        ({"jwt_secret": "changeme"}, "too weak"),
        ({"jwt_secret": "short"}, "too weak"),
        ({"jwt_secret": STRONG, "debug": True}, "debug"),
    ],
)
def test_production_refuses_insecure_defaults(overrides: dict[str, object], complaint: str) -> None:
    settings = Settings.model_validate({"env": "production", **overrides})
    with pytest.raises(ConfigError, match=complaint):
        settings.check_production()


def test_production_with_a_real_secret_starts() -> None:
    Settings(env="production", jwt_secret=STRONG).check_production()
    Settings(jwt_secret=None).check_production()  # development needs no secret


def test_secret_never_printed() -> None:
    settings = Settings(jwt_secret=STRONG)
    assert STRONG not in repr(settings) and STRONG not in str(settings.model_dump())
