"""``node(id:)`` is no existence oracle: what a caller may not see answers as a missing object.

The type's own permission still applies first, whatever the key: anonymous callers are
``UNAUTHENTICATED`` on the types that need a session, users are ``FORBIDDEN`` on admin-only
types, both for existing and missing ids alike. Below that, an object the caller may not
see (another user, another user's prediction) is ``null`` exactly as a missing one, at the
same cost in statements. Every node type, both databases, both executors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select

from bookql.accounts.tables import users
from bookql.catalog.tables import books, categories
from bookql.crawls.tables import crawl_runs
from bookql.db.engine import create_sync_engine
from bookql.graphql.relay import to_global_id
from bookql.ml.tables import ModelStatus, model_trainings, predictions
from tests.accounts.test_accounts import register
from tests.conftest import ScratchDatabase
from tests.support.admin_session import AdminClient, admin_session

pytestmark = pytest.mark.slow  # every node type, as three callers, on written data

NODE = """query($id: ID!) { node(id: $id) { __typename id
    ... on Book { upc } ... on Category { slug } ... on User { username }
    ... on CrawlRun { startUrl } ... on ModelVersion { version }
    ... on PricePrediction { modelVersion } } }"""
MISSING_KEY = "987654"


@pytest.fixture(params=["standard", "compiled"])
async def session(
    empty_db: ScratchDatabase, request: pytest.FixtureRequest
) -> AsyncIterator[AdminClient]:
    async with admin_session(
        empty_db, compiled_queries=request.param == "compiled", run_jobs_in_server=False
    ) as client:
        yield client


def _existing(database: ScratchDatabase, other_user: int) -> dict[str, str]:
    """Global ids of one existing object of every node type (another user's where owned)."""
    engine = create_sync_engine(database.settings())
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            upc = conn.execute(select(books.c.upc).limit(1)).scalar_one()
            category = conn.execute(select(categories.c.id).limit(1)).scalar_one()
            run = conn.execute(
                insert(crawl_runs)
                .values(status="SUCCEEDED", start_url="http://127.0.0.1/", created_at=now)
                .returning(crawl_runs.c.id)
            ).scalar_one()
            conn.execute(
                insert(model_trainings).values(
                    version="v-node-test", status=ModelStatus.TRAINING.value, seed=1, created_at=now
                )
            )
            prediction = conn.execute(
                insert(predictions)
                .values(
                    created_at=now,
                    user_id=other_user,
                    model_version="v-node-test",
                    features={},
                    price=10.0,
                    lower=9.0,
                    upper=11.0,
                    latency_ms=1.0,
                )
                .returning(predictions.c.id)
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "Book": to_global_id("Book", upc),
        "Category": to_global_id("Category", category),
        "User": to_global_id("User", other_user),
        "CrawlRun": to_global_id("CrawlRun", run),
        "ModelVersion": to_global_id("ModelVersion", "v-node-test"),
        "PricePrediction": to_global_id("PricePrediction", prediction),
    }


def _missing(type_name: str) -> str:
    key = "0000000000000" if type_name == "Book" else MISSING_KEY
    return to_global_id(type_name, "v-missing" if type_name == "ModelVersion" else key)


class Statements:
    """The data-reading statements sent while it listens (every engine of the process)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(Engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.seen.append(statement)


async def _answer(
    client: AdminClient, global_id: str, token: str | None
) -> tuple[dict[str, Any], int]:
    with Statements() as statements:
        body = await client.execute(NODE, {"id": global_id}, token=token)
    return body, len(statements.seen)


async def test_hidden_objects_answer_as_missing_ones(
    session: AdminClient, empty_db: ScratchDatabase
) -> None:
    await register(session, "other")
    ids = _existing(empty_db, _user_id(empty_db, "other"))
    callers = {"anonymous": None, "reader": session.user_token, "admin": session.admin_token}
    # what each caller sees of an existing object: data, null, or the type's refusal
    expected = {
        "anonymous": {
            "Book": "data",
            "Category": "data",
            "User": "UNAUTHENTICATED",
            "CrawlRun": "UNAUTHENTICATED",
            "ModelVersion": "UNAUTHENTICATED",
            "PricePrediction": "UNAUTHENTICATED",
        },
        "reader": {
            "Book": "data",
            "Category": "data",
            "User": "null",
            "CrawlRun": "FORBIDDEN",
            "ModelVersion": "data",
            "PricePrediction": "null",
        },
        "admin": dict.fromkeys(ids, "data"),
    }
    for caller, token in callers.items():
        for type_name, global_id in ids.items():
            seen, seen_reads = await _answer(session, global_id, token)
            missing, missing_reads = await _answer(session, _missing(type_name), token)
            where = f"{caller} on {type_name}"
            outcome = expected[caller][type_name]
            if outcome == "data":
                assert seen["data"]["node"]["__typename"] == type_name, (where, seen)
                assert missing == {"data": {"node": None}}, (where, missing)
                continue
            # hidden: the very same answer as a missing object, at the same cost
            assert seen == missing, (where, seen, missing)
            assert seen_reads == missing_reads, (where, seen_reads, missing_reads)
            if outcome == "null":
                assert seen == {"data": {"node": None}}, (where, seen)
            else:
                codes = [e["extensions"]["code"] for e in seen["errors"]]
                assert codes == [outcome], (where, seen)


@pytest.mark.parametrize("compiled", [False, True], ids=["standard", "compiled"])
async def test_a_private_catalog_hides_existence_from_anonymous_callers(
    empty_db: ScratchDatabase, compiled: bool
) -> None:
    async with admin_session(
        empty_db, public_catalogue=False, compiled_queries=compiled, run_jobs_in_server=False
    ) as client:
        ids = _existing(empty_db, _user_id(empty_db, "reader"))
        for type_name in ("Book", "Category"):
            seen, _ = await _answer(client, ids[type_name], None)
            missing, _ = await _answer(client, _missing(type_name), None)
            assert seen == missing, (type_name, seen, missing)
            assert [e["extensions"]["code"] for e in seen["errors"]] == ["UNAUTHENTICATED"]
            signed_in, _ = await _answer(client, ids[type_name], client.user_token)
            assert signed_in["data"]["node"]["__typename"] == type_name


def _user_id(database: ScratchDatabase, username: str) -> int:
    engine = create_sync_engine(database.settings())
    try:
        with engine.connect() as conn:
            found = conn.execute(select(users.c.id).where(users.c.username == username))
            return int(found.scalar_one())
    finally:
        engine.dispose()
