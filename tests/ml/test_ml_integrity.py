"""A damaged model store is contained: checked before activation, the last good model served.

Each failure an outside review reproduced is here as a regression test: activating a corrupt
version, a garbage ``ACTIVE`` file, a broken ``MLmodel`` in the listing, an overlong version
name; then what replaced them: checksums recorded at save, versions saved before checksums,
``/readyz`` degraded rather than down, and the alias and the served version reported apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from bookql.db.engine import create_sync_engine
from bookql.graphql.relay import to_global_id
from bookql.ml import serving as serving_module
from bookql.ml import store as store_module
from bookql.ml.price_model import TrainedModel, train_price_model
from bookql.ml.store import ModelStore, StoredModel
from bookql.ml.tables import model_trainings
from tests.conftest import PostgresDatabases, ScratchDatabase, app_client, error_codes
from tests.ml.test_ml import CATEGORIES, snapshot_frame
from tests.ml.test_ml_api import JOBS_IN_SERVER
from tests.support.admin_session import AdminClient, admin_session
from tests.support.live import bookql, running_server, server_env

pytestmark = pytest.mark.slow  # trains price models

ACTIVATE = "mutation($v: String!) { activateModel(input: {version: $v}) { version active } }"
PREDICT = """mutation { predictPrice(input: {features: {category: "Poetry", rating: 3,
    availability: 5, title: "Poems", description: null}}) { modelVersion } }"""
ACTIVE_MODEL = "{ activeModel { version active serving { servedVersion aliasVersion problem } } }"
LISTING = "{ models { version status active problem metrics { model { mae } } } }"
TRAIN = "mutation { trainModel(input: {seed: 3, activate: true}) { version status } }"
LONG_NAME = "v" * 5000


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_price_model(snapshot_frame(), CATEGORIES, seed=7)


@pytest.fixture(autouse=True)
def look_at_the_alias_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving_module, "ALIAS_CHECK_SECONDS", 0.0)


def store_of(database: ScratchDatabase) -> ModelStore:
    return ModelStore(database.data_dir / "models_store")


@pytest.fixture
async def client(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db) as session:
        yield session


def corrupt(model: StoredModel) -> None:
    (model.path / "model.ubj").write_bytes(b"not a model at all")


def strip_checksums(model: StoredModel) -> None:
    """What a version saved before checksums existed looks like."""
    metadata = yaml.safe_load((model.path / "MLmodel").read_text())
    del metadata["metadata"]["bookql"]["checksums"]
    (model.path / "MLmodel").write_text(yaml.safe_dump(metadata, sort_keys=False))


async def served(client: AdminClient) -> str:
    body = await client.data(PREDICT, token=client.user_token)
    return str(body["predictPrice"]["modelVersion"])


async def readyz(client: AdminClient) -> httpx.Response:
    return await client.http.get("/readyz")


# -- the findings, as reproduced on main ---------------------------------------------------


async def test_a_corrupt_version_is_not_activated(
    client: AdminClient, empty_db: ScratchDatabase, trained: TrainedModel
) -> None:
    store = store_of(empty_db)
    good, bad = store.save(trained), store.save(trained)
    store.activate(good.version)
    assert await served(client) == good.version
    corrupt(bad)
    refused = await client.execute(ACTIVATE, {"v": bad.version}, token=client.admin_token)
    assert error_codes(refused) == ["CONFLICT"]
    assert "model.ubj" in refused["errors"][0]["message"]
    assert refused["errors"][0]["extensions"]["field"] == "version"
    assert store.active_version() == good.version  # the alias never moved
    assert await served(client) == good.version
    ready = await readyz(client)
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff garbage",
        b"[]",
        b'{"version": 5}',
        b'{"version": "../../etc"}',
        json.dumps({"version": LONG_NAME}).encode(),
        b'{"version": "20990101-000000-000000-none"}',
    ],
    ids=["binary", "list", "number", "traversal", "long", "missing-version"],
)
async def test_a_garbage_alias_keeps_the_last_good_model(
    client: AdminClient,
    empty_db: ScratchDatabase,
    trained: TrainedModel,
    garbage: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = store_of(empty_db)
    good = store.save(trained)
    store.activate(good.version)
    assert await served(client) == good.version
    (store.root / "ACTIVE").write_bytes(garbage)
    with caplog.at_level(logging.INFO, logger="bookql.ml"):
        for _ in range(3):
            assert await served(client) == good.version
    warnings = [r for r in caplog.records if r.name == "bookql.ml" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # once per change, not per request
    ready = await readyz(client)
    assert ready.status_code == 200
    model = ready.json()["checks"]["model"]
    assert ready.json()["status"] == "degraded"
    assert (model["status"], model["served"]) == ("degraded", good.version)
    serving = (await client.admin(ACTIVE_MODEL))["activeModel"]
    assert serving["version"] == good.version
    assert serving["serving"]["servedVersion"] == good.version
    assert serving["serving"]["problem"]

    store.activate(good.version)  # the alias is repaired: all is well again, said once
    assert await served(client) == good.version
    assert (await readyz(client)).json()["status"] == "ready"
    repaired = (await client.admin(ACTIVE_MODEL))["activeModel"]
    assert repaired["serving"] == {
        "servedVersion": good.version,
        "aliasVersion": good.version,
        "problem": None,
    }


@pytest.mark.parametrize("damage", ["corrupt-model", "delete-folder", "garbage-mlmodel"])
async def test_damaged_files_of_the_served_version(
    client: AdminClient, empty_db: ScratchDatabase, trained: TrainedModel, damage: str
) -> None:
    store = store_of(empty_db)
    good = store.save(trained)
    store.activate(good.version)
    assert await served(client) == good.version
    if damage == "corrupt-model":
        corrupt(good)
    elif damage == "delete-folder":
        for path in good.path.iterdir():
            path.unlink()
        good.path.rmdir()
    else:
        (good.path / "MLmodel").write_text("{ not: yaml: at all")
    assert await served(client) == good.version  # from memory: the last good model
    ready = await readyz(client)
    assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    serving = (await client.admin(ACTIVE_MODEL))["activeModel"]["serving"]
    assert serving["servedVersion"] == serving["aliasVersion"] == good.version
    assert serving["problem"]

    # a process started now has no good model to fall back on: it says so, and stays up
    async with app_client(empty_db.settings(jwt_secret="k" * 64)) as fresh:
        other = AdminClient(fresh)
        body = await other.execute(PREDICT, token=client.user_token)
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
        assert good.version in body["errors"][0]["message"]
        ready = await fresh.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
        assert ready.json()["checks"]["model"]["alias"] == good.version


async def test_a_broken_version_is_listed_as_broken(
    client: AdminClient, empty_db: ScratchDatabase, trained: TrainedModel
) -> None:
    store = store_of(empty_db)
    good, unreadable, incomplete, corrupted = (store.save(trained) for _ in range(4))
    store.activate(good.version)
    (unreadable.path / "MLmodel").write_text("{ not: yaml: at all")
    metadata = yaml.safe_load((incomplete.path / "MLmodel").read_text())
    del metadata["metadata"]["bookql"]["metrics"]
    (incomplete.path / "MLmodel").write_text(yaml.safe_dump(metadata))
    corrupt(corrupted)
    assert len((await client.admin("{ models { version } }"))["models"]) == 4
    models = {m["version"]: m for m in (await client.admin(LISTING))["models"]}
    assert set(models) == {good.version, unreadable.version, incomplete.version, corrupted.version}
    assert models[good.version]["problem"] is None
    assert models[good.version]["active"] is True
    for broken in (unreadable, incomplete, corrupted):
        assert models[broken.version]["problem"], broken.version
        assert models[broken.version]["status"] == "READY"  # trained and stored; now damaged
    assert models[unreadable.version]["metrics"] is None
    assert "MLmodel" in models[incomplete.version]["problem"]
    assert "model.ubj" in models[corrupted.version]["problem"]
    assert models[corrupted.version]["metrics"] is not None  # its metadata still reads
    active = (await client.admin(ACTIVE_MODEL))["activeModel"]
    assert active["version"] == good.version
    for broken in (unreadable, incomplete, corrupted):
        refused = await client.execute(ACTIVATE, {"v": broken.version}, token=client.admin_token)
        assert error_codes(refused) == ["CONFLICT"]
    assert await served(client) == good.version


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (LONG_NAME, "BAD_USER_INPUT"),
        ("../models_store", "BAD_USER_INPUT"),
        (".ACTIVE", "BAD_USER_INPUT"),
        ("a/b", "BAD_USER_INPUT"),
        ("", "BAD_USER_INPUT"),
        ("20990101-000000-000000-none", "NOT_FOUND"),
    ],
)
async def test_version_names_are_checked_before_the_filesystem(
    client: AdminClient, name: str, code: str
) -> None:
    body = await client.execute(ACTIVATE, {"v": name}, token=client.admin_token)
    assert error_codes(body) == [code]
    assert body["errors"][0]["extensions"]["field"] == "version"
    if name:  # an empty key is not a global id at all
        node = await client.admin(
            "query($id: ID!) { node(id: $id) { id } }", {"id": to_global_id("ModelVersion", name)}
        )
        assert node == {"node": None}


async def test_a_training_that_fails_its_checks_is_stored_but_not_activated(
    empty_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bookql.ml import integrity

    def refuse(*_args: object) -> None:
        raise integrity.BrokenVersion("its probe prediction is not a price: [nan]")

    monkeypatch.setattr(store_module, "check_booster", refuse)
    async with admin_session(empty_db, **JOBS_IN_SERVER) as client:
        version = (await client.admin(TRAIN))["trainModel"]["version"]
        engine = create_sync_engine(empty_db.settings())
        try:
            for _ in range(1200):
                with engine.connect() as conn:
                    training = conn.execute(
                        select(model_trainings).where(model_trainings.c.version == version)
                    ).one()
                if training.status != "TRAINING":
                    break
                await asyncio.sleep(0.05)
        finally:
            engine.dispose()
        assert training.status == "FAILED"
        assert "not activated" in training.message and "probe" in training.message
        assert store_of(empty_db).active_version() is None
        listed = (await client.admin(LISTING))["models"]
        assert [(m["version"], m["active"]) for m in listed] == [(version, False)]
        assert "probe" in listed[0]["problem"]


async def test_a_switch_during_a_look_at_the_alias_is_not_lost(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``forget`` while the alias is being read (the training job activating as a request
    looks): the next request looks again rather than trusting the look for a second."""
    monkeypatch.setattr(serving_module, "ALIAS_CHECK_SECONDS", 60.0)
    store = ModelStore(tmp_path)
    first, second = store.save(trained), store.save(trained)
    store.activate(first.version)
    active = serving_module.ActiveModel(store)
    real = store.alias
    looking, go = threading.Event(), threading.Event()

    def slow_alias() -> Any:
        found = real()
        looking.set()
        go.wait(10)
        return found

    monkeypatch.setattr(store, "alias", slow_alias)
    look = asyncio.create_task(active.get())
    await asyncio.to_thread(looking.wait, 10)
    store.activate(second.version)
    active.forget()
    go.set()
    assert (served := await look) is not None and served.version == first.version
    monkeypatch.setattr(store, "alias", real)
    assert (served := await active.get()) is not None and served.version == second.version


