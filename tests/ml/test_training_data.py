"""The bulk training data: the subscription, the file export and the command, on both databases.

Every path must give exactly the feature function's output plus the price, resume from a
cursor without loss or repeat, refuse bad tokens and cursors cleanly, and leave no
connection or transaction behind when a client vanishes mid-stream.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from sqlalchemy import func, select, text, update
from starlette.testclient import TestClient

from bookql.catalog.tables import books, categories, descriptions
from bookql.core.errors import ServiceUnavailable
from bookql.db.engine import create_async_db_engine, create_sync_engine, write_transaction
from bookql.db.types import utcnow
from bookql.ml.dataset import (
    COLUMNS,
    Shape,
    TrainingData,
    cursor_after,
    refresh_features,
)
from bookql.ml.features import book_features, load_training_set
from bookql.ml.tables import book_features as stored_features
from bookql.ml.tables import book_features_pending
from bookql.server.app import create_app
from tests.accounts.test_accounts import PASSWORD, REGISTER, SECRET
from tests.conftest import ScratchDatabase, app_client
from tests.support.admin_session import seed
from tests.support.live import live_server

NAMES = [column.name for column in COLUMNS]
SUBSCRIBE = """subscription($n: Int, $a: String) {
    trainingData(batchSize: $n, after: $a) { columns dtypes jsonl rowCount cursor } }"""


async def expected_rows(database: ScratchDatabase) -> list[list[Any]]:
    """The feature function's output and the price for every listed book, site order."""
    engine = create_async_db_engine(database.settings())
    try:
        frame, names = await load_training_set(engine)
    finally:
        await engine.dispose()
    features = book_features(frame, names)
    table = pd.concat(
        [frame[["upc"]], features.astype({"category": "object"}), frame[["price"]]], axis=1
    )
    return [list(row) for row in table[NAMES].itertuples(index=False)]


def typed(rows: list[list[Any]]) -> pd.DataFrame:
    """Rows as the client would type them, so formats compare value for value."""
    frame = pd.DataFrame(rows, columns=NAMES)
    return frame.astype({c.name: c.type for c in COLUMNS})


def _newcomer() -> dict[str, Any]:
    """Variables registering a user of their own (the seeded database is shared)."""
    return {"u": f"scientist-{uuid.uuid4().hex[:12]}", "p": PASSWORD}


def register(http: TestClient) -> str:
    body = http.post("/graphql", json={"query": REGISTER, "variables": _newcomer()}).json()
    assert "errors" not in body, body
    token: str = body["data"]["register"]["accessToken"]
    return token


async def register_async(http: httpx.AsyncClient) -> str:
    body = (await http.post("/graphql", json={"query": REGISTER, "variables": _newcomer()})).json()
    assert "errors" not in body, body
    token: str = body["data"]["register"]["accessToken"]
    return token


def subscribe(
    http: TestClient, token: str, *, size: int, after: str | None = None, stop_after: int = 0
) -> list[dict[str, Any]]:
    """Batches over graphql-transport-ws; ``stop_after`` hangs up after that many."""
    batches: list[dict[str, Any]] = []
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": {"n": size, "a": after}},
            }
        )
        while True:
            message = ws.receive_json()
            if message["type"] == "complete":
                return batches
            if message["type"] == "error":
                return [{"errors": message["payload"]}]
            assert message["type"] == "next", message
            if "errors" in message["payload"]:
                return [message["payload"]]
            batches.append(message["payload"]["data"]["trainingData"])
            if stop_after and len(batches) == stop_after:
                return batches  # leaving the block closes the socket mid-stream


def rows_of(batches: list[dict[str, Any]]) -> list[list[Any]]:
    return [orjson.loads(line) for batch in batches for line in batch["jsonl"].splitlines()]


async def test_the_subscription_gives_the_features_and_resumes(
    seeded_db: ScratchDatabase,
) -> None:
    expected = await expected_rows(seeded_db)
    with TestClient(create_app(seeded_db.settings(jwt_secret=SECRET))) as http:
        token = register(http)
        whole = subscribe(http, token, size=300)
        assert [b["rowCount"] for b in whole] == [300, 300, 300, 100]
        assert whole[0]["columns"] == NAMES
        assert whole[0]["dtypes"] == [c.type for c in COLUMNS]
        assert rows_of(whole) == expected
        # past the end: one empty batch, which still names the columns
        [tail] = subscribe(http, token, size=300, after=whole[-1]["cursor"])
        assert (tail["rowCount"], tail["jsonl"], tail["columns"]) == (0, "", NAMES)

        # hang up after two batches, then resume from the last cursor seen
        first = subscribe(http, token, size=300, stop_after=2)
        rest = subscribe(http, token, size=300, after=first[-1]["cursor"])
        resumed = rows_of(first) + rows_of(rest)
        assert resumed == expected  # every row once, in order
        assert len({row[0] for row in resumed}) == len(expected)


