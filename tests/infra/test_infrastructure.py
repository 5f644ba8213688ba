"""Embedded Redis, readiness, pub/sub fan-out and the outbox dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from api.app import create_app
from api.settings import Settings
from infra.clock import OffsetClock
from infra.outbox import OutboxEvent, record_event
from infra.pubsub import Hub
from infra.redis import EmbeddedRedis, Keys, connect
from schema.context import Services
from tests.factories import Tenant
from tests.support import eventually


async def test_embedded_redis_starts_serves_persists_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = connect(url)
    await client.set("standing", b"42")
    await client.aclose()
    server.stop()
    assert not server.running

    again = EmbeddedRedis(tmp_path / "redis")
    url = again.start()
    client = connect(url)
    try:
        assert await client.get("standing") == b"42"  # append-only file survived the restart
    finally:
        await client.aclose()
        again.stop()


async def test_a_second_embedded_redis_on_the_same_data_is_refused(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    first.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            EmbeddedRedis(tmp_path / "redis").start()
    finally:
        first.stop()


async def test_readyz_reports_ok(client: httpx.AsyncClient) -> None:
    # (The app may have just started: ready once its live subscriptions are confirmed.)
    await eventually(lambda: _is_ready(client), within=10)
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok", "migrations": "ok", "redis": "ok", "live": "ok",
    }  # fmt: skip
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_shows_the_outbox_backlog(
    client: httpx.AsyncClient, services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    assert (await client.get("/readyz")).json()["outbox"] == {
        "pending": 0, "oldestSeconds": 0, "deadLetters": 0,
    }  # fmt: skip
    # Frozen: real time passing between the record and the read (a loaded machine, the
    # background tasks of the app) must not show up in the backlog's age.
    clock.freeze()
    async with services.outbox.paused():  # as if no dispatcher ran
        async with services.db.transaction() as session:
            await record_event(
                session, clock, vendor_id=tenant.vendor.id, type="ProbeBacklog",
                aggregate_id=tenant.vendor.id, payload={},
            )  # fmt: skip
        clock.advance(timedelta(minutes=5))
        response = await client.get("/readyz")
    assert response.status_code == 200  # a backlog does not make this process unready
    assert response.json()["outbox"] == {"pending": 1, "oldestSeconds": 300.0, "deadLetters": 0}


async def _get_readyz(settings: Settings, clock: OffsetClock) -> httpx.Response:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            return await client.get("/readyz")


async def test_readyz_is_503_when_redis_is_down(
    settings: Settings, clock: OffsetClock, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "down")
    url = server.start()
    app = create_app(settings.with_overrides(redis_url=url, redis_cluster=False), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            await eventually(lambda: _is_ready(client), within=10)
            server.stop()
            response = await client.get("/readyz")

            # The Hub notices the lost subscription connection too (at its next read).
            async def live_reported_down() -> bool:
                live = (await client.get("/readyz")).json()["checks"]["live"]
                return bool(live.startswith("not subscribed since"))

            await eventually(live_reported_down, within=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"
    # What waits is shown while Redis is down, when it matters most.
    assert body["outbox"] is not None
    assert body["mail"] is not None


async def _is_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_when_migrations_are_not_current(
    settings: Settings, clock: OffsetClock, tmp_path: Path
) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    response = await _get_readyz(settings.with_overrides(database_url=empty), clock)
    assert response.status_code == 503
    assert "channelboard migrate" in response.json()["checks"]["migrations"]


async def test_readyz_is_503_when_the_database_is_unreachable(
    settings: Settings, clock: OffsetClock
) -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    response = await _get_readyz(settings.with_overrides(database_url=unreachable), clock)
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


async def test_pubsub_reaches_listeners_on_another_connection(redis_url: str) -> None:
    keys = Keys("hubtest")
    publisher_redis, listener_redis = connect(redis_url), connect(redis_url)
    publisher, listener_hub = Hub(publisher_redis, keys), Hub(listener_redis, keys)
    channel = listener_hub.channel("contest", "c1")
    try:
        async with (
            listener_hub.listen(channel) as fast,
            listener_hub.listen(channel, maxsize=2) as slow,
        ):
            for i in range(5):
                await publisher.publish(channel, f"v{i}")
            got = [await asyncio.wait_for(fast.get(), 5) for _ in range(5)]
            assert got == [b"v0", b"v1", b"v2", b"v3", b"v4"]
            await asyncio.sleep(0)  # the slow one read nothing meanwhile
            backlog = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
            assert backlog == [b"v3", b"v4"]  # it keeps the latest, never blocks the others
    finally:
        await listener_hub.close()
        await publisher.close()
        for r in (publisher_redis, listener_redis):
            await r.aclose()


async def test_outbox_dispatches_committed_events_once_in_order(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    seen: list[str] = []

    async def handler(event: OutboxEvent) -> None:
        seen.append(event.payload["n"])

    db, dispatcher = services.db, services.outbox
    dispatcher.register("TestOrdered", handler)
    async with db.transaction() as session:
        for n in ("a", "b", "c"):
            await record(session, clock, tenant, "TestOrdered", {"n": n})

    async def die_half_way() -> None:
        async with db.transaction() as session:
            await record(session, clock, tenant, "TestOrdered", {"n": "rolled back"})
            raise RuntimeError("the request died half-way")

    with pytest.raises(RuntimeError):
        await die_half_way()
    await dispatcher.dispatch_pending()
    await dispatcher.dispatch_pending()
    assert seen == ["a", "b", "c"]


async def test_outbox_retries_an_event_whose_handler_failed(
    services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    attempts: list[str] = []

    async def flaky(event: OutboxEvent) -> None:
        if not attempts:
            attempts.append("failed")
            raise ConnectionError("redis went away")
        attempts.append("ok")

    db, dispatcher = services.db, services.outbox
    dispatcher.register("TestFlaky", flaky)
    async with db.transaction() as session:
        event = await record(session, clock, tenant, "TestFlaky", {})
    with contextlib.suppress(ConnectionError):
        await dispatcher.dispatch_pending()
    await dispatcher.dispatch_pending()
    assert attempts == ["failed", "ok"]
    async with db.session() as session:
        stored = await session.get(OutboxEvent, event.id)
        assert stored is not None
        assert stored.dispatched_at is not None


async def record(
    session: AsyncSession, clock: OffsetClock, tenant: Tenant, type_: str, payload: dict[str, str]
) -> OutboxEvent:
    return await record_event(
        session, clock, vendor_id=tenant.vendor.id, type=type_, aggregate_id=tenant.vendor.id,
        payload=payload,
    )  # fmt: skip
