"""HTTP caching of public GET queries: tags, revalidation without executing, no-store for the
rest, and a catalogue data version that every write path moves without serialising writers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bookql.catalog.records import BookRecord
from bookql.catalog.seed import seed_catalog
from bookql.catalog.store import mark_unseen_removed, upsert_books
from bookql.db.engine import async_write_transaction, create_async_db_engine, create_sync_engine
from bookql.db.types import utcnow
from bookql.graphql.compiled.executor import CompiledQueries
from bookql.server.view import GraphQLApp
from tests.catalog.test_catalog_admin import global_id
from tests.catalog.test_importing import jsonl, run_import
from tests.conftest import ScratchDatabase, app_client
from tests.support.admin_session import AdminClient, admin_session, seed

BOOKS = "query Books { books(first: 3) { edges { node { upc title lastSeenAt } } } }"
BOOK = "query Book($upc: String!) { book(upc: $upc) { upc title price } }"
UPC = "a897fe39b1053632"
GRAPHQL_RESPONSE = "application/graphql-response+json"


async def get(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params = {"query": query}
    if variables is not None:
        params["variables"] = orjson.dumps(variables).decode()
    if operation_name is not None:
        params["operationName"] = operation_name
    return await http.get("/graphql", params=params, headers=headers)


def assert_tagged(response: httpx.Response, max_age: int = 60) -> str:
    assert response.status_code == 200, response.text
    assert "errors" not in response.json()
    assert response.headers["cache-control"] == f"public, max-age={max_age}"
    vary = [token.strip().lower() for token in response.headers["vary"].split(",")]
    assert sorted(vary) == ["accept", "authorization", "origin"]
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    return etag


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every execution, by either executor."""
    ran: list[str] = []
    standard, compiled = GraphQLApp.run, CompiledQueries.execute

    async def run(self: GraphQLApp, *args: Any, **kwargs: Any) -> Any:
        ran.append("standard")
        return await standard(self, *args, **kwargs)

    async def execute(self: CompiledQueries, *args: Any, **kwargs: Any) -> Any:
        ran.append("compiled")
        return await compiled(self, *args, **kwargs)

    monkeypatch.setattr(GraphQLApp, "run", run)
    monkeypatch.setattr(CompiledQueries, "execute", execute)
    return ran


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "standard"])
async def test_revalidation_answers_304_without_executing(
    seeded_db: ScratchDatabase, executions: list[str], compiled: bool
) -> None:
    async with app_client(seeded_db.settings(compiled_queries=compiled)) as http:
        first = await get(http, BOOKS, headers={"Origin": "http://localhost:5173"})
        etag = assert_tagged(first)
        assert first.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert executions == ["compiled" if compiled else "standard"]
        again = await get(http, BOOKS)
        assert assert_tagged(again) == etag and again.content == first.content
        executions.clear()

        for if_none_match in (etag, f"W/{etag}", f'"other", {etag}'):
            revalidated = await get(http, BOOKS, headers={"If-None-Match": if_none_match})
            assert revalidated.status_code == 304
            assert revalidated.content == b""
            assert revalidated.headers["etag"] == etag
            assert_tagged_headers = revalidated.headers["cache-control"]
            assert assert_tagged_headers == "public, max-age=60"
        assert executions == []

        for other in ('"something else"', "*"):
            executions.clear()
            stale = await get(http, BOOKS, headers={"If-None-Match": other})
            assert stale.status_code == 200 and assert_tagged(stale) == etag
            assert executions


async def test_servers_with_other_settings_tag_the_same_answer_alike(
    seeded_db: ScratchDatabase, tmp_path: Path
) -> None:
    """A fleet behind one CDN: the executor, limits and paths differ, the tag must not."""
    tags = []
    for overrides in (
        {},
        {"compiled_queries": False, "max_query_cost": 5000, "data_dir": tmp_path},
    ):
        async with app_client(seeded_db.settings(**overrides)) as http:
            tags.append(assert_tagged(await get(http, BOOKS)))
    assert tags[0] == tags[1]


