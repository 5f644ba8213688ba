"""The Hub on a Redis Cluster (sharded pub/sub), against the real local cluster
(CHANNELBOARD_TEST_REDIS_CLUSTER=1): a node connection the Hub is done with goes back to
the node's pool and is reused for other commands without telling the Hub's listeners
anything, a channel that moved to another node is awaited as a resubscription is, and a
channel its node dropped (a failover) is subscribed again where its slot now lives."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from infra.pubsub import Hub
from infra.redis import Keys, connect
from tests.redis_cluster import LocalCluster
from tests.support import ToldProbe, eventually


@pytest.fixture
def cluster(local_cluster: LocalCluster | None) -> LocalCluster:
    if local_cluster is None:
        pytest.skip("needs CHANNELBOARD_TEST_REDIS_CLUSTER=1 (a local Redis Cluster)")
    return local_cluster


def _on_node(cluster: LocalCluster, port: int, name: Callable[[int], str], n: int) -> list[str]:
    """The first ``n`` of ``name(0)``, ``name(1)``, … whose slot ``port`` serves."""
    names = (name(i) for i in itertools.count())
    return list(itertools.islice((s for s in names if cluster.node_of(s) == port), n))


async def test_a_node_connection_reused_for_other_commands_tells_listeners_nothing(
    cluster: LocalCluster,
) -> None:
    """A listen on a channel of its own node ends: redis-py drops that node's pub/sub and
    puts its connection back in the node's pool, where the client's next commands reuse
    it. Connecting it again is no reconnection of the Hub's: the other listeners must not
    be told to re-read (they were, for every reuse, with ``reconnects`` counting them)."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubreuse-{uuid.uuid4().hex[:8]}"))
    try:
        kept = hub.channel("kept")
        busy = {cluster.node_of(kept), cluster.node_of(hub.channel("_hub"))}
        other = next(port for port in cluster.masters() if port not in busy)
        [left] = _on_node(cluster, other, lambda i: hub.channel(f"left{i}"), 1)
        async with hub.listen(kept) as bystander:
            async with hub.listen(left):
                pass

            async def dropped() -> bool:  # the SUNSUBSCRIBE reached the node
                node = Redis(host="127.0.0.1", port=other)
                [_, subscribers] = node.execute_command("PUBSUB", "SHARDNUMSUB", left)
                return int(subscribers) == 0

            await eventually(dropped, within=5)
            await asyncio.sleep(0.2)  # the reader has read the confirmation: node pub/sub gone
            keys = _on_node(cluster, other, lambda i: hub.keys("reuse", i), 4)
            for key in keys * 5:  # one after another: round the node's free connections
                await redis.set(key, b"1")
            await asyncio.gather(*(redis.set(key, b"2") for key in keys * 5))  # all at once
            await asyncio.sleep(0.2)

            assert bystander.queue.empty(), "told to re-read with nothing lost"
            assert hub.reconnects == 0
            assert hub.subscribed
            for key in keys:
                await redis.delete(key)
    finally:
        await hub.close()
        await redis.aclose()


