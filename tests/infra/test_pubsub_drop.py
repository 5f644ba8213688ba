"""tests.support.drop_pubsub cuts the app's pub/sub connections only. On CI's PostgreSQL +
Redis pass both pytest-xdist workers (and other runs) share one Redis server: the tests
that cut the app's subscription used CLIENT KILL TYPE pubsub, which cut every worker's, and
the other worker's test failed at random (its read caches dropped mid-count, its listener
handed a reconnect instead of the notice it waited for)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from infra.pubsub import Hub
from infra.redis import Keys, connect
from schema.context import Services
from tests.redis_cluster import LocalCluster
from tests.support import drop_pubsub, eventually


async def test_dropping_the_app_s_subscription_leaves_another_client_of_the_server_alone(
    services: Services, redis_url: str, local_cluster: LocalCluster | None
) -> None:
    if local_cluster is not None or services.redis.get_connection_kwargs().get("path"):
        pytest.skip("a Redis of the run's own: every pub/sub client on it is this worker's")
    redis = connect(redis_url)
    bystander = Hub(redis, Keys(f"bystander-{uuid.uuid4().hex[:8]}"))  # another worker's
    channel = bystander.channel("tables")
    try:
        async with bystander.listen(channel) as listener:

            async def subscribed() -> bool:
                return bystander.subscribed and services.hub.subscribed

            await eventually(subscribed, within=10)
            ours, theirs = services.hub.reconnects, bystander.reconnects
            await drop_pubsub(services, services.hub)

            async def resubscribed() -> bool:
                return services.hub.reconnects > ours and services.hub.subscribed

            await eventually(resubscribed, within=10)
            assert bystander.reconnects == theirs
            await bystander.publish(channel, "still here")
            assert await asyncio.wait_for(listener.get(), 5) == b"still here"
    finally:
        await bystander.close()
        await redis.aclose()
