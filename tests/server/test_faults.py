"""Failing dependencies, on a real server: PostgreSQL restarted under it, Redis gone.

Each test gets servers of its own (tests/support/services.py): the shared ones are never touched.
While the database is down every request fails with ``SERVICE_UNAVAILABLE`` (a GraphQL
error, or 503 for the export) and the process stays up; once it is back the same server
answers again, without a restart. Without Redis, login limits fall back to each process
and ``/readyz`` says the service is degraded rather than down. A models directory that
fails while a model is saved fails the training and leaves the active model as it was.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bookql.db.engine import create_async_db_engine
from bookql.ml.price_model import train_price_model
from bookql.ml.store import ModelStore
from bookql.ml.tables import model_trainings
from bookql.ml.training_runs import queue_training
from bookql.server.job_kinds import build_worker
from tests.conftest import FAST_ARGON2, IN_CI, ScratchDatabase
from tests.ml.test_ml import CATEGORIES, snapshot_frame
from tests.support.live import bookql, live_server
from tests.support.services import PrivatePostgres, missing_tools, private_postgres, private_redis

pytestmark = pytest.mark.slow  # private PostgreSQL and Redis servers, stopped and restarted

PASSWORD = "fault tolerant password"
BOOKS = "{ books(first: 3) { edges { node { title } } } }"
LOGIN = """mutation($p: String!) {
    login(input: {username: "ops", password: $p}) { accessToken } }"""
ME = "{ me { username } }"


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    missing = missing_tools()
    if missing:
        message = f"fault tests need {missing}"
        pytest.fail(f"CI must not skip: {message}") if IN_CI else pytest.skip(message)


def _environment(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "BOOKQL_DATABASE_URL": database_url,
        "BOOKQL_DATA_DIR": str(tmp_path),
        **{f"BOOKQL_{name.upper()}": str(value) for name, value in FAST_ARGON2.items()},
        **extra,
    }


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, dict[str, str]]]:
    """A private cluster, migrated and seeded, with a user ``ops``."""
    with private_postgres() as cluster:
        env = _environment(tmp_path, cluster.url)
        bookql(env, "db", "upgrade")
        bookql(env, "seed")
        bookql(env, "users", "create", "ops", stdin=PASSWORD + "\n")
        yield cluster, env


def _post(url: str, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors") or []}


def _redis_check(url: str) -> str:
    status: str = httpx.get(f"{url}/readyz").json()["checks"]["redis"]["status"]
    return status


def _eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not recover in time"
        time.sleep(0.2)


def test_postgresql_restarted_while_serving(
    private_cluster: tuple[PrivatePostgres, dict[str, str]], tmp_path: Path
) -> None:
    cluster, env = private_cluster
    with live_server(env, tmp_path / "server.log") as url:
        assert len(_post(url, BOOKS)["data"]["books"]["edges"]) == 3
        token = _post(url, LOGIN, p=PASSWORD)["data"]["login"]["accessToken"]

        cluster.stop()
        assert _codes(_post(url, BOOKS)) == {"SERVICE_UNAVAILABLE"}
        assert _codes(_post(url, LOGIN, p=PASSWORD)) == {"SERVICE_UNAVAILABLE"}
        assert _codes(_post(url, ME, token)) == {"SERVICE_UNAVAILABLE"}
        export = httpx.get(
            f"{url}/export/training-data", headers={"Authorization": f"Bearer {token}"}
        )
        assert export.status_code == 503
        assert export.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "error"
        assert httpx.get(f"{url}/healthz").status_code == 200  # the process itself is fine

        cluster.start()
        _eventually(lambda: "data" in _post(url, BOOKS) and not _post(url, BOOKS).get("errors"))
        assert _post(url, ME, token)["data"]["me"]["username"] == "ops"
        assert "accessToken" in _post(url, LOGIN, p=PASSWORD)["data"]["login"]
        assert httpx.get(f"{url}/readyz").status_code == 200
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_redis_going_away_degrades_to_per_process_limits(
    private_cluster: tuple[PrivatePostgres, dict[str, str]], tmp_path: Path
) -> None:
    _cluster, env = private_cluster
    with private_redis() as redis:
        env = {**env, "BOOKQL_REDIS_URL": redis.url}
        with live_server(env, tmp_path / "server.log") as url:
            assert _redis_check(url) == "ok"

            redis.stop()
            assert "accessToken" in _post(url, LOGIN, p=PASSWORD)["data"]["login"]
            wrong = [_codes(_post(url, LOGIN, p="wrong password")) for _ in range(12)]
            assert {"RATE_LIMITED"} in wrong  # the limit still holds, in this process
            degraded = httpx.get(f"{url}/readyz")
            assert degraded.status_code == 200
            assert degraded.json()["status"] == "degraded"
            assert _redis_check(url) == "degraded"

            redis.start()
            _eventually(lambda: _redis_check(url) == "ok")
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("failure", ["disk full", "read-only"])
async def test_a_failing_models_directory_keeps_the_active_model(
    seeded_db: ScratchDatabase, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests run as root, so the failure is injected where the store writes: the training
    fails after its attempts with the reason, and the model that was active stays so."""
    settings = seeded_db.settings(
        models_dir=seeded_db.data_dir / f"models-{failure.replace(' ', '-')}",
        job_max_attempts=2,
        job_retry_delay_seconds=0,
    )
    store = ModelStore(settings.effective_models_dir)
    before = store.save(train_price_model(snapshot_frame(), CATEGORIES, seed=1)).version
    store.activate(before)
    error = (
        OSError(errno.ENOSPC, "No space left on device")
        if failure == "disk full"
        else OSError(errno.EROFS, "Read-only file system")
    )

    def failing_save_model(self: Any, path: Any) -> None:
        raise error

    monkeypatch.setattr("xgboost.Booster.save_model", failing_save_model)
    engine = create_async_db_engine(settings)
    try:
        queued = await queue_training(
            engine, seed=2, activate=True, requested_by=None, max_attempts=2
        )
        await build_worker(settings, engine).run(once=True)
        async with engine.connect() as conn:
            training = (
                await conn.execute(
                    select(model_trainings).where(model_trainings.c.version == queued.version)
                )
            ).one()
    finally:
        await engine.dispose()
    assert training.status == "FAILED"
    assert error.strerror in (training.message or "")
    assert store.active_version() == before
    assert [model.version for model in store.versions()] == [before]
    leftovers = [path.name for path in store.root.iterdir() if path.name.startswith(".tmp-")]
    assert leftovers == []  # no half-written version behind
