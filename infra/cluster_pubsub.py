"""What redis-py's cluster pub/sub keeps of its shard channels, read in one place.

On a Redis Cluster the Hub (``infra.pubsub``) must know what redis-py's public API does not
tell (``ClusterPubSub`` offers subscribing, unsubscribing and reading, checked on redis-py
8.2):

- which node holds each channel's subscription: to notice a channel redis-py moved to
  another node (a failover, a slot migration; notices may have been lost meanwhile), and to
  tell only the listeners of one node whose connection was made again;
- whether a SUNSUBSCRIBE the reader reads was asked for (the Hub's own, or redis-py moving a
  channel) or is a node dropping the channel unasked (a failover made it a replica, a slot
  migration took the slot away), which redis-py does not act on;
- each node's connection: to hear of redis-py making it again inside a read, and to see
  whether it holds replies nobody read yet.

They are read here, and only here, from ``ClusterPubSub.node_pubsub_mapping`` (node name ->
that node's ``PubSub``) and each ``PubSub``'s ``shard_channels``,
``pending_unsubscribe_shard_channels`` and ``connection``. ``require`` checks that shape
when a Hub is made on a cluster: a redis-py that changed it fails at start with
``RedisInternalsChanged``, rather than a Hub that silently stops following moved channels.
``VERIFIED_WITH`` names the redis-py versions the cluster test pass
(``CHANNELBOARD_TEST_REDIS_CLUSTER=1``, the last stage of ``.ci/run``) has run against;
``tests/infra/test_cluster_pubsub.py`` fails, in every pass, on any other.
"""

from __future__ import annotations

import inspect

import redis
from redis.asyncio import RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub
from redis.asyncio.connection import AbstractConnection

# major.minor of the redis-py releases whose internals, as read here, the cluster tests
# (tests/infra/test_pubsub_cluster.py, test_redis_cluster.py) have passed against.
VERIFIED_WITH = ("8.2",)


class RedisInternalsChanged(RuntimeError):
    """The installed redis-py no longer keeps its cluster pub/sub state as read here."""


def require(client: RedisCluster) -> None:
    """Raise RedisInternalsChanged unless ``client``'s pub/sub keeps the state read here
    (made without connecting)."""
    pubsub = client.pubsub()
    expected = {
        "ClusterPubSub.node_pubsub_mapping (a dict)": isinstance(
            getattr(pubsub, "node_pubsub_mapping", None), dict
        ),
        "PubSub.shard_channels (a dict)": isinstance(getattr(pubsub, "shard_channels", None), dict),
        "PubSub.pending_unsubscribe_shard_channels (a set)": isinstance(
            getattr(pubsub, "pending_unsubscribe_shard_channels", None), set
        ),
        "PubSub.connection": "connection" in vars(pubsub),
        "RedisCluster.nodes_manager.initialize (a coroutine)": inspect.iscoroutinefunction(
            getattr(client.nodes_manager, "initialize", None)
        ),
        **{
            f"AbstractConnection.{name}": hasattr(AbstractConnection, name)
            for name in (
                "register_connect_callback",
                "deregister_connect_callback",
                "can_read",
                "is_connected",
            )  # fmt: skip
        },
    }
    missing = [what for what, there in expected.items() if not there]
    if missing:
        raise RedisInternalsChanged(
            f"redis-py {redis.__version__} lacks what channelboard's pub/sub hub reads of its "
            f"cluster pub/sub ({', '.join(missing)}); infra/cluster_pubsub.py was verified "
            f"with redis-py {', '.join(VERIFIED_WITH)}: install one of those, or adapt it"
        )


def node_pubsubs(pubsub: ClusterPubSub) -> list[PubSub]:
    """The nodes' pub/subs, one per node holding channels (each with its connection)."""
    return list(pubsub.node_pubsub_mapping.values())


def routes(pubsub: ClusterPubSub) -> dict[str, str]:
    """Channel -> the name of the node holding its subscription (not leaving it)."""
    held: dict[str, str] = {}
    for node, node_pubsub in list(pubsub.node_pubsub_mapping.items()):
        leaving = node_pubsub.pending_unsubscribe_shard_channels
        for channel in list(node_pubsub.shard_channels):
            if channel not in leaving:
                held[name(channel)] = node
    return held


def leaving(pubsub: ClusterPubSub) -> set[str]:
    """The channels whose SUNSUBSCRIBE redis-py has sent (for the Hub, or to move them to
    another node) and whose reply it has not read."""
    return {
        name(channel)
        for node_pubsub in node_pubsubs(pubsub)
        for channel in list(node_pubsub.pending_unsubscribe_shard_channels)
    }


def channels_on(pubsub: PubSub) -> set[str]:
    """The channels a pub/sub (a single server's, or one node's) holds."""
    return {name(channel) for channel in [*pubsub.channels, *pubsub.shard_channels]}


async def refresh_slots(pubsub: ClusterPubSub) -> None:
    """Read the cluster's slot map again; redis-py then moves every channel whose slot has
    another owner (its own reconciliation, on the slot map's change)."""
    await pubsub.cluster.nodes_manager.initialize()


def name(channel: object) -> str:
    return channel.decode() if isinstance(channel, bytes) else str(channel)