async def test_a_moved_channel_is_not_heard_until_its_new_node_confirms_it(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failover moves a watched channel to the promoted replica. When the Hub tells its
    watchers to re-read, the channel's SSUBSCRIBE on the new master is sent but not yet
    confirmed: ``subscribed`` (what the read caches serve on, and /readyz's ``live``) must
    say so then, or a cache re-reads and keeps what it read while a change is unheard.
    Once confirmed, the Hub is subscribed again, the moved channel is heard, and its
    listeners are told to re-read again. A listener on another node is told nothing."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubmoved-{uuid.uuid4().hex[:8]}"))
    told: list[tuple[bool, str | None]] = []
    heard: list[bytes] = []

    def watcher(message: bytes | None) -> None:
        if message is None:  # what the Hub says at the moment it tells us to re-read
            told.append((hub.subscribed, hub.live_problem()))
        else:
            heard.append(message)

    # The old master's SUNSUBSCRIBE (the drop path, tested below) is not acted on: only the
    # move redis-py makes after a MOVED is under test here.
    monkeypatch.setattr(hub, "_note_dropped", lambda *_: None)
    watched = hub.channel("watched")
    try:
        await hub.watch(watched, watcher)
        old = cluster.node_of(watched)
        elsewhere = next(port for port in cluster.masters() if port != old)
        [aside] = _on_node(cluster, elsewhere, lambda i: hub.channel(f"aside{i}"), 1)
        async with (
            hub.listen(watched, into=ToldProbe(hub, watched)) as listener,
            hub.listen(aside) as bystander,
        ):
            assert hub.subscribed
            new = await asyncio.to_thread(cluster.failover, old)
            assert cluster.node_of(watched) == new

            async def moved() -> bool:
                # A write to the channel's slot meets a MOVED, after which redis-py moves the
                # channel (a SPUBLISH would not: the old master, now a replica, serves it).
                await redis.set(watched, b"1")
                return bool(told)

            await eventually(moved, within=20)
            await redis.delete(watched)
            subscribed, problem = told[0]
            assert not subscribed, "subscribed before the new node confirmed the channel"
            assert problem is not None
            assert problem.startswith("resubscribing since")

            async def heard_again() -> bool:
                await hub.publish(watched, b"after")
                return hub.subscribed and b"after" in heard

            await eventually(heard_again, within=15)
            assert hub.live_problem() is None

            # Its listener was told at the move, and again once the new node confirmed the
            # channel: a change published between a re-read at the move and the
            # confirmation is lost too (before, it was told only at the move).
            assert isinstance(listener, ToldProbe)
            assert listener.told[0] is False
            assert listener.told[-1] is True, "not told to re-read once confirmed"
            assert bystander.queue.empty(), "a listener on another node told to re-read"
    finally:
        await hub.close()
        await redis.aclose()


async def test_a_channel_dropped_by_a_failover_is_heard_again_without_a_command_on_its_slot(
    cluster: LocalCluster,
) -> None:
    """CLUSTER FAILOVER makes the channel's master a replica, which drops its shard
    subscriptions with a SUNSUBSCRIBE nobody asked for. The old master (a replica now)
    answers no MOVED, and no other command of the Hub's client touches the slot, so nothing
    else tells redis-py: the Hub must notice the drop itself. Its listeners are told to
    re-read while the channel is not heard (``subscribed`` false), and hear what is
    published through the new master afterwards (before, they heard nothing, for good,
    while ``subscribed`` stayed true)."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubdropped-{uuid.uuid4().hex[:8]}"))
    told: list[tuple[bool, str | None]] = []

    def watcher(message: bytes | None) -> None:
        if message is None:  # what the Hub says at the moment it tells us to re-read
            told.append((hub.subscribed, hub.live_problem()))

    publisher: AsyncRedis | None = None
    try:
        channel = hub.channel("dropped")
        await hub.watch(channel, watcher)
        async with hub.listen(channel) as listener:
            assert hub.subscribed
            old = cluster.node_of(channel)
            new = await asyncio.to_thread(cluster.failover, old)
            assert cluster.node_of(channel) == new
            publisher = AsyncRedis(host="127.0.0.1", port=new)
            received: list[bytes | None] = []

            async def heard_after_told() -> bool:
                await publisher.spublish(channel, b"after")
                while not listener.queue.empty():
                    received.append(listener.queue.get_nowait())
                return None in received and b"after" in received[received.index(None) :]

            await eventually(heard_after_told, within=10)
            assert told, "the watcher was not told to re-read"
            subscribed, problem = told[0]
            assert not subscribed, "subscribed before the channel's new node confirmed it"
            assert problem is not None
            # Told again once heard: what was published before the new node had the
            # subscription is lost too.
            assert told[-1] == (True, None)
            assert hub.subscribed
            assert hub.live_problem() is None
            assert hub.reconnects == 1, "redis-py's own moves taken for drops"
    finally:
        await hub.close()
        await redis.aclose()
        if publisher is not None:
            await publisher.aclose()


async def test_the_hubs_own_unsubscribes_are_not_taken_for_drops(cluster: LocalCluster) -> None:
    """A listen that ends unsubscribes its channel (the Hub's own SUNSUBSCRIBE), and a listen
    of it right after subscribes it again, often before the reply is read. Neither reply is
    a node dropping a channel: nobody is told to re-read, and the channel is heard."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubown-{uuid.uuid4().hex[:8]}"))
    try:
        channel = hub.channel("again")
        async with hub.listen(hub.channel("bystander")) as bystander:
            for turns in range(6):  # the next listen before, with and after the unsubscribe
                async with hub.listen(channel):
                    pass
                for _ in range(turns):
                    await asyncio.sleep(0)
            async with hub.listen(channel) as listener:
                await asyncio.sleep(0.3)  # every reply read
                assert bystander.queue.empty(), "told to re-read with nothing lost"
                assert listener.queue.empty()
                assert hub.reconnects == 0
                assert hub.subscribed
                await hub.publish(channel, b"heard")
                async with asyncio.timeout(5):
                    assert await listener.get() == b"heard"
    finally:
        await hub.close()
        await redis.aclose()


