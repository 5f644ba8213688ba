"""The Hub's lock under cancellation: a listener cancelled while it waits for the lock (the
reader holds it, subscribing to a Redis that does not answer) must not release a lock it
never got back, which would let subscribes and unsubscribes run over each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from infra.pubsub import Hub
from infra.redis import Keys
from tests.support import eventually


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_cancelled_listener_never_releases_the_readers_lock(silent_redis: str) -> None:
    redis = Redis.from_url(silent_redis, socket_connect_timeout=30, socket_timeout=30)
    hub = Hub(redis, Keys("lock-test"), connect_within=0.1)
    try:

        async def listen() -> None:
            async with hub.listen(hub.channel("x")):
                pass

        listener = asyncio.create_task(listen())
        # The reader takes the lock to subscribe and hangs there; the listener gives up
        # waiting for the first attempt and queues for the lock.
        await eventually(lambda: _waiting_for(hub._lock))
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        assert hub._lock.locked(), "the cancelled listener released the reader's lock"
    finally:
        await hub.close()
        await redis.aclose()


async def _waiting_for(lock: asyncio.Lock) -> bool:
    return bool(getattr(lock, "_waiters", None))
