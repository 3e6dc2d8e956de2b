"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer too).

``/readyz`` is 503 when the database or its migrations fail: nothing works without them.
Redis is optional (limits fall back to each process), and without an active price model
only predictions fail, so either makes the service ``degraded``, still 200: taking every
worker out of a load balancer for them would turn a degradation into an outage. So does a
damaged model store: the process keeps serving its last good model, or fails predictions
alone, and the model check says which version it serves and what the alias names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from bookql.db.migrate import head_revision
from bookql.ml.service import PriceService

CHECK_TIMEOUT_SECONDS = 2.0


@lru_cache(maxsize=1)
def _head() -> str | None:
    return head_revision()


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _check_database(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        try:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except DBAPIError:
            current = None  # never migrated
    head = _head()
    return {
        "database": {"status": "ok", "dialect": engine.dialect.name},
        "migrations": {
            "status": "ok" if current == head else "error",
            "current": current,
            "head": head,
        },
    }


async def _check_model(ml: PriceService) -> dict[str, Any]:
    predictor = await ml.active.get()
    serving = ml.active.serving
    if serving.problem is not None:
        fallback = "serving the last good model" if predictor else "predictions fail"
        return {
            "model": {
                "status": "degraded",
                "reason": f"{serving.problem}: {fallback}",
                "served": serving.served,
                "alias": serving.alias,
            }
        }
    if predictor is None:
        return {"model": {"status": "degraded", "reason": "no active model: predictions fail"}}
    return {"model": {"status": "ok", "version": predictor.version}}


async def _check_redis(client: Redis) -> dict[str, Any]:
    await client.ping()
    return {"redis": {"status": "ok"}}


async def _run_check(name: str, check: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A check's report; failures and time-outs become ``error`` with a reason, never a 500."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check
    except TimeoutError:
        return {name: {"status": "error", "reason": "timed out"}}
    except Exception as exc:
        return {name: {"status": "error", "reason": type(exc).__name__}}


async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = await _run_check("database", _check_database(state.engine))
    model = (await _run_check("model", _check_model(state.ml)))["model"]
    if model["status"] == "error":
        model["status"] = "degraded"  # only predictions depend on the model
    checks["model"] = model
    if state.redis is not None:
        redis = (await _run_check("redis", _check_redis(state.redis)))["redis"]
        if redis["status"] != "ok":
            redis["status"] = "degraded"  # limits fall back to each process
        checks["redis"] = redis
    statuses = {check["status"] for check in checks.values()}
    if "error" in statuses:
        status = "unavailable"
    else:
        status = "degraded" if "degraded" in statuses else "ready"
    return JSONResponse(
        {"status": status, "checks": checks}, status_code=503 if status == "unavailable" else 200
    )