# -- checksums, signatures and legacy versions ----------------------------------------------


def test_checksums_are_recorded_at_save(trained: TrainedModel, tmp_path: Path) -> None:
    saved = ModelStore(tmp_path).save(trained)
    checksums = saved.bookql["checksums"]
    artifacts = {p.name for p in saved.path.iterdir()} - {"MLmodel"}
    assert set(checksums) == artifacts
    for name, recorded in checksums.items():
        assert recorded == "sha256:" + hashlib.sha256((saved.path / name).read_bytes()).hexdigest()
    assert list(tmp_path.iterdir()) == [saved.path]  # nothing half-written beside it


def test_a_loadable_but_altered_model_is_caught_by_its_checksum(
    trained: TrainedModel, tmp_path: Path
) -> None:
    from bookql.ml.store import BrokenVersion

    store = ModelStore(tmp_path)
    saved = store.save(trained)
    original = (saved.path / "model.ubj").read_bytes()
    altered = trained.model.copy()
    altered.set_attr(altered="yes")  # still a valid model: only the checksum can tell
    altered.save_model(saved.path / "model.ubj")
    with pytest.raises(BrokenVersion, match="checksum"):
        store.activate(saved.version)
    assert store.active_version() is None
    (saved.path / "model.ubj").write_bytes(original)
    assert store.problem(saved.version) is None
    (saved.path / "model_card.md").write_text("# edited")
    assert "model_card.md" in str(store.problem(saved.version))