async def test_the_tag_covers_document_variables_operation_name_and_media_type(
    seeded_db: ScratchDatabase,
) -> None:
    async with app_client(seeded_db.settings()) as http:
        base = assert_tagged(await get(http, BOOK, {"upc": UPC}))
        assert assert_tagged(await get(http, BOOK, {"upc": UPC})) == base
        other_document = BOOK.replace("price", "price rating")
        variants = [
            await get(http, other_document, {"upc": UPC}),
            await get(http, BOOK, {"upc": "unknown-upc"}),
            await get(http, BOOK, {"upc": UPC}, "Book"),
            await get(http, BOOK, {"upc": UPC}, headers={"Accept": GRAPHQL_RESPONSE}),
        ]
        tags = [assert_tagged(response) for response in variants]
        assert len({base, *tags}) == 5
        assert variants[3].headers["content-type"].startswith(GRAPHQL_RESPONSE)
        # The variables' spelling does not matter, only their values.
        both = {"a": 1, "upc": UPC}
        spaced = await http.get(
            "/graphql",
            params={"query": BOOK, "variables": f'{{ "upc": "{UPC}", "a": 1 }}'},
        )
        assert assert_tagged(spaced) == assert_tagged(await get(http, BOOK, both))


async def test_max_age_is_a_setting_and_caching_can_be_off(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(http_cache_max_age_seconds=0)) as http:
        assert_tagged(await get(http, BOOKS), max_age=0)
    async with app_client(seeded_db.settings(http_cache=False)) as http:
        response = await get(http, BOOKS)
        assert response.status_code == 200
        assert_no_store(response)


PRIVATE = [
    "{ me { id } }",
    "{ users(first: 1) { edges { node { id } } } }",
    "{ crawlRuns(first: 1) { edges { node { id } } } }",
    "{ models { version } }",
    "{ activeModel { version } }",
    "{ __schema { queryType { name } } }",
    "{ books(first: 1) { edges { node { title } } } me { id } }",
    f'{{ node(id: "{global_id("User", 1)}") {{ id }} }}',
    "{ books(first: 1) { edges { node { nonsense } } } }",  # invalid: an error
    "{ books(first: 1000) { edges { node { title } } } }",  # refused: an error
    '{ book(id: "not an id") { title } }',  # an error at execution
]


@pytest.mark.parametrize("query", PRIVATE)
async def test_private_documents_and_errors_are_no_store(
    seeded_db: ScratchDatabase, query: str
) -> None:
    async with app_client(seeded_db.settings()) as http:
        response = await get(http, query)
        assert_no_store(response)
        tag = assert_tagged(await get(http, BOOKS))
        again = await get(http, query, headers={"If-None-Match": f"*, {tag}"})
        assert again.status_code != 304
        assert_no_store(again)


async def test_node_is_public_for_books_and_categories_only(seeded_db: ScratchDatabase) -> None:
    query = "query($id: ID!) { node(id: $id) { id ... on Book { title } } }"
    async with app_client(seeded_db.settings()) as http:
        book = await get(http, f'{{ book(upc: "{UPC}") {{ id category {{ id }} }} }}')
        found = book.json()["data"]["book"]
        for node_id in (found["id"], found["category"]["id"]):
            assert_tagged(await get(http, query, {"id": node_id}))
            assert_tagged(await get(http, f'{{ node(id: "{node_id}") {{ id }} }}'))
        assert_no_store(await get(http, query, {"id": global_id("User", 1)}))
        assert_no_store(await get(http, query, {"id": global_id("CrawlRun", 1)}))


async def test_post_mutations_streams_and_refusals_are_no_store(
    seeded_db: ScratchDatabase,
) -> None:
    async with app_client(seeded_db.settings()) as http:
        posted = await http.post("/graphql", json={"query": BOOKS})
        assert posted.status_code == 200
        assert_no_store(posted)
        mutation = await get(
            http, 'mutation { login(input: {username: "a", password: "b"}) { accessToken } }'
        )
        assert mutation.status_code == 405
        assert_no_store(mutation)
        unparsable = await get(http, "{ books(")
        assert_no_store(unparsable)
        too_large = await http.post(
            "/graphql", content=b"{}", headers={"content-length": str(10**9)}
        )
        assert too_large.status_code == 413
        assert_no_store(too_large)


