"""Cross-process fan-out over Redis pub/sub.

Each process holds one Redis subscription connection; local listeners (websocket
subscriptions) register for channels here and get each message from a small queue of their
own. A listener that falls behind loses its oldest messages, never blocks the others:
messages are "something changed" notices, and the subscriber re-reads current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from infra.redis import Keys

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, channel: str, maxsize: int) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=maxsize)

    def offer(self, message: bytes) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # drop the oldest: a slow reader gets the latest
        self.queue.put_nowait(message)

    async def get(self) -> bytes:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.queue.get()


class Hub:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        # Process-lifetime watchers: called in the reader task for every message on their
        # channel, and with None when the connection was lost (messages may be missing).
        self._watchers: dict[str, list[Callable[[bytes | None], None]]] = defaultdict(list)
        self._healthy = False
        self.reconnects = 0  # times the subscription connection was lost and made again

    @property
    def subscribed(self) -> bool:
        """The subscription connection is up (no message is being missed)."""
        return self._healthy and self._reader is not None and not self._reader.done()

    def channel(self, *parts: object) -> str:
        return self.keys("chan", *parts)

    async def publish(self, channel: str, message: bytes | str) -> int:
        return int(await self.redis.publish(channel, message))

    async def watch(self, channel: str, callback: Callable[[bytes | None], None]) -> None:
        """Call ``callback`` with every message on ``channel`` for the life of the Hub, and
        with None after a reconnection (whatever was published meanwhile is lost)."""
        async with self._lock:
            await self._ensure_reader()
            if channel not in self._watchers and channel not in self._listeners:
                assert self._pubsub is not None
                await self._pubsub.subscribe(channel)
            self._watchers[channel].append(callback)

    def publish_soon(self, channel: str, message: bytes | str) -> None:
        """Publish from synchronous code (e.g. an after-commit hook); failures are logged."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (synchronous tooling): nobody here to tell
        task = loop.create_task(self.publish(channel, message))
        self._background.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[int]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pub/sub publish failed", exc_info=task.exception())

    @contextlib.asynccontextmanager
    async def listen(self, channel: str, *, maxsize: int = 16) -> AsyncIterator[Listener]:
        """Receive messages published on ``channel`` (by any process) while the block runs.
        The Redis subscription is confirmed before the block starts, so nothing published
        after entering is missed."""
        listener = Listener(channel, maxsize)
        async with self._lock:
            await self._ensure_reader()
            first = not self._listeners[channel]
            self._listeners[channel].add(listener)
            if first:
                assert self._pubsub is not None
                await self._pubsub.subscribe(channel)
        try:
            yield listener
        finally:
            # No awaiting here: this runs while the subscription is being cancelled, and a
            # Redis round trip (or the lock) must not be able to hold that up. The Redis
            # unsubscribe happens in a task of its own.
            self._listeners[channel].discard(listener)
            if not self._listeners[channel]:
                del self._listeners[channel]
                task = asyncio.create_task(self._unsubscribe(channel))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._listeners or channel in self._watchers or self._pubsub is None:
                return  # someone listens again
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pubsub.unsubscribe(channel), timeout=5)

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        # A subscription with no channel yet: redis-py needs one before reading.
        await self._pubsub.subscribe(self.keys("chan", "_hub"))
        for channel in {*self._listeners, *self._watchers}:
            await self._pubsub.subscribe(channel)
        self._reader = asyncio.create_task(self._read(self._pubsub), name="pubsub-reader")
        self._healthy = True

    def _missed(self) -> None:
        for callback in [c for callbacks in self._watchers.values() for c in callbacks]:
            callback(None)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pub/sub connection lost; resubscribing")
                self._healthy = False
                self._missed()
                await asyncio.sleep(0.5)
                async with self._lock:
                    self._reader = None
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    await self._ensure_reader()
                self.reconnects += 1
                self._missed()  # and whatever came while resubscribing
                return
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            data = message["data"]
            body = data if isinstance(data, bytes) else str(data).encode()
            for listener in list(self._listeners.get(channel, ())):
                listener.offer(body)
            for callback in self._watchers.get(channel, ()):
                try:
                    callback(body)
                except Exception:
                    log.exception("pub/sub watcher failed on %s", channel)

    async def drain(self, within: float = 5.0) -> None:
        """Wait (at most ``within`` seconds) for what ``publish_soon`` started: a command
        that exits right after its last commit must still tell the other processes."""
        pending = set(self._background)
        if pending:
            await asyncio.wait(pending, timeout=within)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