def test_a_signature_that_does_not_match_the_model_is_refused(
    trained: TrainedModel, tmp_path: Path
) -> None:
    from bookql.ml.store import BrokenVersion

    store = ModelStore(tmp_path)
    saved = store.save(trained)
    metadata = yaml.safe_load((saved.path / "MLmodel").read_text())
    inputs = json.loads(metadata["signature"]["inputs"])
    inputs[1]["type"] = "double"  # rating: the model was trained on integers
    metadata["signature"]["inputs"] = json.dumps(inputs)
    (saved.path / "MLmodel").write_text(yaml.safe_dump(metadata, sort_keys=False))
    with pytest.raises(BrokenVersion, match="signature"):
        store.activate(saved.version)
    inputs[1] = {"name": "stars", "type": "long"}
    metadata["signature"]["inputs"] = json.dumps(inputs)
    (saved.path / "MLmodel").write_text(yaml.safe_dump(metadata, sort_keys=False))
    with pytest.raises(BrokenVersion, match="signature"):
        store.activate(saved.version)


async def test_versions_saved_before_checksums_are_checked_by_loading(
    client: AdminClient, empty_db: ScratchDatabase, trained: TrainedModel
) -> None:
    store = store_of(empty_db)
    legacy, corrupted = store.save(trained), store.save(trained)
    strip_checksums(legacy)
    strip_checksums(corrupted)
    corrupt(corrupted)
    assert (await client.admin(ACTIVATE, {"v": legacy.version}))["activateModel"]["active"]
    assert await served(client) == legacy.version
    refused = await client.execute(ACTIVATE, {"v": corrupted.version}, token=client.admin_token)
    assert error_codes(refused) == ["CONFLICT"]
    models = {m["version"]: m for m in (await client.admin(LISTING))["models"]}
    assert models[legacy.version]["problem"] is None
    assert "model.ubj" in models[corrupted.version]["problem"]
    assert store.active_version() == legacy.version


