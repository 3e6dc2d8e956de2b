"""The ``bookql`` command: what operators type, and what they see when it goes wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bookql.accounts.setup import build_accounts
from bookql.core.config import Settings
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import create_async_db_engine
from bookql.db.migrate import head_revision
from bookql.server.schema import build_schema, print_sdl
from tests.support.live import free_port
from tests.support.snapshot_truth import snapshot_books

pytestmark = pytest.mark.slow  # the command line in subprocesses

REPO = Path(__file__).parents[2]


def bookql(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bookql", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "args", "complaint"),
    [
        (
            {"BOOKQL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
            ["db", "upgrade"],
            "cannot reach the database postgresql+psycopg://nobody@127.0.0.1:1/none",
        ),
        ({"BOOKQL_DATABASE_URL": "mysql://u:pw@h/db"}, ["seed"], "unsupported scheme 'mysql'"),
        ({"BOOKQL_ENV": "production"}, ["serve"], "set BOOKQL_JWT_SECRET"),
        ({"BOOKQL_ENV": "staging"}, ["serve"], "BOOKQL_ENV"),
    ],
)
def test_bad_configuration_stops_with_one_line(
    env: dict[str, str], args: list[str], complaint: str, tmp_path: Path
) -> None:
    result = bookql(*args, env={"BOOKQL_DATA_DIR": str(tmp_path), **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bookql: error: ")
    assert complaint in lines[0]
    assert "pw@" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["seed"], ["import", "-"], ["users", "create", "root"], ["train"], ["jobs", "list"]],
    ids=" ".join,
)
def test_commands_on_a_database_without_the_schema_say_what_to_run(
    args: list[str], tmp_path: Path
) -> None:
    result = bookql(*args, env={"BOOKQL_DATA_DIR": str(tmp_path)}, stdin="")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "bookql: error: the database schema is behind: run `bookql db upgrade`"
    ]


def test_upgrade_and_seed_from_the_command_line(tmp_path: Path) -> None:
    env = {"BOOKQL_DATA_DIR": str(tmp_path)}
    assert "migrated to head" in bookql("db", "upgrade", env=env).stdout
    assert f"head:    {head_revision()}" in bookql("db", "current", env=env).stdout
    assert bookql("seed", env=env).stdout.strip() == "seeded 1000 new books (0 already stored)"
    assert bookql("seed", env=env).stdout.strip() == "seeded 0 new books (1000 already stored)"
    assert (tmp_path / "bookql.db").is_file()


def test_users_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {"BOOKQL_DATA_DIR": str(tmp_path), "BOOKQL_ARGON2_TIME_COST": "2"}
    bookql("db", "upgrade", env=env)
    made = bookql("users", "create", "Root", "--admin", env=env, stdin="a long admin password\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created admin root"
    again = bookql("users", "create", "root", env=env, stdin="another password\n")
    assert again.returncode == 1
    assert again.stderr.strip() == "bookql: error: that username is already taken"
    short = bookql("users", "create", "bob", env=env, stdin="short\n")
    assert short.returncode == 1
    assert "8 to 256 characters" in short.stderr


async def test_created_admin_can_log_in(tmp_path: Path) -> None:
    env = {"BOOKQL_DATA_DIR": str(tmp_path)}
    bookql("db", "upgrade", env=env)
    bookql("users", "create", "boss", "--admin", env=env, stdin="a long admin password\n")
    settings = Settings(data_dir=tmp_path)
    engine = create_async_db_engine(settings)
    blocking = BlockingDatabase.for_settings(settings)
    accounts = build_accounts(settings, engine, None, blocking)
    session = await accounts.login("boss", "a long admin password", None)
    blocking.close()
    await engine.dispose()
    assert session.user.role == "ADMIN"


def test_schema_file_is_the_served_schema() -> None:
    committed = (REPO / "schema.graphql").read_text()
    assert committed == print_sdl(build_schema()), "run `bookql export-schema > schema.graphql`"
    assert bookql("export-schema").stdout == committed


def test_serve_on_a_fresh_data_dir_shows_the_catalog(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bookql", "serve", "--port", str(port)],
        env={**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ books(first: 5) { edges { node { title } } } }"},
        )
        titles = [edge["node"]["title"] for edge in response.json()["data"]["books"]["edges"]]
        assert titles == [book["title"] for book in snapshot_books()[:5]]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    # uvicorn finishes in-flight work, then re-raises SIGTERM so the exit status tells why.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "loaded 1000 books from the bundled snapshot" in output
