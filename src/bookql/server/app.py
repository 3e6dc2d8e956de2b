"""The Starlette application: GraphQL at ``/graphql``, health probes beside it."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from functools import partial

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from bookql.accounts.live import LiveSessions
from bookql.accounts.notices import notice_bus
from bookql.accounts.setup import build_accounts
from bookql.core.config import Settings, get_settings
from bookql.crawls.launcher import CrawlLauncher
from bookql.db.blocking import BlockingDatabase
from bookql.db.engine import create_async_db_engine
from bookql.graphql.slots import Kind, UserSlots
from bookql.jobs.queue import count_jobs
from bookql.ml.service import PriceService
from bookql.server import console
from bookql.server.cors import CrossOrigin
from bookql.server.export import TrainingDataExport
from bookql.server.graphiql import STATIC_DIR, STATIC_URL
from bookql.server.health import healthz, readyz
from bookql.server.job_kinds import build_worker
from bookql.server.metrics import JobsCollector, MetricsEndpoint, process_exited, watch_pool
from bookql.server.middleware import RequestIdMiddleware, RequestLog, SizeLimits
from bookql.server.persisted import PersistedQueries
from bookql.server.schema import build_schema
from bookql.server.sockets import SocketLimits, SocketLimitSettings
from bookql.server.view import GraphQLApp

ROUTES = frozenset(
    {"/graphql", "/export/training-data", "/healthz", "/readyz", "/metrics", "/console"}
)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.check_production()
    engine = create_async_db_engine(settings)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    blocking = BlockingDatabase.for_settings(settings)
    notices = notice_bus(engine, redis)
    live = LiveSessions(blocking, settings.session_poll_seconds)
    accounts = build_accounts(settings, engine, redis, blocking, notices)
    crawls = CrawlLauncher(settings, engine)
    ml = PriceService(settings, engine, blocking)
    user_slots = UserSlots(
        redis,
        {Kind.STREAM: settings.max_streams_per_user, Kind.EXPORT: settings.max_exports_per_user},
        settings.stream_slot_lease_seconds,
    )
    schema = build_schema(settings)
    persisted = PersistedQueries.of(
        settings, schema._schema, redis, builtin=console.operations().values()
    )
    graphql = GraphQLApp(schema, settings, engine, accounts, crawls, ml, live, persisted)
    watch_pool(engine.sync_engine, "async")
    watch_pool(blocking.engine, "blocking")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What is loaded at startup lives as long as the process: keep it out of every
        # garbage collection (streams allocate fast enough to trigger many).
        gc.freeze()
        # On the embedded default the server runs queued jobs itself (BOOKQL_RUN_JOBS_IN_SERVER).
        jobs = (
            build_worker(settings, engine, model_activated=ml.active.forget)
            if settings.jobs_in_server
            else None
        )
        # Sockets and streams follow their users' changes: notices from every process.
        sessions = asyncio.create_task(live.run(notices))
        try:
            async with jobs.in_background() if jobs is not None else nullcontext():
                yield
        finally:
            sessions.cancel()
            await asyncio.gather(sessions, return_exceptions=True)
        graphql.cache.close()
        accounts.close()
        blocking.close()
        await engine.dispose()
        process_exited(os.getpid())
        if redis is not None:
            await redis.aclose()

    app = Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route(
                "/export/training-data",
                TrainingDataExport(accounts, ml.training_data, user_slots, live),
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route(
                "/metrics",
                MetricsEndpoint(JobsCollector(partial(count_jobs, blocking.engine))),
                methods=["GET"],
            ),
            Mount(STATIC_URL, app=StaticFiles(directory=STATIC_DIR, check_dir=False)),
            *console.routes(),
        ],
        middleware=[
            # Outermost: every answer below, refusals included, carries the CORS headers.
            Middleware(CrossOrigin, settings=settings),
            Middleware(RequestIdMiddleware),
            Middleware(RequestLog, routes=ROUTES, log_requests=settings.access_log),
            Middleware(
                SizeLimits,
                max_body_bytes=settings.max_request_bytes,
                max_header_bytes=settings.max_header_bytes,
            ),
            Middleware(
                SocketLimits,
                limits=SocketLimitSettings(
                    max_connections=settings.ws_max_connections,
                    max_per_address=settings.ws_max_connections_per_address,
                    max_operations=settings.ws_max_subscriptions,
                    idle_seconds=settings.ws_idle_timeout_seconds,
                    max_json_depth=settings.max_json_depth,
                ),
            ),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.redis = redis
    app.state.user_slots = user_slots
    app.state.ml = ml
    return app