HELD_OUT = """{ models { version problem metrics { model { mae } }
    heldOutPredictions { upc title actual predicted } } }"""


async def test_held_out_points_are_stored_with_the_version_and_served(
    client: AdminClient, empty_db: ScratchDatabase, trained: TrainedModel
) -> None:
    """The points the version's metrics were measured on: the catalogue's own prices and
    titles, the model's predictions, their MAE the recorded one; none for a version saved
    before they were kept, none (and a problem) when the file was altered."""
    store = store_of(empty_db)
    kept, legacy, altered = store.save(trained), store.save(trained), store.save(trained)
    strip_checksums(legacy)
    points_file = altered.path / "holdout.json"
    points_file.write_text(points_file.read_text().replace('"predicted": ', '"predicted": 1', 1))
    models = {m["version"]: m for m in (await client.admin(HELD_OUT))["models"]}

    points = models[kept.version]["heldOutPredictions"]
    assert len(points) == trained.metrics["rows"]["test"] == 200
    truth = {row["upc"]: row for row in snapshot_frame().to_dict("records")}
    for point in points:
        assert point["actual"] == pytest.approx(truth[point["upc"]]["price"])
        assert point["title"] == truth[point["upc"]]["title"]
    assert [p["predicted"] for p in points] == pytest.approx(list(trained.test_predicted), abs=1e-4)
    mae = sum(abs(p["predicted"] - p["actual"]) for p in points) / len(points)
    assert mae == pytest.approx(models[kept.version]["metrics"]["model"]["mae"], abs=1e-3)
    assert models[kept.version]["problem"] is None

    assert models[legacy.version]["heldOutPredictions"] is None
    assert models[altered.version]["heldOutPredictions"] is None
    assert "holdout.json" in models[altered.version]["problem"]


