"""/readyz's ``live`` check: a process is ready only while its Hub hears the notices its
websocket subscribers are pushed from. A Redis answering PING again is not enough: the
Hub's resubscription is held on its way to Redis (a proxy in front of a real Redis, which
the test stops and starts), and the process stays unready until Redis confirms it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.redis import EmbeddedRedis, connect
from tests.redis_proxy import HoldingProxy
from tests.support import eventually

pytestmark = pytest.mark.slow


async def _readyz(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    checks: dict[str, Any] = response.json()["checks"]
    return response.status_code, checks


async def test_ready_only_once_the_hub_has_resubscribed_after_an_outage(
    settings: Settings, clock: OffsetClock, migrated: str, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    # Holds every command carrying SUBSCRIBE (only the Hub's connection sends one) while
    # ``release`` is clear; PINGs and everything else pass.
    proxy = HoldingProxy(url, b"SUBSCRIBE", hold_marker=True)
    proxy.release.set()
    publisher = connect(url)
    try:
        async with proxy.running() as port:
            app = create_app(
                settings.with_overrides(
                    redis_url=f"redis://127.0.0.1:{port}/0",
                    redis_cluster=False,
                ),
                clock=clock,
            )
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://r"
                ) as client,
            ):
                hub = app.state.services.hub

                async def ready() -> bool:
                    status, checks = await _readyz(client)
                    return status == 200 and checks["live"] == "ok"

                await eventually(ready, within=10)
                channel = hub.channel("probe")
                async with hub.listen(channel) as listener:
                    # Redis goes down: unready, naming Redis and the live feeds.
                    server.stop()

                    async def down() -> bool:
                        status, checks = await _readyz(client)
                        assert status == 503
                        return checks["redis"].startswith("unreachable") and checks[
                            "live"
                        ].startswith("not subscribed since")

                    await eventually(down, within=10)
                    assert await listener.get() is None  # told: something may be missed

                    # Redis is back, but the Hub's resubscription is held: PING answers,
                    # the live feeds are not heard yet, and the process is still unready.
                    proxy.release.clear()
                    proxy.holding.clear()
                    server.start()
                    async with asyncio.timeout(15):
                        await proxy.holding.wait()
                    status, checks = await _readyz(client)
                    assert checks["redis"] == "ok", checks
                    assert checks["live"].startswith("resubscribing since"), checks
                    assert status == 503
                    # Nor do the read caches serve: another process's change committed now
                    # would not be heard (they served as soon as the resubscription was
                    # sent, and kept what they read then until their TTL).
                    epochs = app.state.services.db.epochs
                    assert not epochs.live

                    # Redis confirms it: ready, and a notice published now is heard.
                    proxy.release.set()
                    await eventually(ready, within=10)
                    assert epochs.live
                    assert await publisher.publish(channel, b"after") == 1
                    async with asyncio.timeout(5):
                        while (message := await listener.get()) is None:
                            pass  # the resubscription's "re-read"
                    assert message == b"after"
    finally:
        await publisher.aclose()
        server.stop()
