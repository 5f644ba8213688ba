"""Cross-process fan-out over Redis pub/sub.

Each process holds one Redis subscription connection; local listeners (websocket
subscriptions) register for channels here and get each message from a small queue of their
own. A listener that falls behind loses its oldest messages, never blocks the others:
messages are "something changed" notices, and the subscriber re-reads current state. The
connection is made again for as long as the process runs; a listener hears None when
messages may have been lost meanwhile: once when the loss is noticed, and once more when
Redis has confirmed the channel's new subscription (what was published between a re-read
at the first None and the confirmation is lost too). A notice ``publish_soon`` cannot send
(Redis out of reach from here, while other processes may still be subscribed) is sent
again until it is: their listeners would hear neither it nor a None.

On a Redis Cluster the notices use sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+): a
channel lives on the node that owns its slot, so a notice is sent to one shard instead of
being broadcast to every node, and redis-py's cluster pub/sub holds one connection per node
that has channels, following them when a failover or a slot migration moves them. A channel
that moved, or a node connection that was made again, means notices may have been missed
on that channel, or that node: their listeners hear None (those of the other nodes' channels
lost nothing and hear nothing), and the channel is not heard (``subscribed`` false) until
its node confirms the new subscription; then they hear None once more. A node that drops
its channels itself (a failover made it a replica, a slot migration took their slot away)
says so with a SUNSUBSCRIBE nobody asked for, which redis-py does not act on: the Hub
subscribes them again where their slot now lives (``_note_dropped``). What redis-py keeps
of its nodes and channels, and offers no public API for, is read in ``infra.cluster_pubsub``
(its shape checked when a Hub is made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from infra import cluster_pubsub
from infra.redis import AnyRedis, Keys, RedisUnavailable, redis_unreachable
from infra.tasks import raise_lost_cancellation

log = logging.getLogger(__name__)


# At most this long (about) between a notice reaching its node and this process reading it
# on a cluster; an idle process polls each node with channels that often.
SHARDED_POLL_SECONDS = 0.02
# Each read of what has already arrived before a confirmation counts as missing: not 0, which
# would not let the event loop move bytes still in the socket into the client's buffer.
DRAIN_SECONDS = 0.01
# Distinct notices kept per channel while ``publish_soon`` cannot send them (the same notice
# twice is kept once; a channel's notices are few kinds: a wake-up, the sets of tables a
# transaction wrote): past this, the oldest is dropped (once logged per outage). The other
# processes' read caches it would have reached still expire by their TTL; telling this
# process's own listeners, which made the change, would help nobody.
MAX_UNSENT = 1000


class Listener:
    """One subscriber's messages; None means "the connection was lost and made again:
    something may be missing, re-read current state"."""

    def __init__(self, channel: str, maxsize: int) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=maxsize)

    def offer(self, message: bytes | None) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # drop the oldest: a slow reader gets the latest
        self.queue.put_nowait(message)

    async def get(self) -> bytes | None:
        raise_lost_cancellation()  # (a cancelled subscriber would wait here forever)
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[bytes | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes | None]:
        while True:
            yield await self.get()


