"""The web console at ``/console``: a page of ES modules over the public GraphQL API.

Its own code (HTML, ES modules, CSS and the GraphQL operations it sends) is committed in
``console-ui/``; its libraries come from the npm registry at install time into
``static/console`` (``scripts/fetch-console.sh``), never from a CDN: without them the page
says how to install them. Every page carries a strict Content-Security-Policy (scripts,
styles and connections from this origin only, no inline code), and the console's operations
are trusted documents the server always knows, so it works with
``BOOKQL_TRUSTED_DOCUMENTS_ONLY``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import anyio
from graphql import OperationDefinitionNode, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

UI_DIR = Path(__file__).parent / "console-ui"
LIB_DIR = Path(__file__).parent / "static" / "console"
UI_URL = "/console/ui"
LIB_URL = "/console/lib"
DOCUMENTS_URL = "/console/documents.json"
LIBRARIES = ("uPlot.esm.js", "uPlot.min.css")
OPERATIONS_FILE = UI_DIR / "operations.graphql"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

MISSING = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>bookql console · libraries missing</title>
</head>
<body>
  <main>
    <h1>The console's libraries are not installed</h1>
    <p>The bookql console loads its JavaScript and CSS libraries from this server only, never
    from a CDN, and they were not installed with it. From the project's checkout run</p>
    <pre>make install</pre>
    <p>or, to fetch only them (needs npm),</p>
    <pre>sh scripts/fetch-console.sh</pre>
    <p>then reload this page (no restart needed). The GraphQL API at
    <a href="/graphql">/graphql</a> works without them.</p>
  </main>
</body>
</html>
"""


class Revalidated(StaticFiles):
    """Static files a browser checks again before each use (a cheap 304 by ``ETag``), so
    that an upgrade never runs yesterday's module beside today's."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(HEADERS)  # index.html is reachable here too: same policy
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """404, not a server error, while the folder is absent (libraries not installed)."""
        if not await anyio.to_thread.run_sync(Path(self.directory or "").is_dir):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def libraries_installed() -> bool:
    return all((LIB_DIR / name).is_file() for name in LIBRARIES)


@cache
def operations() -> dict[str, str]:
    """The console's operations by name, each its exact text in ``operations.graphql``."""
    source = OPERATIONS_FILE.read_text()
    found: dict[str, str] = {}
    for definition in parse(source).definitions:
        if not isinstance(definition, OperationDefinitionNode) or definition.name is None:
            raise ValueError(f"{OPERATIONS_FILE.name}: only named operations, no fragments")
        assert definition.loc is not None
        found[definition.name.value] = source[definition.loc.start : definition.loc.end]
    return found


def manifest() -> dict[str, str]:
    """The console's trusted documents, as GraphQL Code Generator writes them:
    ``{sha256: text}``."""
    return {sha256_of(text): text for text in operations().values()}


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def routes() -> list[BaseRoute]:
    """``/console``, its code, its libraries and its operations' hashes; the files are read
    here, at start, never on the event loop."""
    page = (UI_DIR / "index.html").read_text()
    hashes = {name: sha256_of(text) for name, text in operations().items()}

    async def console_page(request: Request) -> Response:
        # Looked for on every request (off the loop), so installing them needs no restart.
        if not await anyio.to_thread.run_sync(libraries_installed):
            return HTMLResponse(MISSING, status_code=503, headers=HEADERS)
        return HTMLResponse(page, headers=HEADERS)

    async def console_documents(request: Request) -> Response:
        return JSONResponse(hashes, headers={"Cache-Control": "no-cache"})

    return [
        Route("/console", console_page, methods=["GET"]),
        Route(DOCUMENTS_URL, console_documents, methods=["GET"]),
        Mount(UI_URL, app=Revalidated(directory=UI_DIR)),
        Mount(LIB_URL, app=Revalidated(directory=LIB_DIR, check_dir=False)),
    ]
