"""GraphiQL, served from the package when its assets were installed, else from a CDN.

``scripts/fetch-graphiql.sh`` (run by the install script and the Docker build) takes the
assets from the npm registry into ``static/graphiql``; they are never committed to git.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
STATIC_URL = "/static/graphiql"


@dataclass(frozen=True)
class Asset:
    file: str
    cdn: str


ASSETS = {
    "css": Asset("graphiql.min.css", "https://unpkg.com/graphiql@3.8.3/graphiql.min.css"),
    "react": Asset(
        "react.production.min.js", "https://unpkg.com/react@18.3.1/umd/react.production.min.js"
    ),
    "react_dom": Asset(
        "react-dom.production.min.js",
        "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
    ),
    "graphiql": Asset("graphiql.min.js", "https://unpkg.com/graphiql@3.8.3/graphiql.min.js"),
}

DEFAULT_QUERY = """# Welcome to bookql. Press the run button (or Ctrl-Enter).
{
  books(first: 5, orderBy: [{field: RATING, direction: DESC}]) {
    totalCount
    edges { node { title price rating category { name } } }
  }
}
"""


def assets_installed() -> bool:
    return all((STATIC_DIR / asset.file).is_file() for asset in ASSETS.values())


def _url(key: str, local: bool) -> str:
    asset = ASSETS[key]
    return f"{STATIC_URL}/{asset.file}" if local else asset.cdn


def graphiql_page(endpoint: str = "/graphql") -> str:
    local = assets_installed()
    urls = {key: html.escape(_url(key, local)) for key in ASSETS}
    query = json.dumps(DEFAULT_QUERY).replace("</", "<\\/")  # a JS string, safe in <script>
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>bookql · GraphiQL</title>
  <link rel="stylesheet" href="{urls["css"]}">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{urls["react"]}"></script>
  <script src="{urls["react_dom"]}"></script>
  <script src="{urls["graphiql"]}"></script>
  <script>
    const url = new URL("{html.escape(endpoint)}", window.location.href);
    const subscriptionUrl = url.href.replace(/^http/, "ws");
    const fetcher = GraphiQL.createFetcher({{ url: url.href, subscriptionUrl }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {query},
        shouldPersistHeaders: true,
      }})
    );
  </script>
</body>
</html>
"""
