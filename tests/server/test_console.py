"""The web console's page, its code and its operations, without a browser.

The browser walk through every screen is ``test_console_browser.py``; here: the page and its
headers, the page shown without its libraries, that every operation the console's code sends
is a trusted document valid against the schema, and that they run when the server refuses
every other document.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from graphql import parse, validate

from bookql.server import console
from bookql.server.persisted import TrustedDocuments
from bookql.server.schema import build_schema
from tests.conftest import IN_CI, ScratchDatabase, app_client

TOKENS_SCRIPT = Path(__file__).parent / "console" / "tokens.mjs"

SENT = re.compile(r"""\b(?:call|post|subscribe)\(\s*"(\w+)"|"(Console\w+)\"""")


def sent_operations() -> set[str]:
    """The operation names the console's modules send."""
    names: set[str] = set()
    for module in console.UI_DIR.glob("*.js"):
        for match in SENT.finditer(module.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def test_every_operation_the_console_sends_is_a_valid_trusted_document(
    seeded_db: ScratchDatabase,
) -> None:
    operations = console.operations()
    assert sent_operations() == set(operations), "operations.graphql and the code disagree"
    schema = build_schema(seeded_db.settings())._schema
    for name, text in operations.items():
        assert validate(schema, parse(text)) == [], name
        assert text.lstrip().split(None, 2)[1].startswith(name)
    documents = TrustedDocuments.empty().including(operations.values())
    for digest, text in console.manifest().items():
        assert hashlib.sha256(text.encode()).hexdigest() == digest
        assert documents.find(digest) == text


def test_the_console_code_never_parses_html_nor_reaches_another_origin() -> None:
    for path in console.UI_DIR.iterdir():
        text = path.read_text()
        for forbidden in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ):
            assert forbidden not in text, (path.name, forbidden)
        assert not re.search(r"https?://", text), path.name
        assert "localStorage" not in text or path.name == "api.js", path.name
    index = (console.UI_DIR / "index.html").read_text()
    assert "<script>" not in index and "style=" not in index and "<style" not in index


async def test_page_headers_code_and_operation_ids(seeded_db: ScratchDatabase) -> None:
    if not console.libraries_installed():
        pytest.skip("the console's libraries are not installed (sh scripts/fetch-console.sh)")
    async with app_client(seeded_db.settings()) as http:
        page = await http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == console.CSP
        assert "script-src 'self'" in console.CSP and "'unsafe-inline'" not in console.CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="/console/ui/main.js">' in page.text
        # The page is reachable as a file too: it carries the same policy there.
        for path in ("/console/ui/index.html", "/console/ui/main.js", "/console/lib/uPlot.min.css"):
            served = await http.get(path)
            assert served.status_code == 200
            assert served.headers["content-security-policy"] == console.CSP, path
        for asset in ("/console/ui/main.js", "/console/lib/uPlot.esm.js"):
            script = await http.get(asset)
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")
            assert script.headers["cache-control"] == "no-cache"
            again = await http.get(asset, headers={"If-None-Match": script.headers["etag"]})
            assert again.status_code == 304
        ids = (await http.get("/console/documents.json")).json()
        assert ids == {
            name: hashlib.sha256(text.encode()).hexdigest()
            for name, text in console.operations().items()
        }


async def test_without_its_libraries_the_console_says_how_to_install_them(
    seeded_db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = tmp_path / "console"
    monkeypatch.setattr(console, "LIB_DIR", absent)
    async with app_client(seeded_db.settings()) as http:
        page = await http.get("/console")
        assert (await http.get("/console/lib/uPlot.esm.js")).status_code == 404
        absent.mkdir()  # installed while the server runs: no restart needed
        for name in console.LIBRARIES:
            (absent / name).write_text("/* stand-in */")
        assert (await http.get("/console")).status_code == 200
        assert (await http.get("/console/lib/uPlot.esm.js")).status_code == 200
    assert page.status_code == 503
    assert "make install" in page.text and "sh scripts/fetch-console.sh" in page.text
    assert page.headers["content-security-policy"] == console.CSP
    assert "<script" not in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)


async def post(http: httpx.AsyncClient, body: dict[str, object], token: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json=body, headers=headers)


async def test_the_console_works_where_only_trusted_documents_run(
    seeded_db: ScratchDatabase, tmp_path: Path
) -> None:
    """The server trusts the console's documents besides its manifest: by hash they run,
    anything else is refused."""
    other = "{ categories { name } }"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({hashlib.sha256(other.encode()).hexdigest(): other}))
    settings = seeded_db.settings(trusted_documents=manifest, trusted_documents_only=True)
    ids = {name: hashlib.sha256(t.encode()).hexdigest() for name, t in console.operations().items()}
    async with app_client(settings) as http:
        overview = await post(
            http,
            {"documentId": f"sha256:{ids['ConsoleOverview']}", "operationName": "ConsoleOverview"},
        )
        assert overview.json()["data"]["stats"]["totalBooks"] == 1000
        page = await post(
            http,
            {
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": ids["ConsoleBooks"]}},
                "variables": {"first": 2, "orderBy": [{"field": "PRICE", "direction": "DESC"}]},
            },
        )
        prices = [e["node"]["price"] for e in page.json()["data"]["books"]["edges"]]
        assert prices == sorted(prices, reverse=True) and len(prices) == 2
        by_text = await post(http, {"query": console.operations()["ConsoleCategories"]})
        assert len(by_text.json()["data"]["categories"]) == 50
        assert (await post(http, {"query": other})).json()["data"]["categories"]
        refused = (await post(http, {"query": "{ stats { totalBooks } }"})).json()
        assert refused["errors"][0]["extensions"]["reason"] == "TRUSTED_DOCUMENTS_ONLY"


def test_tokens_are_refreshed_ahead_of_expiry_and_once_when_expired(tmp_path: Path) -> None:
    """The console's token handling in Node against a scripted server (no browser needed)."""
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("CI must not skip: the console's token test needs node")
        pytest.skip("the console's token test needs node")
    module = tmp_path / "api.mjs"  # an ES module wherever it is imported from
    shutil.copyfile(console.UI_DIR / "api.js", module)
    done = subprocess.run(
        [node, str(TOKENS_SCRIPT), str(module)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tokens: ok"