class Hub:
    """One Redis subscription connection per process, kept up for the life of the Hub.

    When the connection is lost (Redis restarted, failed over, flushed its clients) the
    reader reconnects forever with capped exponential backoff and subscribes to every
    channel again. Whatever was published meanwhile is lost, so every watcher is called
    with None and every listener receives None ("you may have missed something: re-read
    current state"), once when the loss is noticed and once Redis has confirmed the
    resubscription (those of the channels subscribed again; see ``_retell``).
    """

    def __init__(
        self,
        redis: AnyRedis,
        keys: Keys,
        *,
        backoff: tuple[float, float] = (0.1, 2.0),
        connect_within: float = 3.0,
        confirm_within: float = 10.0,
        resend_backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
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
        self._tried = asyncio.Event()  # the reader has made its first connection attempt
        self._backoff = backoff
        self._connect_within = connect_within
        self._closed = False
        self.reconnects = 0  # times the subscription connection was lost and made again
        self.sharded = isinstance(redis, RedisCluster)
        if isinstance(redis, RedisCluster):
            cluster_pubsub.require(redis)  # fails here, rather than deaf to moves later
        # Cluster: where each channel was heard last (node name), and the node connections
        # that call ``_reconnected_silently``, to notice a failover or reconnection that
        # redis-py handled out of sight.
        self._routes: dict[str, str] = {}
        self._node_connections: set[AbstractConnection] = set()
        # SUBSCRIBEs sent on the current connection and not yet confirmed, per channel, in
        # the order sent (Redis confirms them in that order): redis-py only writes the
        # command, and a listener must not start before Redis has its subscription. The
        # reader resolves them; a lost connection and ``close`` cancel them, so a waiting
        # ``listen`` always wakes.
        self._unconfirmed: dict[str, deque[asyncio.Future[None]]] = {}
        # Channels subscribed again on the current connection (the reader's resubscription
        # after connecting, redis-py's after a silent reconnection) that Redis has not
        # confirmed yet: until it has, their notices are not heard. Since when (monotonic)
        # this process has not been hearing, and why: for ``live_problem``.
        self._awaiting: set[str] = set()
        # A resubscription Redis never confirms (lost on its way: a node that no longer
        # holds the channel's slot) would keep the read caches off, and the process
        # unready, for good: past this deadline the reader starts over on a new connection.
        self._confirm_within = confirm_within
        self._awaiting_until = 0.0
        # Cluster: channels a node dropped unasked (read, not yet subscribed again).
        self._dropped_unheard: set[str] = set()
        # Channels subscribed again (after a reconnection, a move or a drop) whose listeners
        # were told to re-read before Redis confirmed the new subscription: what was
        # published between their re-read and the confirmation is lost too, so they are told
        # once more when every channel of ``_retell`` is confirmed (``_heard_again``).
        # ``_retold``: all the channels to tell then (``_retell`` the unconfirmed ones).
        self._retell: set[str] = set()
        self._retold: set[str] = set()
        # Resolved by the reader once it has read all that had arrived when it was asked
        # for (``_read_through``).
        self._read_all: asyncio.Future[None] | None = None
        self._unheard_since = time.monotonic()
        self._unheard_why = "connecting"
        # Notices ``publish_soon`` could not send, per channel in the order first kept, and
        # the task sending them again (``_resend``); ``_reachable`` cuts its backoff short
        # when another publish got through.
        self._unsent: dict[str, dict[bytes, int]] = {}
        self._kept = 0  # how many notices were kept so far (which keeping is the latest)
        self._resender: asyncio.Task[None] | None = None
        self._reachable = asyncio.Event()
        self._resend_backoff = resend_backoff
        self._overflowed: set[str] = set()  # channels past MAX_UNSENT this outage (logged)

    @property
    def subscribed(self) -> bool:
        """The subscription connection is up and Redis has confirmed every channel it
        carries (no message is being missed): the read caches serve only then. Between a
        (re)connection's subscriptions and their confirmations a notice is not heard."""
        return (
            self._healthy
            and not self._awaiting
            and self._reader is not None
            and not self._reader.done()
        )

    def live_problem(self) -> str | None:
        """None while every channel this process needs is subscribed and Redis has
        confirmed it (or when the Hub was never started: nothing to hear); otherwise why
        not, for readiness. Only what the reader already knows: no Redis round trip."""
        if self._reader is None:
            return None
        if self._closed:
            return "not subscribed: the pub/sub hub is closed"
        since = f"{time.monotonic() - self._unheard_since:.0f} s"
        if self._reader.done():
            return f"not subscribed since {since}: the pub/sub reader stopped"
        if not self._healthy:
            return f"not subscribed since {since}: {self._unheard_why}"
        needed = self._needed()
        # A watcher's own subscription counts too; a listener's is awaited by its ``listen``.
        waiting = (self._awaiting & needed) | (self._unconfirmed.keys() & self._watchers.keys())
        if waiting:
            return (
                f"resubscribing since {since}: "
                f"{len(waiting)} of {len(needed)} channels not confirmed by Redis"
            )
        return None

    def _needed(self) -> set[str]:
        """The channels this process hears (the reader's own, to have one)."""
        return {self.keys("chan", "_hub"), *self._listeners, *self._watchers}

    def _stopped_hearing(self, why: str) -> None:
        self._unheard_since = time.monotonic()
        self._unheard_why = why

    def channel(self, *parts: object) -> str:
        return self.keys("chan", *parts)

    async def publish(self, channel: str, message: bytes | str) -> int:
        if self.sharded:
            return int(await self.redis.spublish(channel, message))
        return int(await self.redis.publish(channel, message))

    async def watch(self, channel: str, callback: Callable[[bytes | None], None]) -> None:
        """Call ``callback`` with every message on ``channel`` for the life of the Hub, and
        with None after a reconnection (whatever was published meanwhile is lost). While
        the connection is down the watcher is registered all the same: the reconnection
        subscribes it (and calls it with None); ``subscribed`` tells whether it hears."""
        await self._start()
        confirmation: asyncio.Future[None] | None = None
        async with self._lock:
            first = channel not in self._watchers and channel not in self._listeners
            self._watchers[channel].append(callback)
            if first and self._healthy and self._pubsub is not None:
                with contextlib.suppress(RedisUnavailable):  # the reader reconnects
                    # Awaited as a resubscription is: not heard (``subscribed`` false) until
                    # Redis confirms it, and the reader starts over if it never does.
                    await self._subscribe(self._pubsub, channel, awaited=True)
                    pending = self._unconfirmed.get(channel)
                    confirmation = pending[-1] if pending else None
        if confirmation is not None:
            # Subscribed before the caller reads what the channel tells of changes to
            # (a notice published before Redis has the subscription is not heard). Without
            # the lock, as ``listen``; a late or lost confirmation leaves ``subscribed``
            # false until it comes or the reader has started over.
            with contextlib.suppress(RedisUnavailable):
                await self._await_confirmation(confirmation)

    def publish_soon(self, channel: str, message: bytes | str) -> None:
        """Publish from synchronous code (e.g. an after-commit hook), for "something
        changed" notices (read-cache invalidations, dispatcher wake-ups) only: one that
        cannot be sent because Redis is out of reach is sent again, with backoff, until it
        is (possibly after later ones; the same notice kept twice is sent once). The
        subscribers of other processes whose own connection stayed up (a publish's new
        pooled connection timing out on a loaded host, a short outage) would otherwise miss
        it and stay stale. Other failures (bugs) are logged."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (synchronous tooling): nobody here to tell
        body = message.encode() if isinstance(message, str) else message
        task = loop.create_task(self._publish_or_keep(channel, body))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def unsent(self) -> int:
        """Notices of ``publish_soon`` waiting to be sent again (Redis out of reach)."""
        return sum(len(kept) for kept in self._unsent.values())

    async def _publish_or_keep(self, channel: str, message: bytes) -> None:
        try:
            await self.publish(channel, message)
        except Exception as exc:  # noqa: BLE001 - logged, or kept to send again
            if redis_unreachable(exc):
                self._keep(channel, message)
            else:
                log.error("pub/sub publish failed", exc_info=exc)
        else:
            if self._unsent:
                self._reachable.set()  # Redis answers: send the kept ones now

    def _keep(self, channel: str, message: bytes) -> None:
        if self._closed:
            return
        kept = self._unsent.setdefault(channel, {})
        self._kept += 1
        kept[message] = self._kept
        if len(kept) > MAX_UNSENT:
            del kept[next(iter(kept))]
            if channel not in self._overflowed:
                self._overflowed.add(channel)
                log.error(
                    "pub/sub: over %d notices unsent on %s; the oldest dropped "
                    "(caches elsewhere expire by their TTL)", MAX_UNSENT, channel,
                )  # fmt: skip
        if self._resender is None or self._resender.done():
            log.warning("pub/sub publish failed: Redis unavailable; sending it again")
            self._resender = asyncio.get_running_loop().create_task(self._resend())
            self._background.add(self._resender)
            self._resender.add_done_callback(self._background.discard)

    async def _resend(self) -> None:
        """Send the kept notices again, oldest first, with capped exponential backoff, until
        none is left (or the Hub is closed)."""
        delay = self._resend_backoff[0]
        while self._unsent and not self._closed:
            self._reachable.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):  # noqa: S311
                    await self._reachable.wait()
            try:
                for channel, kept in list(self._unsent.items()):
                    for message, keeping in list(kept.items()):
                        try:
                            await self.publish(channel, message)
                        except Exception as exc:
                            if redis_unreachable(exc):
                                raise
                            log.error("pub/sub publish failed", exc_info=exc)
                        # Kept again meanwhile (a later change's notice failed too, maybe
                        # after this one reached Redis): sent again, not forgotten.
                        if kept.get(message) == keeping:
                            del kept[message]
                    if not kept:
                        self._unsent.pop(channel, None)
            except Exception:  # noqa: BLE001 - out of reach still: wait and try again
                delay = min(delay * 2, self._resend_backoff[1])
            else:
                delay = self._resend_backoff[0]
        if not self._unsent:
            self._overflowed.clear()
            log.warning("pub/sub notices sent again: Redis answers")

    @contextlib.asynccontextmanager
    async def listen(
        self, channel: str, *, maxsize: int = 16, into: Listener | None = None
    ) -> AsyncIterator[Listener]:
        """Receive messages published on ``channel`` (by any process) while the block runs.
        The Redis subscription is confirmed before the block starts, so nothing published
        after entering is missed; after a lost connection the listener receives None.
        ``into``: deliver into that listener (one queue for several channels) instead of a
        new one. Raises RedisUnavailable (at once, not after a hang) while Redis is down, and
        when the subscription is not confirmed (the connection lost or the Hub closed
        meanwhile; or no confirmation within ``connect_within``)."""
        listener = into if into is not None else Listener(channel, maxsize)
        await self._start()
        async with self._lock:
            self._require_connection()
            first = not self._listeners[channel]
            if first and channel not in self._watchers:
                assert self._pubsub is not None
                try:
                    await self._subscribe(self._pubsub, channel)
                except RedisUnavailable:
                    del self._listeners[channel]
                    raise
            self._listeners[channel].add(listener)
            # The latest SUBSCRIBE of the channel (this one's, or one a watcher or another
            # listener sent just before) once Redis confirms it: waited for without the
            # lock, so a slow confirmation holds up no one else.
            pending = self._unconfirmed.get(channel)
            confirmation = pending[-1] if pending else None
        try:
            if confirmation is not None:
                await self._await_confirmation(confirmation)
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
            self._awaiting.discard(channel)  # no longer needed: no longer awaited
            self._dropped_unheard.discard(channel)
            self._heard_again(channel)
            if not _connected(self._pubsub, channel):
                return  # the reader's new connection subscribes only what is needed
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    if isinstance(self._pubsub, ClusterPubSub):
                        await self._pubsub.sunsubscribe(channel)
                    else:
                        await self._pubsub.unsubscribe(channel)

    async def _subscribe(self, pubsub: PubSub, channel: str, *, awaited: bool = False) -> None:
        """Send the subscription (called with the lock held); ``_unconfirmed`` gets a
        future the reader resolves when Redis confirms it. ``awaited``: in ``_awaiting``
        too until then (a watcher's: no caller waits for it as a listener does)."""
        if not _connected(pubsub, channel):
            if awaited:  # not sent: the reader starts over unless it comes to be confirmed
                self._await({channel})
            raise RedisUnavailable("the pub/sub connection to Redis is down")
        # Noted before sending: the confirmation can be read before the send returns.
        confirmation = asyncio.get_running_loop().create_future()
        self._unconfirmed.setdefault(channel, deque()).append(confirmation)
        if awaited:
            self._await({channel})
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the subscription completes, and the cancelled subscriber then
            # waits for messages forever (a closing socket's operations never finished).
            async with asyncio.timeout(self._connect_within):
                if isinstance(pubsub, ClusterPubSub):
                    await pubsub.ssubscribe(channel)
                    self._follow_routes(pubsub)
                else:
                    await pubsub.subscribe(channel)
        except BaseException as exc:
            # Not sent (redis-py drops a connection it failed to write to, and the reader
            # then cancels the rest): no confirmation is coming for this one.
            confirmation.cancel()
            with contextlib.suppress(KeyError, ValueError):
                self._unconfirmed[channel].remove(confirmation)
            if awaited:
                self._awaiting.discard(channel)
            if isinstance(exc, (RedisError, OSError, TimeoutError)):
                raise RedisUnavailable("the pub/sub connection to Redis is down") from exc
            raise

    async def _await_confirmation(self, confirmation: asyncio.Future[None]) -> None:
        """Wait until Redis has confirmed a subscription; RedisUnavailable if the connection
        was lost or the Hub closed meanwhile, or after ``connect_within`` and the reader
        having read what had arrived by then. asyncio.wait neither cancels the shared
        future when this waiter is cancelled, nor swallows that cancellation (see
        ``_subscribe``)."""
        await asyncio.wait([confirmation], timeout=self._connect_within)
        if not confirmation.done() and self._healthy:
            # Past the deadline, first let the reader read what has already arrived (as it
            # does for its own, ``_read``): a starved event loop, not Redis, may have held
            # the confirmation up. At most as long again (a reader held up for good).
            await asyncio.wait(
                [confirmation, self._read_through()],
                timeout=self._connect_within,
                return_when=asyncio.FIRST_COMPLETED,
            )
        if not confirmation.done() or confirmation.cancelled():
            raise RedisUnavailable("Redis did not confirm the pub/sub subscription")

    def _read_through(self) -> asyncio.Future[None]:
        """A future the reader resolves once it has read all that has arrived by now (a read
        that found nothing, and nothing left unread), or cancels when it stops."""
        if self._read_all is None:
            self._read_all = asyncio.get_running_loop().create_future()
        return self._read_all

    def _confirm(self, message: dict[str, Any]) -> None:
        """A SUBSCRIBE's confirmation (the reader reads them in the order they were sent):
        its listener may start."""
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        self._awaiting.discard(channel)
        self._heard_again(channel)
        pending = self._unconfirmed.get(channel)
        if not pending:
            return  # the reader's own subscription on connecting, or a resubscription
        confirmation = pending.popleft()
        if not pending:
            del self._unconfirmed[channel]
        if not confirmation.done():
            confirmation.set_result(None)

    def _retell_once_confirmed(self, channels: set[str]) -> None:
        """The listeners and watchers of ``channels`` (subscribed again, not confirmed yet)
        were told to re-read: tell them again once Redis has confirmed them all."""
        self._retell |= channels
        self._retold |= channels

    def _heard_again(self, channel: str) -> None:
        """``channel`` is confirmed (or no longer needed): once every channel subscribed
        again is, their listeners re-read (see ``_retell``)."""
        if channel in self._retell:
            self._retell.discard(channel)
            if not self._retell:
                retold, self._retold = self._retold, set()
                self._missed(retold)

    def _cancel_unconfirmed(self) -> None:
        """The connection is gone (or the Hub closed): no confirmation comes for what was
        sent on it, and whoever waits for one must wake now."""
        pending, self._unconfirmed = self._unconfirmed, {}
        for confirmations in pending.values():
            for confirmation in confirmations:
                confirmation.cancel()

    def _require_connection(self) -> None:
        """Fail fast while the connection is down (called with the lock held, after
        ``_start``)."""
        if self._closed:
            raise RedisUnavailable("the pub/sub hub is closed")
        if not self._healthy or self._pubsub is None:
            raise RedisUnavailable("the pub/sub connection to Redis is down")

    async def _start(self) -> None:
        """Start the reader if needed, and the first time wait for its first connection
        attempt. Called without the lock: the reader takes it to subscribe (and releasing a
        held lock to wait, then retaking it, went wrong when cancelled while retaking it:
        the caller's ``async with`` then released a lock another task held)."""
        if self._closed:
            raise RedisUnavailable("the pub/sub hub is closed")
        if self._reader is None or self._reader.done():
            self._stopped_hearing("connecting")
            self._reader = asyncio.create_task(self._run(), name="pubsub-reader")
        if not self._tried.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connect_within):  # see _subscribe
                    await self._tried.wait()

    def _missed(self, channels: set[str] | None = None) -> None:
        """Tell the watchers and listeners (of ``channels``; of all when None) that notices
        may have been missed: they re-read current state."""
        watchers = [
            c for n, cs in self._watchers.items() if channels is None or n in channels for c in cs
        ]
        for callback in watchers:
            try:
                callback(None)
            except Exception:
                log.exception("pub/sub watcher failed on a reconnection")
        for name, listeners in list(self._listeners.items()):
            if channels is None or name in channels:
                for listener in list(listeners):
                    listener.offer(None)

    def _reconnected_silently(self, connection: AbstractConnection) -> None:
        """redis-py reconnects (and resubscribes) inside a read when the server answers
        again within its retries: messages of the gap are lost all the same, and those of
        the connection's channels go unheard until Redis confirms the resubscription
        (redis-py has sent it, before calling us). The listeners of the connection's
        channels re-read now, and again once it is confirmed; on a cluster, those of the
        other nodes' connections lost nothing and are not told."""
        if not self._holds(connection):
            # A cluster node's connection redis-py took back from us (a node pub/sub it
            # dropped goes back to the node's pool, for any command): nothing of ours lost.
            self._unwatch(connection)
            self._node_connections.discard(connection)
            return
        if self._healthy:
            self._stopped_hearing("reconnecting")
            channels = self._channels_on(connection)
            self._await(channels)
            self._retell_once_confirmed(channels)
            self.reconnects += 1
            self._missed(channels)

    def _pubsubs(self) -> list[PubSub]:
        """The pub/subs holding connections: the server's, or each node's on a cluster."""
        if isinstance(self._pubsub, ClusterPubSub):
            return cluster_pubsub.node_pubsubs(self._pubsub)
        return [self._pubsub] if self._pubsub is not None else []

    def _holds(self, connection: AbstractConnection) -> bool:
        return any(pubsub.connection is connection for pubsub in self._pubsubs())

    def _channels_on(self, connection: AbstractConnection) -> set[str]:
        for pubsub in self._pubsubs():
            if pubsub.connection is connection:
                return cluster_pubsub.channels_on(pubsub)
        return set()

    async def _run(self) -> None:
        """Connect, subscribe to every channel, read until the connection fails; again,
        with backoff, until the Hub is closed."""
        delay = self._backoff[0]
        ever_connected = False
        # ``_closed`` is checked as well as the task being cancelled: on Python 3.11 a
        # cancellation can be lost inside redis-py (its writes use asyncio.wait_for, which
        # drops a cancellation arriving as the write completes), and the reader would then
        # read on after ``close`` forever, holding up the app's shutdown.
        while not self._closed:
            # Confirmations are read too: a new listener waits for its own (``listen``).
            pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
            try:
                async with self._lock:
                    # A subscription with no channel yet: redis-py needs one before reading.
                    channels = {self.keys("chan", "_hub"), *self._listeners, *self._watchers}
                    # Bounded: a listen waits for this lock, and must fail fast, not wait
                    # out a server that accepts the connection but does not answer (stopped,
                    # or overloaded) for the client's socket timeout and retries (~30 s).
                    # Many channels take longer to send (a cluster: a command each), so the
                    # bound grows with them.
                    within = self._connect_within * (1 + len(channels) / 1000)
                    async with asyncio.timeout(within):  # see _subscribe
                        if isinstance(pubsub, ClusterPubSub):
                            self._routes.clear()
                            await pubsub.ssubscribe(*channels)
                            self._note_routes(pubsub)
                        else:
                            await pubsub.subscribe(*channels)
                    if pubsub.connection is not None:
                        pubsub.connection.register_connect_callback(self._reconnected_silently)
                    if self._closed:
                        return  # closed while connecting (its cancellation may be lost)
                    self._pubsub = pubsub
                    self._awaiting.clear()
                    self._await(channels)  # confirmed as the reader reads on
                    if ever_connected:
                        # Told when the connection was lost; again once Redis has every
                        # channel: whatever came while we were away, or before that.
                        self._retell_once_confirmed(channels)
                    self._healthy = True
                self._tried.set()
                delay = self._backoff[0]
                if ever_connected:
                    self.reconnects += 1
                    log.warning("pub/sub connection restored; re-read once confirmed")
                ever_connected = True
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                self._tried.set()
                if self._healthy:
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                    self._stopped_hearing(f"connection lost ({type(exc).__name__})")
                    self._healthy = False
                    self._missed()
                else:
                    self._unheard_why = f"cannot connect ({type(exc).__name__})"
                    log.debug("pub/sub reconnect failed: %s", exc)
            finally:
                if self._healthy:  # cancelled, or the Hub closed, while reading
                    self._stopped_hearing("stopped")
                self._healthy = False
                self._awaiting.clear()
                self._dropped_unheard.clear()
                self._retell.clear()  # (starting over tells everyone anyway)
                self._retold.clear()
                self._cancel_unconfirmed()
                if self._read_all is not None:
                    self._read_all.cancel()  # nothing more is read on this connection
                    self._read_all = None
                if self._pubsub is pubsub:
                    self._pubsub = None
                # Pooled (a cluster node's too): must not call us when used for other things.
                if pubsub.connection is not None:
                    pubsub.connection.deregister_connect_callback(self._reconnected_silently)
                self._forget_node_connections(set())
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay = min(delay * 2, self._backoff[1])

    def _await(self, channels: set[str]) -> None:
        """Note subscriptions sent and not confirmed yet, and by when they must be."""
        if channels:
            within = self._confirm_within * (1 + len(channels) / 1000)  # as for sending
            self._awaiting_until = max(self._awaiting_until, time.monotonic() + within)
            self._awaiting |= channels

    def _check_confirmed(self) -> None:
        """Raise (the reader then starts over) when a subscription is still unconfirmed
        past its deadline."""
        if self._awaiting and time.monotonic() > self._awaiting_until:
            raise ConnectionError(
                f"Redis did not confirm {len(self._awaiting)} subscription(s) in time "
                f"(e.g. {sorted(self._awaiting)[0]})"
            )

    def _note_routes(self, pubsub: ClusterPubSub) -> set[str]:
        """Record which node holds each channel (and watch the node connections for silent
        reconnections); return the channels known before that are now held elsewhere."""
        routes = cluster_pubsub.routes(pubsub)
        moved = {
            channel for channel, node in routes.items() if self._routes.get(channel, node) != node
        }
        # A channel redis-py is moving (its SUNSUBSCRIBE sent to the old node, its SSUBSCRIBE
        # not yet made on the new one: its reconciliation runs in a task of its own) is in
        # no node's books for a moment. Its last node is kept: forgotten, its arrival on the
        # new node looked like a first subscription, and the move went untold.
        needed = self._needed()
        in_transit = {c: n for c, n in self._routes.items() if c not in routes and c in needed}
        self._routes = {**in_transit, **routes}
        connections: set[AbstractConnection] = set()
        for node_pubsub in cluster_pubsub.node_pubsubs(pubsub):
            connection: AbstractConnection | None = node_pubsub.connection
            if connection is not None:
                connections.add(connection)
                if connection not in self._node_connections:
                    connection.register_connect_callback(self._reconnected_silently)  # type: ignore[no-untyped-call]
        self._forget_node_connections(connections)
        return moved

    def _follow_routes(self, pubsub: ClusterPubSub) -> None:
        """Channels that a failover or a slot migration moved: what was published meanwhile
        may be lost, and redis-py has sent their SSUBSCRIBE to the new node. They are
        awaited as a resubscription is (not heard, so ``subscribed`` false, until that node
        confirms them; the reader starts over if it never does) before their listeners are
        told to re-read."""
        moved = self._note_routes(pubsub) & self._needed()
        if moved and self._healthy:
            # Those already awaited (dropped by their node, or after a reconnection) were
            # not heard since their listeners were told.
            untold = moved - self._awaiting
            self._await(moved)
            self._retell_once_confirmed(moved)  # (told again once the new node has them)
            if untold:
                self._stopped_hearing("channels moved")
                self.reconnects += 1
                log.warning("pub/sub channels moved to another node; subscribers re-read state")
                self._missed(untold)

    def _forget_node_connections(self, kept: set[AbstractConnection]) -> None:
        """Stop watching the node connections not in ``kept``: redis-py gave them back to
        their node's pool, whose other commands connecting them again lose us nothing."""
        for connection in self._node_connections - kept:
            self._unwatch(connection)
        self._node_connections = kept

    def _unwatch(self, connection: AbstractConnection) -> None:
        connection.deregister_connect_callback(self._reconnected_silently)  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        # redis-py polls a cluster's nodes one after another, each for a share of the
        # timeout: a short one bounds how long a notice on one node waits for another's.
        wait = SHARDED_POLL_SECONDS if isinstance(pubsub, ClusterPubSub) else 1.0
        while not self._closed:  # see _run
            if self._awaiting and time.monotonic() > self._awaiting_until:
                # Past the deadline, first read what has already arrived: a starved event
                # loop, not Redis, may have held the confirmations up (they wait in the
                # socket, or were read by a poll whose timeout ran out meanwhile).
                until = time.monotonic() + 1.0  # (a busy channel must not hold it off)
                while time.monotonic() < until and await self._read_one(pubsub, DRAIN_SECONDS):
                    pass
                if not await self._received_unread():
                    self._check_confirmed()
            read = await self._read_one(pubsub, wait)
            asked = self._read_all
            if asked is not None and not read and not await self._received_unread():
                # Nothing came within the wait, nothing is left unread: all that had
                # arrived when this was asked for has been read.
                if self._read_all is asked:
                    self._read_all = None
                if not asked.done():
                    asked.set_result(None)
            if self._dropped_unheard and isinstance(pubsub, ClusterPubSub):
                # A node drops all its channels of a slot at once: read its other drops
                # first, to subscribe them again together (resubscribing one moves the
                # others in redis-py, whose drops, read later, would look like its own).
                until = time.monotonic() + 1.0
                while time.monotonic() < until and await self._read_one(pubsub, DRAIN_SECONDS):
                    pass
                await self._resubscribe_dropped(pubsub)

    async def _received_unread(self) -> bool:
        """Whether a connection of ours holds what Redis sent and nobody read yet: after a
        failed read redis-py skips that node for a while (a second), though it has made the
        connection again and resubscribed, and the confirmations wait there meanwhile."""
        for pubsub in self._pubsubs():
            connection = pubsub.connection
            if connection is not None and connection.is_connected:
                with contextlib.suppress(RedisError, OSError):
                    if await connection.can_read():
                        return True
        return False

    async def _read_one(self, pubsub: PubSub, within: float) -> bool:
        """Read one message (a confirmation or a notice) and act on it; False when none
        came ``within`` that many seconds."""
        leaving: set[str] = set()
        if isinstance(pubsub, ClusterPubSub):
            leaving = cluster_pubsub.leaving(pubsub)
            message = await pubsub.get_sharded_message(timeout=within)
            self._follow_routes(pubsub)  # (before a confirmation it read is handled)
        else:
            message = await pubsub.get_message(timeout=within)
        if message is None:
            return False
        kind = message.get("type")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind in ("subscribe", "ssubscribe"):
            self._confirm(message)
        elif kind in ("message", "smessage"):
            self._deliver(message)
        elif kind == "sunsubscribe" and isinstance(pubsub, ClusterPubSub):
            self._note_dropped(pubsub, _name(message["channel"]), leaving)
        # A single server sends no UNSUBSCRIBE unasked: an ACL change that takes a channel
        # away closes the connection (Redis 7), which the reader makes again.
        return True

    def _note_dropped(self, pubsub: ClusterPubSub, channel: str, leaving: set[str]) -> None:
        """A SUNSUBSCRIBE read: when its node dropped the channel unasked (a failover made the
        node a replica, or a slot migration took the slot away), it is no longer heard. Not
        one asked for: the Hub's own (a channel no longer needed, or subscribed again since),
        or redis-py's moving a channel (its reply was awaited, or the node it came from no
        longer holds the channel in redis-py's books). redis-py keeps the dropped channel as
        subscribed; the old master, now a replica, answers it no MOVED; so the Hub must
        subscribe it again (``_resubscribe_dropped``)."""
        if channel in leaving or channel not in self._needed() or not self._healthy:
            return
        if channel in self._awaiting or channel in self._unconfirmed:
            return  # a subscription is on its way: its confirmation (or deadline) decides
        if channel in cluster_pubsub.routes(pubsub):  # held by a node, not leaving it
            self._dropped_unheard.add(channel)
            self._await({channel})  # not heard from now on; the deadline applies
            self._retell_once_confirmed({channel})

    async def _resubscribe_dropped(self, pubsub: ClusterPubSub) -> None:
        """Subscribe the dropped channels again where their slot now lives: refresh
        redis-py's slot map (nothing else would: no command of ours meets a MOVED), which
        moves every channel whose node changed, and SSUBSCRIBE the dropped ones (on the
        same node if the map has not changed yet: a replica still hears its shard's notices,
        and a later refresh moves them). Listeners re-read now and again once Redis has
        confirmed them all (``_heard_again``): what was published before that is lost. A
        failure here makes the reader start over; a confirmation that never comes too."""
        dropped, self._dropped_unheard = self._dropped_unheard, set()
        self._stopped_hearing("channels dropped by their node")
        self.reconnects += 1
        log.warning(
            "pub/sub: %d channel(s) dropped by their node (a failover or a slot migration); "
            "resubscribing", len(dropped),
        )  # fmt: skip
        self._missed(dropped)
        async with self._lock, asyncio.timeout(self._connect_within):  # see _subscribe
            await cluster_pubsub.refresh_slots(pubsub)
            # Not those no longer needed, confirmed since (subscribed again by redis-py), or
            # with a subscription of their own on its way (a listen or watch since).
            again = (dropped & self._needed() & self._awaiting) - self._unconfirmed.keys()
            if again:
                await pubsub.ssubscribe(*again)
            self._follow_routes(pubsub)

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
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
        # Until none is left: a publish that fails meanwhile starts the resender, which the
        # first look did not see.
        deadline = asyncio.get_running_loop().time() + within
        while self._background:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.wait(set(self._background), timeout=left)

    async def close(self) -> None:
        self._closed = True
        if self._unsent:
            log.warning("pub/sub hub closed with %d notice(s) unsent", self.unsent)
        self._unsent.clear()
        if self._resender is not None:
            self._resender.cancel()
        # Wake at once whoever waits for a confirmation or for the first connection,
        # whatever the reader is doing.
        self._cancel_unconfirmed()
        self._tried.set()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()


def _name(channel: object) -> str:
    return channel.decode() if isinstance(channel, bytes) else str(channel)


def _connected(pubsub: PubSub, channel: str) -> bool:
    """Whether a command about ``channel`` would go out on a connection that is up (on a
    cluster: its node's, or a new one). Only the reader makes a lost connection again: a
    subscriber whose command made it (redis-py connects on a command) did so beside the
    reader's own reconnection, and the two read the same socket (RuntimeError: readuntil()
    called while another coroutine is already waiting), an internal error for a request
    while Redis was restarting."""
    if isinstance(pubsub, ClusterPubSub):
        node = pubsub.cluster.get_node_from_key(channel)
        node_pubsub = pubsub.node_pubsub_mapping.get(node.name) if node is not None else None
        if node_pubsub is None or node_pubsub.connection is None:
            return True  # a connection of its own, which no one reads yet
        return bool(node_pubsub.connection.is_connected)
    return pubsub.connection is not None and bool(pubsub.connection.is_connected)
