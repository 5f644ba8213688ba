"""The Hub reads what redis-py's cluster pub/sub keeps of its nodes and channels
(``infra.cluster_pubsub``), which redis-py offers no public API for. These tests fail
loudly when redis-py changes under it: in every pass (a single server needs no cluster to
construct a cluster client), on a redis-py the cluster tests have not verified or whose
state is no longer where it was; on the local cluster, when what is read there no longer
says which node holds which channel."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.asyncio import RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub

from infra import cluster_pubsub
from infra.pubsub import Hub
from infra.redis import Keys, connect
from tests.ports import free_port
from tests.redis_cluster import LocalCluster


def _unconnected_cluster_client() -> RedisCluster:
    """A cluster client that never connects (none of these tests makes it)."""
    return RedisCluster.from_url(f"redis://127.0.0.1:{free_port()}/0")


def test_the_installed_redis_py_is_one_the_cluster_tests_verified() -> None:
    installed = ".".join(redis.__version__.split(".")[:2])
    assert installed in cluster_pubsub.VERIFIED_WITH, (
        f"redis-py {redis.__version__}: the pub/sub hub reads its cluster pub/sub internals "
        "(infra/cluster_pubsub.py). Run the cluster tests (CHANNELBOARD_TEST_REDIS_CLUSTER=1, "
        "the last stage of .ci/run), adapt the module if they fail, then add "
        f"{installed!r} to VERIFIED_WITH"
    )


async def test_the_state_the_hub_reads_is_where_it_expects() -> None:
    client = _unconnected_cluster_client()
    try:
        cluster_pubsub.require(client)
        assert Hub(client, Keys("unconnected")).sharded  # made without an error
    finally:
        await client.aclose()


async def test_a_redis_py_that_moved_it_fails_the_hub_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pub/sub without ``node_pubsub_mapping`` (stood in for: a single server's) is what a
    redis-py that renamed it would give: the Hub must refuse to start, naming what is
    missing and the version, rather than run deaf to channels that move."""
    client = _unconnected_cluster_client()
    try:
        monkeypatch.setattr(client, "pubsub", lambda: PubSub(None, encoder=client.encoder))
        with pytest.raises(cluster_pubsub.RedisInternalsChanged) as refused:
            Hub(client, Keys("unconnected"))
        assert "node_pubsub_mapping" in str(refused.value)
        assert f"redis-py {redis.__version__}" in str(refused.value)
    finally:
        await client.aclose()


async def test_the_routes_read_name_the_node_holding_each_channel(
    local_cluster: LocalCluster | None,
) -> None:
    if local_cluster is None:
        pytest.skip("needs CHANNELBOARD_TEST_REDIS_CLUSTER=1 (a local Redis Cluster)")
    client = connect(local_cluster.url, cluster=True)
    assert isinstance(client, RedisCluster)
    hub = Hub(client, Keys(f"hubroutes-{uuid.uuid4().hex[:8]}"))
    channels = [hub.channel(f"c{i}") for i in range(12)]
    try:
        for channel in channels:
            await hub.watch(channel, lambda _message: None)
        pubsub = hub._pubsub  # noqa: SLF001 - what the Hub reads from
        assert isinstance(pubsub, ClusterPubSub)
        routes = cluster_pubsub.routes(pubsub)
        for channel in channels:
            assert routes[channel] == f"127.0.0.1:{local_cluster.node_of(channel)}"
        assert len(set(routes.values())) > 1  # (spread over the nodes)
        assert cluster_pubsub.leaving(pubsub) == set()
        held = set().union(*map(cluster_pubsub.channels_on, cluster_pubsub.node_pubsubs(pubsub)))
        assert set(channels) <= held
    finally:
        await hub.close()
        await client.aclose()
