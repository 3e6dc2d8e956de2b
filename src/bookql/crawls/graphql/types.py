"""GraphQL types of the crawls domain (``CrawlRunTable`` rows -> ``CrawlRun``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from bookql.crawls.tables import CrawlStatus as CrawlStatusValue
from bookql.graphql.relay import Node, PageInfo, to_global_id

CrawlStatus = strawberry.enum(CrawlStatusValue, name="CrawlStatus")


@strawberry.type(description="One crawl of the site: its progress and what it changed.")
class CrawlRun(Node):
    status: CrawlStatus  # type: ignore[valid-type]
    start_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    complete: bool = strawberry.field(
        description="Saw the whole site (then books it did not see were marked removed)."
    )
    pages: int
    items: int = strawberry.field(description="Books stored.")
    new_books: int
    updated_books: int
    unchanged_books: int
    removed_books: int
    dropped: int = strawberry.field(description="Pages that could not become a book.")
    errors: int
    message: str | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> CrawlRun:
        return cls(
            id=strawberry.ID(to_global_id("CrawlRun", row.id)),
            status=CrawlStatusValue(row.status),
            start_url=row.start_url,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            complete=row.complete,
            pages=row.pages,
            items=row.items,
            new_books=row.new_books,
            updated_books=row.updated_books,
            unchanged_books=row.unchanged_books,
            removed_books=row.removed_books,
            dropped=row.dropped,
            errors=row.errors,
            message=row.message,
        )


@strawberry.type
class CrawlRunEdge:
    cursor: str
    node: CrawlRun


@strawberry.type
class CrawlRunConnection:
    edges: list[CrawlRunEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class StartCrawlInput:
    start_url: str | None = strawberry.field(
        default=None, description="Default: the site; its host must be allowed."
    )
