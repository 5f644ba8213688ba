"""``Hub.publish_soon`` (read-cache invalidations, dispatcher wake-ups) while this process
cannot reach Redis for a moment, and the subscribers of another process can: their
connection stays up, so only the notice itself can tell them. A real Redis behind a proxy
that refuses new connections (a publish's new pooled connection) while serving those
already made (the subscribers')."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, update

from infra.db import Database
from infra.pubsub import Hub
from infra.redis import Keys, connect
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant
from tests.infra.test_read_caches import _url, reason
from tests.redis_cluster import LocalCluster
from tests.redis_proxy import HoldingProxy
from tests.support import GQL, eventually


async def refused_for_a_moment(proxy: HoldingProxy, caplog: pytest.LogCaptureFixture) -> None:
    """New connections are refused until a publish has failed (logged), and half a second
    more; then Redis answers again."""

    async def failed() -> bool:
        return any("publish" in r.getMessage() for r in caplog.records if r.name == "infra.pubsub")

    await eventually(failed, within=10)
    await asyncio.sleep(0.5)
    proxy.refusing = False


@contextlib.asynccontextmanager
async def two_hubs(redis_url: str) -> AsyncIterator[tuple[HoldingProxy, Hub, Hub]]:
    """A publisher's Hub behind a proxy (which the test makes refuse new connections) and
    another process's Hub straight to Redis."""
    keys = Keys(f"hubpub-{uuid.uuid4().hex[:8]}")
    proxy = HoldingProxy(redis_url, b"")
    proxy.release.set()
    async with proxy.running() as port:
        proxied = connect(f"redis://127.0.0.1:{port}/0")
        direct = connect(redis_url)
        publisher, other = Hub(proxied, keys), Hub(direct, keys)
        try:
            yield proxy, publisher, other
        finally:
            await publisher.close()
            await other.close()
            await proxied.aclose()
            await direct.aclose()


async def test_a_notice_published_while_redis_refuses_new_connections_still_arrives(
    redis_url: str, local_cluster: LocalCluster | None, caplog: pytest.LogCaptureFixture
) -> None:
    """It was logged ("publish skipped") and lost: the listener, whose connection never
    dropped, heard nothing until the next notice."""
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    caplog.set_level(logging.WARNING, logger="infra.pubsub")
    async with two_hubs(redis_url) as (proxy, publisher, other):
        async with other.listen(other.channel("tables")) as listener:
            proxy.refusing = True
            publisher.publish_soon(publisher.channel("tables"), "changed partner")
            await refused_for_a_moment(proxy, caplog)
            assert await asyncio.wait_for(listener.get(), 5) == b"changed partner"
        assert publisher.unsent == 0


async def test_drain_waits_for_a_notice_sent_again(
    redis_url: str, local_cluster: LocalCluster | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A command that exits right after its last commit drains the Hub: when that commit's
    notice fails and is kept, the drain waits for it to be sent again (within its time).
    It looked once at what was running: the failed publish ended, the resend it started
    was not waited for, and the close threw the notice away."""
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    caplog.set_level(logging.WARNING, logger="infra.pubsub")
    async with two_hubs(redis_url) as (proxy, publisher, other):
        async with other.listen(other.channel("tables")) as listener:
            proxy.refusing = True
            publisher.publish_soon(publisher.channel("tables"), "changed partner")
            answering = asyncio.create_task(refused_for_a_moment(proxy, caplog))
            await publisher.drain(within=10)
            await answering
            assert publisher.unsent == 0
            assert await asyncio.wait_for(listener.get(), 5) == b"changed partner"


async def test_a_change_committed_while_redis_refuses_new_connections_reaches_the_other_cache(
    gql: GQL,
    tenant: Tenant,
    db: Database,
    services: Services,
    local_cluster: LocalCluster | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process deactivates a user while it cannot open a connection to Redis; its
    subscription stays up, and so does this one's. This process refuses the user's token
    once Redis answers the other again (it went on accepting it for the cache's 10 s)."""
    if local_cluster is not None:
        pytest.skip("one proxied connection: a single Redis server")
    caplog.set_level(logging.WARNING, logger="infra.pubsub")
    rep = tenant.user(Role.PARTNER_REP)
    token = gql.token(rep)
    assert await reason(gql, token) is None
    proxy = HoldingProxy(_url(services), b"")
    proxy.release.set()
    async with proxy.running() as port:
        other = Database(db.url)
        redis = connect(f"redis://127.0.0.1:{port}/0")
        hub = Hub(redis, services.keys)
        try:
            await other.epochs.share(hub)
            proxy.refusing = True
            async with other.transaction() as session:
                await session.execute(
                    update(User).where(col(User.id) == rep.id).values(active=False)
                )
            await refused_for_a_moment(proxy, caplog)

            async def refused() -> bool:
                return await reason(gql, token) == "USER_DEACTIVATED"

            await eventually(refused)
        finally:
            await hub.drain()
            await hub.close()
            await redis.aclose()
            await other.dispose()
