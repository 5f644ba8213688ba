"""Process-local caches of rows read on every request that rarely change (who a credential
belongs to, contest rows, participant names), kept exact by watching table changes.

Every committed transaction that wrote a table bumps that table's epoch: in this process at
once (``infra.db`` records the tables a session wrote and reports them after commit), and
in every other process through Redis pub/sub (``Hub.watch``). A cache entry remembers the
epochs of the tables it was read from, taken *before* the read, so a commit that lands
while the read runs makes the entry stale rather than leaving old data current. When the
pub/sub connection drops, every epoch is bumped (a notice may have been missed), and a TTL
bounds what a writer without a Hub (a CLI command), or a notice whose publish failed, can
leave stale. Another process hears of a commit a few milliseconds after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:
    from infra.pubsub import Hub

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

Stamp = tuple[int, ...]


class TableEpochs:
    """How many committed changes this process has seen, per table."""

    def __init__(self) -> None:
        self._epochs: dict[str, int] = {}
        self._all = 0  # bumped when any notice may have been missed
        self.changes = 0  # bumped with any epoch: lets a cache reuse its last stamp
        # Set by ``share``: tells the other processes (a Hub publish), and whether we hear
        # theirs. Until then caches serve nothing: another process's commit would go unseen.
        self.publish: Callable[[frozenset[str]], None] | None = None
        self.hearing: Callable[[], bool] = lambda: False
        self._listeners: list[Callable[[frozenset[str] | None], None]] = []

    def listen(self, callback: Callable[[frozenset[str] | None], None]) -> None:
        """Call ``callback`` with the tables of every change this process sees (its own
        commits and other processes'), and with None when any table may have changed. It
        runs inside the commit (or the pub/sub reader): it must only take note."""
        self._listeners.append(callback)

    @property
    def live(self) -> bool:
        return self.hearing()

    def stamp(self, tables: tuple[str, ...]) -> Stamp:
        return (self._all, *(self._epochs.get(t, 0) for t in tables))

    def changed(self, tables: Iterable[str], *, local: bool = True) -> None:
        """Tables were written by a committed transaction (``local``: in this process, so
        the other processes are told too)."""
        names = frozenset(tables)
        for name in names:
            self._epochs[name] = self._epochs.get(name, 0) + 1
        self.changes += 1
        if local and names and self.publish is not None:
            self.publish(names)
        for listener in self._listeners:
            listener(names)

    def changed_everything(self) -> None:
        self._all += 1
        self.changes += 1
        for listener in self._listeners:
            listener(None)

    async def share(self, hub: Hub, *, retry: float = 1.0) -> None:
        """Tell other processes through ``hub`` and hear from them (one channel); retries
        until Redis answers (caches stay off meanwhile)."""
        channel = hub.channel("tables")
        origin = uuid.uuid4().hex

        def publish(names: frozenset[str]) -> None:
            hub.publish_soon(channel, f"{origin} {','.join(sorted(names))}")

        def heard(message: bytes | None) -> None:
            if message is None:
                self.changed_everything()
                return
            sender, _, names = message.decode().partition(" ")
            if sender != origin:
                self.changed(names.split(","), local=False)

        while True:
            try:
                await hub.watch(channel, heard)
                break
            except Exception:
                log.warning("cannot subscribe to table changes yet; read caches stay off")
                await asyncio.sleep(retry)
        self.publish = publish
        self.hearing = lambda: hub.subscribed


class ReadCache(Generic[K, V]):
    """Values keyed by K, valid while the tables they came from are unchanged (and for at
    most ``ttl`` seconds); least recently used entries go first past ``maxsize``."""

    def __init__(
        self,
        epochs: TableEpochs,
        tables: tuple[str, ...],
        *,
        ttl: float = 10.0,
        maxsize: int = 10_000,
    ) -> None:
        self.epochs = epochs
        self.tables = tables
        self.ttl = ttl
        self.maxsize = maxsize
        self._entries: OrderedDict[K, tuple[Stamp, float, V]] = OrderedDict()
        self._stamp: tuple[int, Stamp] = (-1, ())  # (epochs.changes, stamp) memo

    def stamp(self) -> Stamp:
        """Take before reading the value to be stored."""
        changes, stamp = self._stamp
        if changes != self.epochs.changes:
            changes, stamp = self._stamp = (
                self.epochs.changes, self.epochs.stamp(self.tables)
            )  # fmt: skip
        return stamp

    def get(self, key: K) -> V | None:
        if not self.epochs.live:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        stamp, stored_at, value = entry
        if stamp != self.stamp() or time.monotonic() - stored_at > self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def get_many(self, keys: Iterable[K]) -> list[V | None]:
        """``get`` of each key (one liveness, stamp and clock reading for all of them)."""
        if not self.epochs.live:
            return [None for _ in keys]
        current, now, entries = self.stamp(), time.monotonic(), self._entries
        out: list[V | None] = []
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                out.append(None)
            elif entry[0] != current or now - entry[1] > self.ttl:
                del entries[key]
                out.append(None)
            else:
                entries.move_to_end(key)
                out.append(entry[2])
        return out

    def put(self, key: K, value: V, stamp: Stamp) -> None:
        if stamp != self.stamp() or not self.epochs.live:
            return  # the tables changed while the value was read
        self._entries[key] = (stamp, time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)


R = TypeVar("R")
_LEADER_FAILED = object()


class SingleFlight(Generic[K, R]):
    """Concurrent misses of one key share a single load. When a hot entry expires or its
    tables change, every request in flight misses at once; each running the same queries
    queued them behind each other (one credential under load: 30 requests waited up to
    0.5 s for each other's user lookups). A request joins a load only while the cache's
    stamp is still the one that load began with (no table changed since), so what it gets
    is as fresh as its own read would be. If the load fails or is cancelled, whoever joined
    it loads for itself."""

    def __init__(self, cache: ReadCache[Any, Any]) -> None:
        self.cache = cache
        self._flights: dict[K, tuple[Stamp, asyncio.Future[object]]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[R]]) -> R:
        stamp = self.cache.stamp()
        flight = self._flights.get(key)
        if flight is not None and flight[0] == stamp:
            joined = await asyncio.shield(flight[1])
            if joined is not _LEADER_FAILED:
                return cast(R, joined)
            return await load()
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._flights[key] = (stamp, future)
        shared: object = _LEADER_FAILED
        try:
            loaded = await load()
            shared = loaded
            return loaded
        finally:
            future.set_result(shared)
            if self._flights.get(key, (None, None))[1] is future:
                del self._flights[key]