async def test_a_private_catalogue_is_never_cached(seeded_db: ScratchDatabase) -> None:
    async with app_client(seeded_db.settings(public_catalogue=False)) as http:
        response = await get(http, BOOKS)
        assert_no_store(response)


@pytest.fixture
async def admin(empty_db: ScratchDatabase) -> AsyncIterator[AdminClient]:
    async with admin_session(empty_db) as client:
        yield client


async def test_authenticated_answers_are_no_store(admin: AdminClient) -> None:
    public = assert_tagged(await get(admin.http, BOOKS))
    for token in (admin.user_token, admin.admin_token):
        response = await get(
            admin.http, BOOKS, headers={"Authorization": f"Bearer {token}", "If-None-Match": public}
        )
        assert response.status_code == 200 and "errors" not in response.json()
        assert_no_store(response)
    bad = await get(admin.http, BOOKS, headers={"Authorization": "Bearer nonsense"})
    assert_no_store(bad)


async def data_version(database: ScratchDatabase) -> int:
    engine = create_sync_engine(database.settings())
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT sum(bumps) FROM catalog_data_version")).scalar_one()
            )
    finally:
        engine.dispose()


def record(upc: str, title: str) -> BookRecord:
    return BookRecord(
        upc=upc, title=title, product_type="Books", price_excl_tax_pence=1000,
        price_incl_tax_pence=1000, tax_pence=0, currency="GBP", availability=3, rating=4,
        num_reviews=0, description="Crawled.", category="Poetry",
        image_url="http://example.com/c.jpg", product_url="http://example.com/b",
    )  # fmt: skip


async def test_every_write_path_moves_the_tag(empty_db: ScratchDatabase) -> None:
    engine = create_async_db_engine(empty_db.settings())
    async with admin_session(empty_db, seeded=False) as admin:
        tags = [assert_tagged(await get(admin.http, BOOKS))]

        async def moved() -> None:
            tags.append(assert_tagged(await get(admin.http, BOOKS)))
            assert tags[-1] != tags[-2], len(tags)
            assert (
                await get(admin.http, BOOKS, headers={"If-None-Match": tags[-2]})
            ).status_code == 200
            assert (
                await get(admin.http, BOOKS, headers={"If-None-Match": tags[-1]})
            ).status_code == 304

        await seed_catalog(engine)  # seed
        await moved()
        async with async_write_transaction(engine) as conn:  # a crawl's upsert
            await upsert_books(conn, [record("crawled-0001", "Crawled Book")])
        await moved()
        async with async_write_transaction(engine) as conn:  # a re-crawl: lastSeenAt moves
            await upsert_books(conn, [record("crawled-0001", "Crawled Book")])
        await moved()
        sync_engine = create_sync_engine(empty_db.settings())
        try:  # `bookql import`, new books and then changed ones
            run_import(sync_engine, jsonl([record("imported-0001", "Imported")]))
            await moved()
            run_import(sync_engine, jsonl([record("imported-0001", "Imported again")]))
            await moved()
        finally:
            sync_engine.dispose()
        upc_id = global_id("Book", "crawled-0001")
        await admin.admin(  # an administrator's edit
            'mutation($id: ID!) { updateBook(input: {id: $id, title: "Edited"}) { book { id } } }',
            {"id": upc_id},
        )
        await moved()
        await admin.admin(
            'mutation { createCategory(input: {name: "Cached"}) { category { id } } }'
        )
        await moved()
        await admin.admin(  # a removal by hand
            "mutation($id: ID!) { deleteBook(input: {id: $id}) { book { id } } }", {"id": upc_id}
        )
        await moved()
        async with async_write_transaction(engine) as conn:  # a crawl's removals
            await mark_unseen_removed(conn, utcnow() + timedelta(days=1), utcnow())
        await moved()
        unchanged = assert_tagged(await get(admin.http, BOOKS))
        assert unchanged == tags[-1]  # reads and logins move nothing
        await seed_catalog(engine)  # a seed that finds every book present writes nothing
        assert assert_tagged(await get(admin.http, BOOKS)) == tags[-1]
    await engine.dispose()


