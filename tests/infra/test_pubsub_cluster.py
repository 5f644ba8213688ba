"""The Hub on a Redis Cluster (sharded pub/sub), against the real local cluster
(CHANNELBOARD_TEST_REDIS_CLUSTER=1): a node connection the Hub is done with goes back to
the node's pool and is reused for other commands without telling the Hub's listeners
anything, and a channel that moved to another node is awaited as a resubscription is."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable

import pytest
from redis import Redis

from infra.pubsub import Hub
from infra.redis import Keys, connect
from tests.redis_cluster import LocalCluster
from tests.support import eventually


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
    cluster: LocalCluster,
) -> None:
    """A failover moves a watched channel to the promoted replica. When the Hub tells its
    watchers to re-read, the channel's SSUBSCRIBE on the new master is sent but not yet
    confirmed: ``subscribed`` (what the read caches serve on, and /readyz's ``live``) must
    say so then, or a cache re-reads and keeps what it read while a change is unheard.
    Once confirmed, the Hub is subscribed again and the moved channel is heard."""
    redis = connect(cluster.url, cluster=True)
    hub = Hub(redis, Keys(f"hubmoved-{uuid.uuid4().hex[:8]}"))
    told: list[tuple[bool, str | None]] = []
    heard: list[bytes] = []

    def watcher(message: bytes | None) -> None:
        if message is None:  # what the Hub says at the moment it tells us to re-read
            told.append((hub.subscribed, hub.live_problem()))
        else:
            heard.append(message)

    try:
        watched = hub.channel("watched")
        await hub.watch(watched, watcher)
        assert hub.subscribed
        old = cluster.node_of(watched)
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
    finally:
        await hub.close()
        await redis.aclose()
