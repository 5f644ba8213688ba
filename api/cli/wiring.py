"""What commands that run outside the server connect to: the database, the Redis a running
server uses, and the app's services, so that what a command commits is handled and heard
exactly as if the server had committed it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from api.settings import Settings
from infra.clock import SystemClock
from infra.db import Database
from infra.pubsub import Hub
from infra.redis import EmbeddedRedis, Keys, _responds, connect

if TYPE_CHECKING:
    from schema.context import Services


def running_redis_url(settings: Settings) -> str | None:
    """The configured Redis, or the embedded one a running server started (None if none)."""
    if settings.redis_url is not None:
        return settings.redis_url
    sock = (settings.var_dir / "redis" / "redis.sock").resolve()
    if sock.exists() and _responds(f"unix://{sock}"):
        return f"unix://{sock}"
    return None


@contextlib.asynccontextmanager
async def _sharing(db: Database, hub: Hub) -> AsyncIterator[None]:
    sharing = asyncio.create_task(db.epochs.share(hub), name="table-epochs")
    # Subscribed before the first commit, so that commit's notice goes out (share() returns
    # once subscribed; it retries meanwhile, and the server's cache TTL covers a miss).
    await asyncio.wait({sharing}, timeout=5)
    try:
        yield
    finally:
        if not sharing.done():
            sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sharing
        await hub.drain()


@contextlib.asynccontextmanager
async def announcing(settings: Settings, db: Database) -> AsyncIterator[None]:
    """Tell running servers which tables this command's commits changed, so their read
    caches drop what it replaced at once. Without a reachable Redis there is no server to
    tell (``./dev serve`` seeds the demo before it starts one)."""
    url = running_redis_url(settings)
    if url is None:
        yield
        return
    redis = connect(url, cluster=settings.redis_cluster)
    hub = Hub(redis, Keys(settings.redis_namespace))
    try:
        async with _sharing(db, hub):
            yield
    finally:
        await hub.close()
        await redis.aclose()


@contextlib.asynccontextmanager
async def wiring(settings: Settings) -> AsyncIterator[Services]:
    """Database, Redis (the configured one, or the running server's embedded one, or a fresh
    embedded one) and the app's services for commands outside the server, from the same
    composition root: the same outbox handlers, so an event this command dispatches is
    credited, scored and announced exactly as the server would, and the same table-change
    notices, so a running server's read caches hear of this command's commits at once."""
    # The app's services load the whole schema: imported here, not by every command.
    from api.composition import build_services  # noqa: PLC0415

    embedded = None
    url = running_redis_url(settings)
    if url is None:
        embedded = EmbeddedRedis(settings.var_dir / "redis")
        url = await asyncio.to_thread(embedded.start)
    db = Database(settings.database_url, waits=settings.database_waits)
    redis = connect(url, cluster=settings.redis_cluster)
    services = build_services(settings, db=db, redis=redis, clock=SystemClock())
    try:
        async with _sharing(db, services.hub):
            yield services
    finally:
        await services.hub.close()
        await redis.aclose()
        await db.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
