"""The crawls' root fields: ``crawlRuns``, ``crawlRun``, ``startCrawl``, ``crawlProgress``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from sqlalchemy import Row, select
from strawberry.permission import BasePermission

from bookql.accounts.graphql.permissions import IsAdmin
from bookql.core.errors import NotFound
from bookql.crawls.graphql.context import Info
from bookql.crawls.graphql.types import CrawlRun, CrawlRunConnection, CrawlRunEdge, StartCrawlInput
from bookql.crawls.tables import ACTIVE, crawl_runs
from bookql.db.keyset import Ordering, SortColumn
from bookql.graphql.relay import (
    CursorArgument,
    PageArgument,
    PageRequest,
    count_rows,
    expect_global_id,
    load_page,
)
from bookql.graphql.slots import per_user_stream

ADMIN: list[type[BasePermission]] = [IsAdmin]
NEWEST_FIRST = Ordering("crawl-runs", (SortColumn(crawl_runs.c.id, descending=True),))
PROGRESS_POLL_SECONDS = 0.5


async def _run(info: Info, run_id: int) -> Row[Any] | None:
    async with info.context.engine.connect() as conn:
        result = await conn.execute(select(crawl_runs).where(crawl_runs.c.id == run_id))
        return result.one_or_none()


def _run_key(global_id: str) -> int:
    key = expect_global_id(global_id, "CrawlRun")
    return int(key) if key.isdigit() else -1


async def load_crawl_run_node(info: Info, key: str) -> CrawlRun | None:
    await info.context.auth.require_admin()
    row = await _run(info, int(key)) if key.isdigit() else None
    return CrawlRun.from_row(row) if row is not None else None


@strawberry.type
class CrawlsQuery:
    @strawberry.field(description="Crawl runs, newest first.", permission_classes=ADMIN)
    async def crawl_runs(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
    ) -> CrawlRunConnection:
        page = PageRequest.from_args(first, after, last, before)
        engine = info.context.engine
        result = await load_page(
            engine, page, columns=tuple(crawl_runs.c), where=[], ordering=NEWEST_FIRST
        )
        total = await count_rows(engine, crawl_runs)
        return CrawlRunConnection(
            edges=[
                CrawlRunEdge(cursor=cursor, node=CrawlRun.from_row(row))
                for row, cursor in zip(result.rows, result.cursors, strict=True)
            ],
            page_info=result.page_info,
            total_count=total,
        )

    @strawberry.field(permission_classes=ADMIN)
    async def crawl_run(self, info: Info, id: strawberry.ID) -> CrawlRun | None:
        row = await _run(info, _run_key(id))
        return CrawlRun.from_row(row) if row is not None else None


@strawberry.type
class CrawlsMutation:
    @strawberry.mutation(
        description="Start a crawl (one at a time); returns at once with the QUEUED run.",
        permission_classes=ADMIN,
    )
    async def start_crawl(self, info: Info, input: StartCrawlInput) -> CrawlRun:
        viewer = await info.context.auth.require_admin()
        row = await info.context.crawls.start(input.start_url, viewer.user_id)
        return CrawlRun.from_row(row)


@strawberry.type
class CrawlsSubscription:
    @strawberry.subscription(
        description="The run each time it changes, until it finishes.", permission_classes=ADMIN
    )
    @per_user_stream
    async def crawl_progress(
        self, info: Info, run_id: strawberry.ID
    ) -> AsyncGenerator[CrawlRun, None]:
        key = _run_key(run_id)
        last: tuple[Any, ...] | None = None
        while True:
            row = await _run(info, key)
            if row is None:
                raise NotFound("no such crawl run", field="runId")
            if tuple(row) != last:
                last = tuple(row)
                yield CrawlRun.from_row(row)
            if row.status not in ACTIVE:
                return
            await asyncio.sleep(PROGRESS_POLL_SECONDS)
