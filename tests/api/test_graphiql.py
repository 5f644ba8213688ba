"""GraphiQL works without internet: the page refers only to this app's URLs, every asset it
names is served (pinned, as the manifest says), a real headless Chromium that can reach
nothing but localhost renders it and runs a query, and production serves none of it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from api.app import create_app
from api.graphiql import ASSETS
from api.settings import Settings
from infra.clock import OffsetClock
from tests.support import eventually, live_server

pytestmark = pytest.mark.slow

HTML = {"accept": "text/html"}
ATTRIBUTE = re.compile(r'\b(?:src|href)="([^"]*)"')


async def test_the_page_names_no_external_url_and_every_asset_is_served(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "an external URL"
    assert "unpkg" not in html
    assert "jsdelivr" not in html
    assets = [url for url in ATTRIBUTE.findall(html) if not url.startswith("data:")]
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    assert {url.split("?")[0].rsplit("/", 1)[1] for url in assets} == set(manifest)
    for url in assets:
        assert url.startswith("/static/graphiql/"), url
        served = await client.get(url)
        assert served.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        name = url.split("?")[0].rsplit("/", 1)[1]
        assert f"sha384-{digest}" == manifest[name]["integrity"], name
        assert f'integrity="sha384-{digest}"' in html
        kind = "text/css" if name.endswith(".css") else "javascript"
        assert kind in served.headers["content-type"], (name, served.headers["content-type"])


async def test_production_serves_neither_the_page_nor_its_assets(
    settings: Settings, clock: OffsetClock
) -> None:
    prod = settings.with_overrides(env="production", jwt=settings.jwt.__class__(secret="s" * 40))
    app = create_app(prod, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://prod") as client:
            assert (await client.get("/graphql", headers=HTML)).status_code == 404
            for name in json.loads((ASSETS / "manifest.json").read_text()):
                assert (await client.get(f"/static/graphiql/{name}")).status_code == 404


# ---------------------------------------------------------------------------- the browser


@contextlib.contextmanager
def chromium() -> Iterator[str]:
    """A headless Chromium that resolves no host name but 127.0.0.1; its DevTools URL."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "install Chromium (apt-get install -y chromium; .ci/run does)"
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-proxy-server", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: ended whole, helpers included
        )  # fmt: skip
        try:
            assert process.stderr is not None
            for line in process.stderr:  # Chromium prints its DevTools address first
                if found := re.search(r"DevTools listening on (ws://\S+)", line):
                    yield found.group(1)
                    break
            else:
                raise AssertionError("Chromium did not start")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class DevTools:
    """Just enough of the Chrome DevTools Protocol: commands on one page's session, and the
    URL of every request the page made."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.next_id = 0
        self.session: str | None = None
        self.requested: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        await self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(await self.socket.recv())
            if reply.get("method") == "Network.requestWillBeSent":
                self.requested.append(reply["params"]["request"]["url"])
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str) -> Any:
        """The expression's value once it is truthy (the page works asynchronously)."""
        seen: list[Any] = []

        async def check() -> Any:
            seen.append(await self.evaluate(expression))
            return seen[-1]

        await eventually(check, within=30)
        return seen[-1]


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


async def test_graphiql_renders_and_runs_a_query_in_a_browser_offline(served: str) -> None:
    with chromium() as devtools_url:
        async with connect(devtools_url, max_size=None) as socket:
            tools = DevTools(socket)
            target = await tools.send("Target.createTarget", url="about:blank")
            attached = await tools.send(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            tools.session = attached["sessionId"]
            await tools.send("Network.enable")
            await tools.send("Page.enable")
            await tools.send("Page.navigate", url=f"http://{served}/graphql?q=%7B__typename%7D")
            # Rendered: the editor, the run button and the schema fetched from this app.
            await tools.until("!!document.querySelector('.graphiql-execute-button')")
            await tools.until(
                "document.querySelector('.graphiql-query-editor .CodeMirror')"
                ".CodeMirror.getValue() === '{__typename}'"
            )
            await tools.evaluate("document.querySelector('.graphiql-execute-button').click()")
            response = await tools.until(
                "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"
            )
            assert json.loads(response) == {"data": {"__typename": "Query"}}
            if shots := os.environ.get("CHANNELBOARD_GRAPHIQL_SCREENSHOT"):
                shot = await tools.send("Page.captureScreenshot", format="png")
                await asyncio.to_thread(Path(shots).write_bytes, base64.b64decode(shot["data"]))
    local = f"http://{served}/"
    outside = [u for u in tools.requested if not u.startswith((local, "data:", "about:"))]
    assert outside == [], outside
    assert any(u.startswith(f"{local}static/graphiql/graphiql.min.js") for u in tools.requested)
