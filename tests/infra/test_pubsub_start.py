"""``Hub.listen`` promises that the Redis subscription is confirmed before the block
starts, so nothing published after entering is missed. A real Redis behind a proxy this
test can hold: the listener's SUBSCRIBE is held on its way to Redis until the listener has
published (or, when ``listen`` rightly waits for the confirmation, for at most a second;
that bound only ends the hold, no assertion depends on it). A listen waiting for its
confirmation must wake when the Hub is closed or the connection is lost (an app's shutdown
must not wait on it)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from infra.pubsub import Hub
from infra.redis import EmbeddedRedis, Keys, RedisUnavailable, connect
from tests.redis_cluster import LocalCluster
from tests.redis_proxy import HoldingProxy
from tests.support import ToldProbe, eventually


async def test_what_is_published_once_listen_has_entered_is_heard(
    redis_url: str, local_cluster: LocalCluster | None
) -> None:
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    keys = Keys(f"hubstart-{uuid.uuid4().hex[:8]}")
    proxy = HoldingProxy(redis_url, keys("chan", "_hub").encode())
    async with proxy.running() as port:
        proxied = connect(f"redis://127.0.0.1:{port}/0")  # (pub/sub ignores the db)
        publisher = connect(redis_url)
        hub = Hub(proxied, keys)
        channel = hub.channel("a")
        published = asyncio.Event()

        async def hold_until_published() -> None:
            await proxy.holding.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await published.wait()
            proxy.release.set()

        holder = asyncio.create_task(hold_until_published())
        try:
            async with hub.listen(channel) as listener:
                receivers = await publisher.publish(channel, b"first")
                published.set()
                assert receivers == 1, "published before Redis had the subscription"
                assert await listener.get() == b"first"
        finally:
            holder.cancel()
            await hub.close()
            await proxied.aclose()
            await publisher.aclose()


@pytest.mark.parametrize("ending", ["close", "connection lost"])
async def test_a_listen_waiting_for_its_confirmation_wakes_when_the_hub_stops(
    redis_url: str, local_cluster: LocalCluster | None, ending: str
) -> None:
    """The SUBSCRIBE is held for the whole test, and the Hub would wait an hour for its
    confirmation: closing the Hub (or losing the connection) must end the wait, with
    RedisUnavailable and without entering the block (the test hangs otherwise)."""
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    keys = Keys(f"hubstop-{uuid.uuid4().hex[:8]}")
    proxy = HoldingProxy(redis_url, keys("chan", "_hub").encode())
    async with proxy.running() as port:
        proxied = connect(f"redis://127.0.0.1:{port}/0")
        hub = Hub(proxied, keys, connect_within=3600, backoff=(3600, 3600))
        entered = False

        async def listen() -> None:
            nonlocal entered
            async with hub.listen(hub.channel("a")):
                entered = True

        listening = asyncio.create_task(listen())
        try:
            await proxy.holding.wait()  # the SUBSCRIBE is sent, and held
            if ending == "close":
                await hub.close()
            else:
                proxy.drop()
            with pytest.raises(RedisUnavailable):
                await listening
            assert not entered
        finally:
            listening.cancel()
            await hub.close()
            await proxied.aclose()


async def test_a_listen_fails_fast_while_redis_accepts_connections_but_does_not_answer() -> None:
    """A stopped or overloaded server accepts the connection and says nothing. The reader's
    attempt to connect holds the Hub's lock; were it not bounded by ``connect_within``, a
    listen would wait out the client's socket timeout and retries (~30 s) for that lock.
    The outer bound only ends a hang: it is no measure of speed."""
    silent_clients: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_clients.append(writer)
        while await reader.read(65536):
            pass  # read and never answer

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    unanswering = connect(f"redis://127.0.0.1:{port}/0")
    hub = Hub(unanswering, Keys(f"hubsilent-{uuid.uuid4().hex[:8]}"), connect_within=0.5)
    try:
        async with asyncio.timeout(8):
            for _ in range(2):  # the first listen, and one during the reader's retries
                with pytest.raises(RedisUnavailable):
                    async with hub.listen(hub.channel("a")):
                        pytest.fail("entered without a subscription")
        assert not hub.subscribed
    finally:
        await hub.close()
        await unanswering.aclose()
        server.close()
        for writer in silent_clients:
            writer.close()


async def test_a_subscription_never_confirmed_makes_the_hub_start_over(
    redis_url: str, local_cluster: LocalCluster | None
) -> None:
    """A resubscription whose confirmation never comes (lost on its way: a cluster node
    that no longer holds the channel's slot) would keep ``subscribed`` false, so the read
    caches off and /readyz at 503, for good. Past ``confirm_within`` the reader starts over
    on a new connection, which subscribes to everything again. (The lost confirmation is
    stood in for: a channel noted as awaiting one that will not come.)"""
    redis = connect(redis_url, cluster=local_cluster is not None)
    hub = Hub(redis, Keys(f"hubconfirm-{uuid.uuid4().hex[:8]}"), confirm_within=0.5)
    try:
        async with hub.listen(hub.channel("a")) as listener:
            assert hub.subscribed
            hub._await({hub.channel("lost")})  # noqa: SLF001 - the confirmation that never comes
            assert not hub.subscribed
            async with asyncio.timeout(15):
                while (await listener.get()) is not None:
                    pass  # told that the connection was made again: re-read

            async def resubscribed() -> bool:
                return hub.subscribed

            await eventually(resubscribed, within=15)
            assert hub.reconnects >= 1
    finally:
        await hub.close()
        await redis.aclose()


async def test_a_watch_never_confirmed_keeps_the_caches_off_and_makes_the_hub_start_over(
    redis_url: str, local_cluster: LocalCluster | None
) -> None:
    """A channel watched once the Hub is up (a read cache's first contest) is not heard
    until Redis confirms its SUBSCRIBE: ``subscribed`` (what the read caches serve on) must
    say so meanwhile, and a confirmation that never comes (the SUBSCRIBE lost on its way,
    stood in for by not sending it) must make the reader start over, as for a
    resubscription, instead of leaving the watcher deaf and /readyz at 503 for good."""
    if local_cluster is not None:
        pytest.skip("the lost SUBSCRIBE is stood in for on a single connection")
    redis = connect(redis_url)
    hub = Hub(redis, Keys(f"hubwatch-{uuid.uuid4().hex[:8]}"), confirm_within=0.5)
    heard: list[bytes | None] = []
    try:
        async with hub.listen(hub.channel("a")):
            assert hub.subscribed
            pubsub = hub._pubsub  # noqa: SLF001 - the connection whose SUBSCRIBE is lost
            assert pubsub is not None

            async def lost(*channels: object) -> None:
                return None

            pubsub.subscribe = lost  # type: ignore[method-assign]
            await hub.watch(hub.channel("watched"), heard.append)
            assert not hub.subscribed  # not heard yet: the caches must not serve

            async def heard_again() -> bool:
                await hub.publish(hub.channel("watched"), b"7")
                return hub.subscribed and b"7" in heard

            await eventually(heard_again, within=15)
            assert hub.reconnects >= 1
            assert None in heard  # told to re-read
            assert hub.live_problem() is None
    finally:
        await hub.close()
        await redis.aclose()


async def test_confirmations_held_up_by_a_starved_event_loop_do_not_make_the_hub_start_over(
    redis_url: str, local_cluster: LocalCluster | None, tmp_path: Path
) -> None:
    """The subscription connection is killed and redis-py makes it again within its read,
    resubscribing. The event loop is then starved past ``confirm_within`` (a watcher told
    to re-read blocks it), while Redis's confirmations arrive in the socket. They came in
    time: the reader must read what has arrived before deciding one is missing, not start
    over (one more "re-read" for every listener, and a needless reconnection)."""
    server: EmbeddedRedis | None = None
    if local_cluster is None:  # a server of its own: CLIENT KILL reaches only this Hub
        server = EmbeddedRedis(tmp_path / "redis")
        url = server.start()
    else:
        url = redis_url
    redis = connect(url, cluster=local_cluster is not None)
    hub = Hub(redis, Keys(f"hubstarved-{uuid.uuid4().hex[:8]}"), confirm_within=0.3)
    # Several channels on one connection (on a cluster: one node), so that several
    # confirmations wait in its socket; on a cluster one on another node too, or redis-py
    # would raise the killed node's error, as the only node's (the Hub then starts over).
    names = (hub.channel(f"c{i}") for i in itertools.count())
    if local_cluster is not None:
        node = local_cluster.node_of(hub.channel("_hub"))
        elsewhere = next(name for name in names if local_cluster.node_of(name) != node)
        names = (name for name in names if local_cluster.node_of(name) == node)
        killer = Redis(host="127.0.0.1", port=node)
    else:
        elsewhere = next(names)
        killer = Redis.from_url(url)
    watched, listened = next(names), next(names)
    starved: list[float] = []

    def watcher(message: bytes | None) -> None:
        if message is None and not starved:
            started = time.monotonic()
            time.sleep(1.0)  # noqa: ASYNC251 - the starved event loop under test
            starved.append(time.monotonic() - started)

    try:
        await hub.watch(watched, watcher)
        async with hub.listen(listened) as listener, hub.listen(elsewhere):
            assert hub.subscribed
            killer.client_kill_filter(_type="pubsub")

            async def resubscribed() -> bool:
                return bool(starved) and hub.subscribed

            await eventually(resubscribed, within=15)
            await asyncio.sleep(0.5)  # a start-over would have begun by now
            assert hub.reconnects == 1, "started over with every confirmation received"
            # Told when the connection was lost and once the resubscription was confirmed; a
            # start-over would have told it a third time.
            told = [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]
            assert told == [None, None]
            assert hub.live_problem() is None
    finally:
        await hub.close()
        await redis.aclose()
        killer.close()
        if server is not None:
            server.stop()


async def test_a_listen_whose_confirmation_waits_unread_past_connect_within_enters(
    redis_url: str, local_cluster: LocalCluster | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop is starved past ``connect_within`` (stood in for: the reader held up
    that long) while Redis's confirmation of a listen's SUBSCRIBE waits in the socket. It
    came in time: the listen must let the reader read what has arrived before deciding it
    is missing, as the reader does for its own, not refuse the subscriber with
    RedisUnavailable (it did)."""
    redis = connect(redis_url, cluster=local_cluster is not None)
    hub = Hub(redis, Keys(f"hubheld-{uuid.uuid4().hex[:8]}"), connect_within=1.0)
    read_one = hub._read_one  # noqa: SLF001 - the reader's read, to hold it up
    hold = asyncio.Event()  # set: the reader's next read is held up first
    holding = asyncio.Event()

    async def held_up(pubsub: object, within: float) -> bool:
        if hold.is_set():
            hold.clear()
            holding.set()
            await asyncio.sleep(1.5)  # past connect_within, within twice that
        return await read_one(pubsub, within)  # type: ignore[arg-type]

    monkeypatch.setattr(hub, "_read_one", held_up)
    try:
        async with hub.listen(hub.channel("bystander")):
            hold.set()
            async with asyncio.timeout(5):
                await holding.wait()
            async with hub.listen(hub.channel("held")) as listener:
                await hub.publish(hub.channel("held"), b"heard")
                async with asyncio.timeout(5):
                    assert await listener.get() == b"heard"
            assert hub.reconnects == 0
            assert hub.live_problem() is None
    finally:
        await hub.close()
        await redis.aclose()


@pytest.mark.parametrize("reconnection", ["by redis-py within a read", "by the hub starting over"])
async def test_a_listener_is_told_to_re_read_once_its_resubscription_is_confirmed(
    redis_url: str, local_cluster: LocalCluster | None, reconnection: str
) -> None:
    """The subscription connection is lost and made again (redis-py's reconnection within its
    read, or the reader's on a new connection), and Redis's confirmation of the
    resubscription is held back. The listener is told at once that it may have missed
    notices, and re-reads then; a change published after that re-read and before Redis has
    the subscription is lost. It must be told again once the subscription is confirmed, or
    it keeps the stale state until the next change (before, it was told only when the
    resubscription was sent, and never heard of the change)."""
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    keys = Keys(f"hubreread-{uuid.uuid4().hex[:8]}")
    proxy = HoldingProxy(redis_url, keys("chan", "_hub").encode(), hold_marker=True)
    proxy.release.set()  # the first subscription passes
    async with proxy.running() as port:
        proxied = connect(f"redis://127.0.0.1:{port}/0")
        publisher = connect(redis_url)
        hub = Hub(proxied, keys, backoff=(0.05, 0.1))
        channel = hub.channel("a")
        try:
            async with hub.listen(channel, into=ToldProbe(hub, channel)) as listener:
                assert isinstance(listener, ToldProbe)
                assert hub.subscribed
                proxy.release.clear()  # the resubscription is held on its way to Redis
                proxy.refusing = reconnection == "by the hub starting over"
                proxy.cut()
                async with asyncio.timeout(10):
                    assert await listener.get() is None  # told at once: re-read
                proxy.refusing = False
                async with asyncio.timeout(10):
                    await proxy.holding.wait()
                # The listener has re-read; then a change, while Redis lacks the subscription.
                assert await publisher.publish(channel, b"unheard") == 0
                assert not hub.subscribed
                # (Re-read already: any other None so far was offered before the change.)
                early = [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]
                assert set(early) <= {None}
                proxy.release.set()

                async def confirmed() -> bool:
                    return hub.subscribed

                await eventually(confirmed, within=10)
                async with asyncio.timeout(5):
                    assert await listener.get() is None, "not told to re-read once confirmed"
                assert listener.told[-1], "told before the subscription was confirmed"
                await asyncio.sleep(0.2)
                assert listener.queue.empty(), "told more than once more"
                await publisher.publish(channel, b"heard")
                async with asyncio.timeout(5):
                    assert await listener.get() == b"heard"
        finally:
            proxy.release.set()
            await hub.close()
            await proxied.aclose()
            await publisher.aclose()


async def test_a_subscriber_leaves_making_a_lost_connection_again_to_the_reader(
    redis_url: str, local_cluster: LocalCluster | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is lost between two of the reader's reads, and a watch (a read
    cache's first contest) and a listen (a new websocket subscription) come as the reader
    makes it again. Their SUBSCRIBE made the connection again too (redis-py connects on a
    command), beside the reader: both read the same socket's handshake (RuntimeError:
    readuntil() called while another coroutine is already waiting), a masked internal error
    for a GraphQL read while Redis was restarting (found by killing Redis under a server).
    Only the reader makes it: the listen is refused (RedisUnavailable), and the watcher is
    heard once the reader has subscribed it."""
    if local_cluster is not None:
        pytest.skip("the lost connection is stood in for on a single server's")
    redis = connect(redis_url)
    hub = Hub(redis, Keys(f"hubrace-{uuid.uuid4().hex[:8]}"), confirm_within=0.5)
    read_one = hub._read_one  # noqa: SLF001 - the reader's read, to hold it between two
    hold, holding, go = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def held(pubsub: object, within: float) -> bool:
        if hold.is_set():
            hold.clear()
            holding.set()
            await go.wait()
        return await read_one(pubsub, within)  # type: ignore[arg-type]

    monkeypatch.setattr(hub, "_read_one", held)
    heard: list[bytes | None] = []
    try:
        async with hub.listen(hub.channel("bystander")):
            hold.set()
            async with asyncio.timeout(5):
                await holding.wait()
            pubsub = hub._pubsub  # noqa: SLF001 - its connection is lost
            assert pubsub is not None
            assert pubsub.connection is not None
            await pubsub.connection.disconnect()
            go.set()  # the reader's next read makes the connection again, as this watches
            await hub.watch(hub.channel("watched"), heard.append)
            with pytest.raises(RedisUnavailable):
                async with hub.listen(hub.channel("refused")):
                    pass

            async def heard_again() -> bool:
                await hub.publish(hub.channel("watched"), b"7")
                return b"7" in heard and hub.live_problem() is None

            await eventually(heard_again, within=15)
    finally:
        await hub.close()
        await redis.aclose()
