"""The TV page for office screens: one HTML page and its hand-written script and style,
all served by this app (no CDN, works offline), in production too.

The page holds no secret: the display key travels in the URL fragment (``/tv#key=…``),
which browsers keep to themselves (never sent to a server, never in a Referer), and the
page's script sends it only as the Authorization of its own GraphQL requests. The headers
keep it that way: a strict Content-Security-Policy (scripts, styles and connections to
this origin only; no inline code; no framing), no referrer, no caching of the page."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS = Path(__file__).parent / "assets"
PREFIX = "/tv/assets"
FILES = ("tv.css", "tv.js")

# Every response of the page and its assets.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def content_security_policy(request: Request) -> str:
    """Connections to this origin only: the GraphQL endpoint over HTTP and websockets
    (named explicitly, for browsers whose 'self' does not cover ws:/wss:)."""
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if host else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


@cache
def _version(name: str) -> str:
    return hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()[:12]


@cache
def page() -> str:
    """The page, referring to its assets by content version (a change is a new URL)."""
    html = (Path(__file__).parent / "page.html").read_text()
    head = f'    <link rel="stylesheet" href="{PREFIX}/tv.css?v={_version("tv.css")}" />'
    body = f'    <script src="{PREFIX}/tv.js?v={_version("tv.js")}"></script>'
    return html.replace("    <!-- assets:head -->", head).replace("    <!-- assets:body -->", body)


async def tv_page(request: Request) -> Response:
    return HTMLResponse(
        page(),
        headers={
            **COMMON_HEADERS,
            "Content-Security-Policy": content_security_policy(request),
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        },
    )


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(COMMON_HEADERS)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def static_files() -> StaticFiles:
    return _Assets(directory=ASSETS)
