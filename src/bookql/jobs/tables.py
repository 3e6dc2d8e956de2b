"""The jobs table: one row per queued piece of work, its claim, its attempts and its progress.

A claim is a lease: ``claimed_by`` names the worker and ``lease_expires_at`` says until when
it holds the job; the worker's heartbeat moves it forward. A lease that lapses means the
worker is gone, and any worker then puts the job back in the queue (or fails it for good).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from bookql.db.base import table_of
from bookql.db.types import UTCDateTime


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class JobTable(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "run_after", "id"),
        Index("ix_jobs_lease", "status", "lease_expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    max_attempts: int = Field(sa_column=Column(Integer, nullable=False))
    # Not claimed before this moment: a retry waits out its back-off.
    run_after: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(255)))
    lease_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    heartbeat_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    progress: float | None = Field(default=None, sa_column=Column(Float))
    progress_message: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


jobs = table_of(JobTable)