async def test_a_transaction_moves_the_version_once_on_postgresql(
    empty_db: ScratchDatabase,
) -> None:
    if empty_db.backend != "postgresql":
        pytest.skip("SQLite bumps once a row; one writer at a time makes that free")
    await seed(empty_db)
    before = await data_version(empty_db)
    engine = create_sync_engine(empty_db.settings())
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE books SET title = title || '!'"))
            conn.execute(text("UPDATE categories SET name = name || '!'"))
        assert await data_version(empty_db) == before + 1
        with engine.begin() as conn:
            conn.execute(text("UPDATE books SET title = title WHERE false"))
        assert await data_version(empty_db) == before + 1  # nothing written, nothing moved
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE price_points"))
        assert await data_version(empty_db) == before + 2
    finally:
        engine.dispose()


async def test_concurrent_writers_do_not_wait_on_the_version(empty_db: ScratchDatabase) -> None:
    """A transaction that wrote and is still open holds no lock on the version: another
    writer of another book commits at once, and both writes count."""
    if empty_db.backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time by design")
    await seed(empty_db)
    before = await data_version(empty_db)
    engine = create_sync_engine(empty_db.settings())
    try:
        with engine.connect() as first, engine.connect() as second:
            first.begin()
            first.execute(text("UPDATE books SET title = 'first' WHERE id = 1"))
            first.execute(
                text(
                    "INSERT INTO price_points (book_id, observed_at,"
                    " price_excl_tax_pence, price_incl_tax_pence, tax_pence,"
                    " availability) VALUES (1, now(), 1, 1, 0, 1)"
                )
            )
            second.begin()
            second.execute(text("SET LOCAL lock_timeout = '300ms'"))
            try:
                second.execute(text("UPDATE books SET title = 'second' WHERE id = 2"))
                second.commit()
            except OperationalError as exc:  # pragma: no cover - the failure being tested
                pytest.fail(f"the second writer waited on the first: {exc}")
            assert await data_version(empty_db) == before + 1
            first.commit()
        assert await data_version(empty_db) == before + 2
    finally:
        engine.dispose()


async def test_parallel_writers_all_commit(empty_db: ScratchDatabase) -> None:
    """Writers at once, each in its own transaction: all commit and each counts once."""
    await seed(empty_db)
    before = await data_version(empty_db)
    engine = create_async_db_engine(empty_db.settings())

    async def write(number: int) -> None:
        async with async_write_transaction(engine) as conn:
            await upsert_books(conn, [record(f"parallel-{number:04}", f"Book {number}")])

    try:
        await asyncio.gather(*(write(n) for n in range(8)))
    finally:
        await engine.dispose()
    grown = await data_version(empty_db) - before
    assert grown == 8 if empty_db.backend == "postgresql" else grown > 8


def open_handles(database: ScratchDatabase) -> int:
    """Connections (PostgreSQL) or open files (SQLite, this process) on the database."""
    if database.backend == "postgresql":
        engine = create_sync_engine(database.settings())
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND pid <> pg_backend_pid()"
                            " AND backend_type = 'client backend'"
                        )
                    ).scalar_one()
                )
        finally:
            engine.dispose()
    path = os.path.realpath(database.url.removeprefix("sqlite:///"))
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).startswith(path))


async def test_shutdown_leaves_no_connection_open(seeded_db: ScratchDatabase) -> None:
    """The data version is read on a connection of its own (SQLite): shutdown closes it."""
    before = open_handles(seeded_db)  # what the fixture may still be closing
    async with app_client(seeded_db.settings()) as http:
        assert_tagged(await get(http, BOOKS))
        assert open_handles(seeded_db) > before
    assert open_handles(seeded_db) <= before
