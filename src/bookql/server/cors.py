"""Cross-origin access: which browser apps on other origins may call the API.

Starlette's ``CORSMiddleware`` answers preflights and marks the answers of allowed origins;
this layer sits outermost, so refusals made by the middleware below it (413, 431) and by the
views (400, 405, the export's 401) are readable by the app that caused them. No
``Access-Control-Allow-Credentials``: tokens travel in ``Authorization``, never in cookies.

Browsers apply no CORS to WebSocket, but they send ``Origin`` on the upgrade, which
Strawberry checks: the view gives it the same policy (``OriginPolicy.allows``), so that a page
may open a socket exactly where it may call over HTTP. Same-origin pages (GraphiQL, the
console) and clients that send no ``Origin`` (scripts, servers) are always let through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookql.core.config import Settings

# Development's default: a frontend's dev server on any port of this machine.
DEVELOPMENT_ORIGINS = r"https?://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"
ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
EXPOSE_HEADERS = ("X-Request-ID",)


@dataclass(frozen=True)
class OriginPolicy:
    """The exact origins allowed, and in development a pattern for local ones."""

    origins: frozenset[str]
    pattern: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> OriginPolicy:
        if settings.cors_origins is not None:
            return cls(frozenset(settings.cors_origins))
        return cls(frozenset(), None if settings.is_production else DEVELOPMENT_ORIGINS)

    def allows(self, origin: str) -> bool:
        return origin in self.origins or bool(self.pattern and re.fullmatch(self.pattern, origin))


class CrossOrigin:
    """Starlette's CORS for the policy, with ``Vary: Origin`` once on every answer (a cache
    must not hand one origin's answer to another)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.policy = OriginPolicy.of(settings)
        self.cors = CORSMiddleware(
            app,
            allow_origins=sorted(self.policy.origins),
            allow_origin_regex=self.policy.pattern,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            expose_headers=EXPOSE_HEADERS,
            max_age=settings.cors_max_age_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_varying_once(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                tokens = [t.strip() for value in headers.getlist("vary") for t in value.split(",")]
                headers["Vary"] = ", ".join({t.lower(): t for t in tokens if t}.values())
            await send(message)

        await self.cors(scope, receive, send_varying_once)