async def test_a_slot_migration_tells_the_moved_channels_listeners_only(
    cluster: LocalCluster,
) -> None:
    """An operator migrates a listened channel's slot to another master. The old master
    drops the channel (a SUNSUBSCRIBE nobody asked for); the Hub subscribes it again on the
    new owner. Its listener is told to re-read while the channel is not heard, and once
    more when the new owner has confirmed it, and then hears what is published there. A
    listener on a node the migration did not touch lost nothing and is told nothing (it was
    told to re-read, as for a lost connection)."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubmigrated-{uuid.uuid4().hex[:8]}"))
    try:
        moving = hub.channel("moving")
        source = cluster.node_of(moving)
        target, untouched = (port for port in cluster.masters() if port != source)
        [bystander_channel] = _on_node(cluster, untouched, lambda i: hub.channel(f"by{i}"), 1)
        async with (
            hub.listen(moving, into=ToldProbe(hub, moving)) as listener,
            hub.listen(bystander_channel) as bystander,
        ):
            assert isinstance(listener, ToldProbe)
            await asyncio.to_thread(cluster.migrate, moving, target)
            assert cluster.node_of(moving) == target
            received: list[bytes | None] = []

            async def heard_after_told() -> bool:
                await hub.publish(moving, b"after")
                while not listener.queue.empty():
                    received.append(listener.queue.get_nowait())
                return None in received and b"after" in received[received.index(None) :]

            await eventually(heard_after_told, within=15)
            assert listener.told[0] is False, "told while the new owner had the channel"
            assert listener.told[-1] is True, "not told again once the new owner confirmed it"
            assert hub.reconnects == 1
            assert hub.live_problem() is None
            assert bystander.queue.empty(), "a listener on another node told to re-read"
            await hub.publish(bystander_channel, b"still")
            async with asyncio.timeout(5):
                assert await bystander.get() == b"still"
    finally:
        await hub.close()
        await redis.aclose()


async def test_a_nodes_silent_reconnection_tells_that_nodes_listeners_only(
    cluster: LocalCluster,
) -> None:
    """One node's subscription connection is killed; redis-py makes it again within its
    read and subscribes its channels again. What was published there meanwhile may be
    lost: that node's listener is told to re-read, and again once the node has confirmed
    the resubscription. The other nodes' connections lost nothing: their listener must not
    be told (it was, at the first None: every listener of the process re-read)."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubsilent-{uuid.uuid4().hex[:8]}"))
    try:
        node = cluster.node_of(hub.channel("_hub"))
        other = next(port for port in cluster.masters() if port != node)
        [here] = _on_node(cluster, node, lambda i: hub.channel(f"here{i}"), 1)
        [there] = _on_node(cluster, other, lambda i: hub.channel(f"there{i}"), 1)
        async with (
            hub.listen(here, into=ToldProbe(hub, here)) as listener,
            hub.listen(there) as bystander,
        ):
            assert isinstance(listener, ToldProbe)
            killer = Redis(host="127.0.0.1", port=node)
            try:
                killer.client_kill_filter(_type="pubsub")
            finally:
                killer.close()

            async def told_twice() -> bool:
                return len(listener.told) >= 2 and hub.subscribed

            await eventually(told_twice, within=15)
            assert listener.told[-1] is True, "not told again once the node confirmed it"
            assert hub.reconnects == 1
            assert bystander.queue.empty(), "a listener on another node told to re-read"
            for channel, receiver in ((here, listener), (there, bystander)):
                await hub.publish(channel, b"heard")
                async with asyncio.timeout(5):
                    while (message := await receiver.get()) is None:
                        pass
                    assert message == b"heard"
    finally:
        await hub.close()
        await redis.aclose()
