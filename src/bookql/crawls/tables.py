"""The crawl-run table: one row per crawl, its progress and what it changed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bookql.db.base import table_of
from bookql.db.types import UTCDateTime


class CrawlStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"  # books stored, but the crawl did not see the whole site
    FAILED = "FAILED"


ACTIVE = (CrawlStatus.QUEUED.value, CrawlStatus.RUNNING.value)


class CrawlRunTable(SQLModel, table=True):
    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_created", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # 1 while queued or running, NULL after: a unique column, so one crawl at a time.
    active_slot: int | None = Field(default=None, sa_column=Column(Integer, unique=True))
    start_url: str = Field(sa_column=Column(Text, nullable=False))
    requested_by: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="SET NULL")),
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    host: str | None = Field(default=None, sa_column=Column(String(255)))
    pid: int | None = Field(default=None, sa_column=Column(Integer))
    complete: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    pages: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    items: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    new_books: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    updated_books: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    unchanged_books: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    removed_books: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    dropped: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    errors: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    message: str | None = Field(default=None, sa_column=Column(Text))
    # The queued job that runs this crawl; NULL for crawls started by hand (`scrapy crawl`).
    job_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("jobs.id", ondelete="SET NULL"))
    )


crawl_runs = table_of(CrawlRunTable)
