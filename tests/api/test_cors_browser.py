"""CORS in a real browser (the system's headless Chromium, driven by Playwright): a page
served from another loopback origin (a second server, on another port) queries /graphql
with `fetch` and a bearer token, and opens a graphql-transport-ws socket. With its origin
in CHANNELBOARD_CORS_ORIGINS it gets the data and the socket; without (the default) the
browser withholds the answer (TypeError: Failed to fetch) and the handshake is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, live_server

pytestmark = pytest.mark.slow

# What a vendor's portal does: Apollo-style POST with the user's token, and a live socket.
QUERY = """async ([api, token]) => {
  try {
    const response = await fetch(`http://${api}/graphql`, {
      method: "POST",
      headers: {
        "authorization": `Bearer ${token}`,
        "content-type": "application/json",
        "accept": "application/graphql-response+json, application/json;q=0.9",
        "apollographql-client-name": "portal",
      },
      body: JSON.stringify({ query: "{ me { role } }" }),
    });
    return { status: response.status, body: await response.json() };
  } catch (error) {
    return { error: String(error) };
  }
}"""
SOCKET = """([api, token]) => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${api}/graphql`, "graphql-transport-ws");
  socket.onopen = () => socket.send(
    JSON.stringify({ type: "connection_init", payload: { Authorization: token } }));
  socket.onmessage = (event) => { resolve(JSON.parse(event.data).type); socket.close(); };
  socket.onclose = (event) => resolve(`closed ${event.code}`);
})"""


@pytest.fixture
async def portal() -> AsyncIterator[str]:
    """The vendor's portal: another origin (same loopback host, another port)."""

    async def home(_: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>Portal</title><h1>Our partners</h1>")

    async with live_server(Starlette(routes=[Route("/", home)])) as address:
        yield address


async def on_portal(browser: Browser, portal: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"http://{portal}/")
    return page


async def run(page: Page, script: str, api: str, token: str) -> Any:
    return await page.evaluate(script, [api, token])


async def test_a_page_on_an_allowed_origin_reads_the_api(
    settings: Settings, clock: OffsetClock, migrated: str, gql: GQL, tenant: Tenant,
    browser: Browser, portal: str,
) -> None:  # fmt: skip
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    app = create_app(settings.with_overrides(cors_origins=f"http://{portal}"), clock=clock)
    async with app.router.lifespan_context(app), live_server(app) as api:
        page = await on_portal(browser, portal)
        answer = await run(page, QUERY, api, token)
        assert answer == {"status": 200, "body": {"data": {"me": {"role": "PARTNER_REP"}}}}
        assert await run(page, SOCKET, api, token) == "connection_ack"


async def test_a_page_on_another_origin_gets_nothing(
    app: Starlette, gql: GQL, tenant: Tenant, browser: Browser, portal: str
) -> None:
    """The default (no CHANNELBOARD_CORS_ORIGINS): same-origin only."""
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    async with live_server(app) as api:
        page = await on_portal(browser, portal)
        assert await run(page, QUERY, api, token) == {"error": "TypeError: Failed to fetch"}
        assert await run(page, SOCKET, api, token) == "closed 1006"  # refused: 403
