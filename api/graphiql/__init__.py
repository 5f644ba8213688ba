"""GraphiQL served entirely by the app: the page and its pinned assets (React, ReactDOM,
GraphiQL and its explorer plugin, from the npm registry; see assets/README.md), so the IDE
works without internet. Development and test only: production serves no IDE."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "assets"
PREFIX = "/static/graphiql"

_HEAD = ("graphiql.min.css", "plugin-explorer.css", "react.production.min.js",
         "react-dom.production.min.js")  # fmt: skip
_BODY = ("graphiql.min.js", "plugin-explorer.umd.js")


def _tag(name: str, manifest: dict[str, dict[str, str]]) -> str:
    entry = manifest[name]
    # The version in the URL: a new pin is a new URL, so browsers never mix cached files.
    url = f"{PREFIX}/{name}?v={entry['version']}"
    if name.endswith(".css"):
        return f'    <link rel="stylesheet" href="{url}" integrity="{entry["integrity"]}" />'
    return f'    <script src="{url}" integrity="{entry["integrity"]}"></script>'


@cache
def page() -> str:
    """The GraphiQL page, referring only to this app's URLs."""
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    html = (Path(__file__).parent / "page.html").read_text()
    head = "\n".join(_tag(name, manifest) for name in _HEAD)
    body = "\n".join(_tag(name, manifest) for name in _BODY)
    return html.replace("    <!-- assets:head -->", head).replace("    <!-- assets:body -->", body)


def static_files() -> StaticFiles:
    return StaticFiles(directory=ASSETS)