async def test_the_subscription_refuses_bad_input(seeded_db: ScratchDatabase) -> None:
    with TestClient(create_app(seeded_db.settings(jwt_secret=SECRET))) as http:
        token = register(http)
        for after, size in (("not a cursor", 100), (cursor_after(1).upper(), 100), (None, 0)):
            [failed] = subscribe(http, token, size=size, after=after)
            assert [e["extensions"]["code"] for e in failed["errors"]] == ["BAD_USER_INPUT"]
        stream = http.post(
            "/graphql", json={"query": SUBSCRIBE}, headers={"Accept": "text/event-stream"}
        )
        events = [
            orjson.loads(line.removeprefix("data:"))
            for line in stream.text.splitlines()
            if line.startswith("data:") and line.removeprefix("data:").strip()
        ]
        assert events[0]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_subscription_streams_over_http_multipart(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(jwt_secret=SECRET)) as http:
        token = await register_async(http)
        response = await http.post(
            "/graphql",
            json={"query": SUBSCRIBE, "variables": {"n": 400}},
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": 'multipart/mixed;subscriptionSpec="1.0"',
            },
        )
    assert response.status_code == 200
    parts = [
        orjson.loads(part.split(b"\r\n\r\n", 1)[1])
        for part in response.content.split(b"--graphql")
        if b"\r\n\r\n" in part and b"{" in part
    ]
    batches = [p["payload"]["data"]["trainingData"] for p in parts if "payload" in p]
    assert [b["rowCount"] for b in batches] == [400, 400, 200]
    assert rows_of(batches) == await expected_rows(seeded_db)


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
async def test_the_file_export_equals_the_features(
    seeded_db: ScratchDatabase, file_format: str
) -> None:
    expected = typed(await expected_rows(seeded_db))
    async with app_client(seeded_db.settings(jwt_secret=SECRET)) as http:
        token = await register_async(http)
        response = await http.get(
            f"/export/training-data?format={file_format}&batchSize=333",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    content = io.BytesIO(response.content)
    if file_format == "parquet":
        got = pd.read_parquet(content)
    elif file_format == "csv":
        got = pd.read_csv(content)
    else:
        got = pd.read_json(content, lines=True)
    assert list(got.columns) == NAMES
    pd.testing.assert_frame_equal(
        got.astype({c.name: c.type for c in COLUMNS}), expected, check_categorical=False
    )


async def test_the_file_export_refuses_bad_requests(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(jwt_secret=SECRET)) as http:
        token = await register_async(http)
        signed = {"Authorization": f"Bearer {token}"}
        cases = [
            ("", {}, 401, "UNAUTHENTICATED"),
            ("", {"Authorization": "Bearer forged"}, 401, "UNAUTHENTICATED"),
            ("?format=xml", signed, 400, "BAD_USER_INPUT"),
            ("?after=bm9wZQ", signed, 400, "BAD_USER_INPUT"),
            ("?batchSize=0", signed, 400, "BAD_USER_INPUT"),
            ("?format=csv&batchSize=0", signed, 400, "BAD_USER_INPUT"),
            ("?format=parquet&batchSize=0", signed, 400, "BAD_USER_INPUT"),
            ("?batchSize=lots", signed, 400, "BAD_USER_INPUT"),
        ]
        for query, headers, status, code in cases:
            response = await http.get(f"/export/training-data{query}", headers=headers)
            assert response.status_code == status, query
            assert response.json()["errors"][0]["extensions"]["code"] == code, query
        refused = await http.post("/export/training-data", headers=signed)
        assert refused.status_code == 405
        # past the end is not an error: an empty file (CSV: just its header)
        past = cursor_after(10**9)
        for file_format, content in (("jsonl", b""), ("csv", ",".join(NAMES).encode() + b"\n")):
            empty = await http.get(
                f"/export/training-data?format={file_format}&after={past}", headers=signed
            )
            assert (empty.status_code, empty.content) == (200, content)


QUOTED = 'Renamed "Quoted" \\ Tab\there'
CONTROL = "Odd\x0bName\x01"
MULTILINE = 'Comma, "Quote"\nand a line'


@pytest.mark.slow
async def test_stored_features_follow_every_change(empty_db: ScratchDatabase) -> None:
    await seed(empty_db)
    engine = create_async_db_engine(empty_db.settings())
    data = TrainingData(engine, limit=2)

    async def export(shape: Shape = Shape.ARRAYS, size: int = 1000) -> list[list[Any]]:
        lines = [
            orjson.loads(line)
            async for chunk in data.stream(shape, after=0, batch_size=size)
            for line in chunk.data.splitlines()
        ]
        return [list(line.values()) if isinstance(line, dict) else line for line in lines]

    async def stored() -> int:
        async with engine.connect() as conn:
            counted = await conn.execute(select(func.count()).select_from(stored_features))
            return int(counted.scalar_one())

    try:
        assert await export() == await expected_rows(empty_db)
        assert await stored() == 1000
        sync = create_sync_engine(empty_db.settings())
        with write_transaction(sync) as conn:
            # a crawl rewriting unchanged values invalidates nothing
            conn.execute(update(books).values(title=books.c.title, rating=books.c.rating))
        assert await stored() == 1000
        with write_transaction(sync) as conn:
            described = conn.execute(
                select(descriptions.c.book_id).where(descriptions.c.book_id > 2).limit(2)
            ).scalars()
            third, fourth = list(described)
            conn.execute(
                update(books).where(books.c.id == 1).values(title="Now In A Series (Saga, #7)")
            )
            conn.execute(update(books).where(books.c.id == 2).values(rating=5, availability=0))
            conn.execute(
                update(descriptions)
                .where(descriptions.c.book_id == third)
                .values(description="Short.")
            )
            conn.execute(descriptions.delete().where(descriptions.c.book_id == fourth))
            conn.execute(update(categories).where(categories.c.id == 1).values(name=QUOTED))
            conn.execute(update(categories).where(categories.c.id == 2).values(name=CONTROL))
            conn.execute(update(categories).where(categories.c.id == 3).values(name=MULTILINE))
            conn.execute(update(books).where(books.c.id == 5).values(removed_at=utcnow()))
        sync.dispose()
        assert await stored() == 1000 - 4
        rows = await export()
        assert rows == await expected_rows(empty_db)
        by_upc = {row[0]: dict(zip(NAMES, row, strict=True)) for row in rows}
        assert len(by_upc) == 999
        first = next(iter(by_upc.values()))
        assert (first["in_series"], first["series_number"]) == (1, 7)
        assert {QUOTED, CONTROL, MULTILINE} <= {row[1] for row in rows}
        assert await export(Shape.ARRAYS, 50) == rows  # batches that end anywhere
        assert await export(Shape.OBJECTS, 50) == rows
        as_csv = b"".join(
            [chunk.data async for chunk in data.stream(Shape.CSV, after=0, batch_size=50)]
        )
        parsed = list(csv.reader(io.StringIO(as_csv.decode(), newline="")))
        assert [[*r[:2], *map(float, r[2:])] for r in parsed] == rows
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_only_pending_books_are_computed(empty_db: ScratchDatabase) -> None:
    """New and changed books are pending; removed ones wait; deleted ones are dropped."""
    await seed(empty_db)
    engine = create_async_db_engine(empty_db.settings())
    sync = create_sync_engine(empty_db.settings())

    def pending() -> list[int]:
        with sync.connect() as conn:
            waiting = book_features_pending.c.book_id
            found = conn.execute(select(waiting).order_by(waiting))
            return list(found.scalars())

    try:
        assert len(pending()) == 1000  # a freshly seeded catalogue: every book is new
        assert await refresh_features(engine) == 1000
        assert pending() == []
        assert await refresh_features(engine) == 0
        with write_transaction(sync) as conn:
            template = conn.execute(select(books).where(books.c.id == 1)).one()._asdict()
            del template["id"]
            added = conn.execute(
                books.insert().values({**template, "upc": "pending-new"}).returning(books.c.id)
            ).scalar_one()
            conn.execute(update(books).where(books.c.id == 2).values(title="Changed"))
            conn.execute(update(books).where(books.c.id.in_([3, 4])).values(availability=999))
            conn.execute(update(books).where(books.c.id == 3).values(removed_at=utcnow()))
            conn.execute(books.delete().where(books.c.id == 4))
        assert pending() == [2, 3, 4, added]
        assert await refresh_features(engine) == 2  # book 2 and the new book
        assert pending() == [3]  # computed should it come back
        with write_transaction(sync) as conn:
            conn.execute(update(books).where(books.c.id == 3).values(removed_at=None))
        assert await refresh_features(engine) == 1
        assert pending() == []
    finally:
        sync.dispose()
        await engine.dispose()


async def test_exports_beyond_the_limit_are_refused_until_one_ends(
    seeded_db: ScratchDatabase,
) -> None:
    engine = create_async_db_engine(seeded_db.settings())
    data = TrainingData(engine, limit=1)
    try:
        running = data.stream(Shape.CSV, after=0, batch_size=100)
        await anext(running)
        with pytest.raises(ServiceUnavailable):
            await anext(data.stream(Shape.CSV, after=0, batch_size=100))
        await running.aclose()
        again = data.stream(Shape.CSV, after=0, batch_size=100)
        assert (await anext(again)).rows == 100
        await again.aclose()
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_the_command_writes_the_same_file(seeded_db: ScratchDatabase, tmp_path: Path) -> None:
    target = tmp_path / "training.parquet"
    env = {
        **os.environ,
        "BOOKQL_DATABASE_URL": seeded_db.url,
        "BOOKQL_DATA_DIR": str(seeded_db.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bookql", "export", "training-data", "--format", "parquet",
         "-o", str(target)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 1000 rows" in done.stdout
    expected = typed(asyncio.run(expected_rows(seeded_db)))
    pd.testing.assert_frame_equal(
        pd.read_parquet(target).astype({c.name: c.type for c in COLUMNS}),
        expected,
        check_categorical=False,
    )
    assert not list(tmp_path.glob(".*.partial"))


# -- a client that vanishes mid-stream, against a real server -------------------------------

MANY = 40_000  # enough rows that the stream outgrows the sockets' buffers


def _add_many_books(database: ScratchDatabase) -> None:
    engine = create_sync_engine(database.settings())
    with write_transaction(engine) as conn:
        category = conn.execute(select(categories.c.id).limit(1)).scalar_one()
        template = conn.execute(select(books).where(books.c.id == 1)).one()._asdict()
        rows = [
            {
                **{k: v for k, v in template.items() if k != "id"},
                "upc": f"synthetic-{n:06d}",
                "title": f"Synthetic Book {n} (Made Up, #{n % 9 + 1})",
                "category_id": category,
            }
            for n in range(MANY)
        ]
        conn.execute(books.insert(), rows)
    engine.dispose()


@pytest.fixture
def big_server(empty_db: ScratchDatabase) -> Iterator[tuple[str, str, ScratchDatabase]]:
    asyncio.run(seed(empty_db))
    _add_many_books(empty_db)
    env = {
        **os.environ,
        "BOOKQL_DATABASE_URL": empty_db.url,
        "BOOKQL_DATA_DIR": str(empty_db.data_dir),
        "BOOKQL_JWT_SECRET": SECRET,
        "BOOKQL_MAX_CONCURRENT_EXPORTS": "1",
    }
    with live_server(env) as url:
        made = httpx.post(f"{url}/graphql", json={"query": REGISTER, "variables": _newcomer()})
        body = made.json()
        yield url, body["data"]["register"]["accessToken"], empty_db


def _open_transactions(database: ScratchDatabase) -> list[str]:
    """What the server still holds open on the database: nothing, once a stream is gone."""
    if database.backend == "postgresql":
        engine = create_sync_engine(database.settings())
        try:
            with engine.connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT state || ': ' || left(query, 40) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        " AND state <> 'idle'"
                    )
                )
                return [row[0] for row in found]
        finally:
            engine.dispose()
    # SQLite: a reader holding a snapshot keeps a full checkpoint from resetting the log
    path = database.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        raw.execute("CREATE TABLE IF NOT EXISTS probe (x integer)")
        raw.execute("INSERT INTO probe VALUES (1)")
        busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return ["a reader holds a snapshot"] if busy else []


@pytest.mark.slow
def test_a_client_that_vanishes_mid_stream_leaves_nothing_open(
    big_server: tuple[str, str, ScratchDatabase],
) -> None:
    url, token, database = big_server
    host, port = url.removeprefix("http://").split(":")
    for path in ("/export/training-data?format=jsonl&batchSize=500", "/graphql"):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        client.connect((host, int(port)))
        if path == "/graphql":
            body = orjson.dumps({"query": SUBSCRIBE, "variables": {"n": 500}})
            request = (
                f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        else:
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        client.sendall(request)
        received = client.recv(4096)
        assert b" 200 " in received.split(b"\r\n", 1)[0], received[:200]
        time.sleep(0.5)  # the server is now blocked on a full socket, mid-stream
        # vanish: reset the connection instead of closing it politely
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()

        deadline = time.monotonic() + 15
        while (held := _open_transactions(database)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert held == [], path
        # the export slot was given back: with a limit of one, another export runs at once
        done = httpx.get(
            f"{url}/export/training-data?format=csv",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert done.status_code == 200, done.text[:300]
        assert done.text.count("\n") == 1 + 1000 + MANY