# -- the command line --------------------------------------------------------------------


def test_the_command_line_refuses_bad_versions(trained: TrainedModel, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models_store")
    good, bad = store.save(trained), store.save(trained)
    store.activate(good.version)
    corrupt(bad)
    env = {**os.environ, "BOOKQL_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bookql", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    refused = run("models", "activate", bad.version)
    assert refused.returncode == 1
    assert "model.ubj" in refused.stderr and "Traceback" not in refused.stderr
    assert store.active_version() == good.version
    for name in (LONG_NAME, "../elsewhere"):
        invalid = run("models", "activate", name)
        assert invalid.returncode == 1
        assert "invalid model version" in invalid.stderr and "Traceback" not in invalid.stderr
    listed = run("models", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[1]: line for line in listed.stdout.splitlines()}
    assert lines[good.version].startswith("*")
    assert lines[bad.version].startswith("!") and "model.ubj" in lines[bad.version]


# -- several processes -------------------------------------------------------------------


@pytest.fixture
def two_workers(
    postgres: PostgresDatabases, redis_url: str, tmp_path: Path, trained: TrainedModel
) -> Iterator[tuple[str, Path, StoredModel]]:
    env = server_env(
        tmp_path,
        database_url=postgres.create(),
        redis_url=redis_url,
        run_jobs_in_server="false",
        log_format="json",
    )
    bookql(env, "db", "upgrade")
    bookql(env, "seed")
    bookql(env, "users", "create", "reader", stdin="two workers password\n")
    store = ModelStore(tmp_path / "models_store")
    good = store.save(trained)
    store.activate(good.version)
    log = tmp_path / "server.log"
    with running_server(env, log, workers=2) as server:
        yield server.url, log, good


def _logged(log: Path, event: str) -> list[int]:
    """The process id of every line that logged ``event`` (one JSON object a line)."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if str(record.get("event", "")).startswith(event):
                found.append(int(record["pid"]))
    return found


def _until_every_worker_logged(url: str, log: Path, event: str) -> None:
    """Fresh connections (each may land on either worker) until both logged ``event``."""
    for _ in range(600):
        if len(set(_logged(log, event))) == 2:
            return
        httpx.get(f"{url}/readyz", timeout=30)
    raise AssertionError(f"not every worker logged {event!r}: {log.read_text()[-3000:]}")


def test_two_workers_keep_the_last_good_model(two_workers: tuple[str, Path, StoredModel]) -> None:
    url, log, good = two_workers
    _until_every_worker_logged(url, log, "serving model")
    (good.path.parent / "ACTIVE").write_text("garbage")
    _until_every_worker_logged(url, log, "model alias problem")
    with httpx.Client(base_url=url, timeout=30) as login_client:
        token = login_client.post(
            "/graphql",
            json={
                "query": 'mutation { login(input: {username: "reader",'
                ' password: "two workers password"}) { accessToken } }'
            },
        ).json()["data"]["login"]["accessToken"]
    for _ in range(20):  # a new connection each: both workers answer
        with httpx.Client(base_url=url, timeout=30) as fresh:
            body: dict[str, Any] = fresh.post(
                "/graphql", json={"query": PREDICT}, headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert body["data"]["predictPrice"]["modelVersion"] == good.version, body
            ready = fresh.get("/readyz")
            assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    problems = _logged(log, "model alias problem")
    assert len(problems) == len(set(problems)) == 2  # once per worker, not per request
