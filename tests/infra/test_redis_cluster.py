"""Redis Cluster: a contest's keys share one hash slot (so its scripts and pipelines run on
one node), a master that loses its data has its boards rebuilt from the SQL ledger, and a
failover of a master (its replica promoted) leaves scoring working and live subscriptions
resuming. The cluster tests run against a real local cluster of three masters with a replica
each (CHANNELBOARD_TEST_REDIS_CLUSTER=1, as the cluster pass of .ci/run does); the rest of
the Redis-facing test files run on that cluster in the same pass."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from redis.crc import key_slot
from starlette.applications import Starlette

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent, is_transient
from infra.redis import Keys
from leaderboards.models import Contest
from leaderboards.scoring import BoardKeys
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.redis_cluster import LocalCluster
from tests.support import GQL, eventually, live_server, ws_client

BOARD = "query($id: ID!) { leaderboard(contestId: $id) { version } }"
LIVE = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score } }
}"""


@pytest.fixture
def cluster(local_cluster: LocalCluster | None) -> LocalCluster:
    if local_cluster is None:
        pytest.skip("needs CHANNELBOARD_TEST_REDIS_CLUSTER=1 (a local Redis Cluster)")
    return local_cluster


async def scores(services: Services, contest: Contest) -> list[int]:
    page = await services.leaderboards.boards.page(contest, "all", 0, 100)
    return [r.score for r in page.rows]


async def test_every_key_and_the_channel_of_a_contest_share_one_slot(services: Services) -> None:
    contest_id = uuid.uuid4()
    k = BoardKeys(Keys("cb"), contest_id)
    names = [
        k.version, k.built, k.lock, k.periods, *k.board("all"), *k.board("2027-01"),
        *k.board("2027-01", tmp="tmp:"), services.leaderboards.channel(contest_id),
    ]  # fmt: skip
    assert len({key_slot(name.encode()) for name in names}) == 1
    # ...and contests spread over the slots (not one tag for everything).
    others = {key_slot(BoardKeys(Keys("cb"), uuid.uuid4()).built.encode()) for _ in range(20)}
    assert len(others) > 1


def test_a_namespace_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain"):
        Keys("cb{x}")


async def test_a_master_that_loses_its_data_has_the_boards_rebuilt_from_the_ledger(
    cluster: LocalCluster, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=200_00)
    await dispatch(services)
    assert await scores(services, contest) == [300_00, 200_00]
    boards = services.leaderboards.boards
    version = await boards.version(contest.id)

    cluster.flush(cluster.node_of(boards.keys_of(contest.id).built))
    assert await scores(services, contest) == []
    assert not await boards.is_built(contest.id)

    # The next credit finds the contest missing on its node, rebuilds it, then credits.
    await approve_sale(db, clock, tenant, partner=1, amount=150_00)
    await dispatch(services)
    assert await scores(services, contest) == [350_00, 300_00]
    assert await boards.version(contest.id) > version  # never back to an older version


@pytest.mark.slow
@pytest.mark.parametrize("how", ["operator", "crash"])
async def test_a_failover_keeps_scoring_and_live_subscriptions_resume(
    how: str, cluster: LocalCluster, app: Starlette, client: httpx.AsyncClient, gql: GQL,
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    """``operator``: CLUSTER FAILOVER on the replica (a planned handover); ``crash``: the
    master is killed and its replica promoted after the node timeout."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token) as live:
        await live.subscribe(LIVE, {"id": gid("Contest", contest.id)})
        first = (await live.data())["leaderboardChanged"]
        assert [r["score"] for r in first["rows"]] == [300_00]

        # The master holding the contest's keys and channel hands over to its replica (whose
        # script cache is empty, and which the subscription must follow).
        old = cluster.node_of(services.leaderboards.channel(contest.id))
        reconnects = services.hub.reconnects
        new = cluster.failover(old) if how == "operator" else cluster.kill(old)
        assert cluster.node_of(services.leaderboards.channel(contest.id)) == new

        await approve_sale(db, clock, tenant, partner=1, amount=500_00)

        async def credited() -> bool:
            try:
                await dispatch(services)
            except Exception:  # noqa: BLE001 - the client may still be following the move
                return False
            return await scores(services, contest) == [500_00, 300_00]

        await eventually(credited, within=30)
        update: dict[str, Any] = {}
        async with asyncio.timeout(30):
            while [r["score"] for r in update.get("rows", [])] != [500_00, 300_00]:
                update = (await live.data())["leaderboardChanged"]
        assert update["version"] > first["version"]

        # The hub noticed the move (its listeners re-read: what was published during the
        # handover may be lost) and hears later changes through the new master.
        await eventually(lambda: _true(services.hub.reconnects > reconnects), within=15)
        await eventually(lambda: _true(services.hub.subscribed), within=15)

        # /readyz follows: ready, its live feeds confirmed on the new master.
        async def ready() -> bool:
            response = await client.get("/readyz")
            return response.status_code == 200 and response.json()["checks"]["live"] == "ok"

        await eventually(ready, within=15)
        await approve_sale(db, clock, tenant, partner=0, amount=1)
        await dispatch(services)
        async with asyncio.timeout(15):
            while [r["score"] for r in update["rows"]] != [500_00, 300_01]:
                update = (await live.data())["leaderboardChanged"]


@pytest.mark.slow
async def test_a_slot_migration_keeps_scoring_and_live_subscriptions_follow(
    cluster: LocalCluster, app: Starlette, client: httpx.AsyncClient, gql: GQL,
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    """An operator reshards: the contest's slot, its keys and channel move to another master
    (``CLUSTER SETSLOT … IMPORTING/MIGRATING``, ``MIGRATE``, ``SETSLOT … NODE``) under a
    live leaderboard subscription. Halfway, with the board split between the two masters,
    Redis answers the contest's scripts TRYAGAIN: a sale approved then waits, uncharged (an
    outage, not the event's fault), and a read is SERVICE_UNAVAILABLE. Once the slot has
    moved, the old master drops the subscription's shard channel with a SUNSUBSCRIBE: the
    subscriber must still see every credit, in version order, through the new master, and
    the scripts keep crediting the moved keys."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    channel = services.leaderboards.channel(contest.id)
    [board, *_] = services.leaderboards.boards.keys_of(contest.id).board("all")
    admin = tenant.user(Role.VENDOR_ADMIN)
    loop = asyncio.get_running_loop()
    read: dict[str, Any] = {}

    async def halfway() -> None:
        approved = await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        with pytest.raises(Exception) as raised:  # noqa: PT011 - what matters is its kind
            await dispatch(services)
        assert is_transient(raised.value), raised.value  # the pass ends...
        async with db.session() as session:
            event = await session.get(OutboxEvent, approved.id)
        assert event is not None
        assert event.attempts == 0, event.last_error  # ...and the event is not charged
        read.update(await gql(BOARD, {"id": gid("Contest", contest.id)}, as_user=admin))

    async with live_server(app) as address, ws_client(address, gql.token(admin)) as live:
        await live.subscribe(LIVE, {"id": gid("Contest", contest.id)})
        pushes = [(await live.data())["leaderboardChanged"]]
        assert [r["score"] for r in pushes[0]["rows"]] == [300_00]

        old = cluster.node_of(channel)
        new = next(port for port in cluster.masters() if port != old)
        reconnects = services.hub.reconnects
        await asyncio.to_thread(
            cluster.migrate, board, new,
            while_migrating=lambda: asyncio.run_coroutine_threadsafe(halfway(), loop).result(60),
        )  # fmt: skip
        assert cluster.node_of(channel) == new
        # (The board script's keys include some that do not exist, so Redis refuses it
        # TRYAGAIN for as long as the slot migrates, whichever keys have moved.)
        assert [e["extensions"]["code"] for e in read["errors"]] == ["SERVICE_UNAVAILABLE"]

        await dispatch(services)  # the sale of halfway
        await approve_sale(db, clock, tenant, partner=0, amount=250_00)
        await dispatch(services)
        assert await scores(services, contest) == [550_00, 200_00]
        async with asyncio.timeout(30):
            while [r["score"] for r in pushes[-1]["rows"]] != [550_00, 200_00]:
                pushes.append((await live.data())["leaderboardChanged"])
        versions = [push["version"] for push in pushes]
        assert versions == sorted(versions), versions
        assert versions[-1] == await services.leaderboards.boards.version(contest.id)

        # The hub heard the drop and hears the channel on the new master.
        await eventually(lambda: _true(services.hub.reconnects > reconnects), within=15)
        await eventually(lambda: _true(services.hub.live_problem() is None), within=15)
        await approve_sale(db, clock, tenant, partner=1, amount=1)
        await dispatch(services)
        async with asyncio.timeout(15):
            while [r["score"] for r in pushes[-1]["rows"]] != [550_00, 200_01]:
                pushes.append((await live.data())["leaderboardChanged"])


async def _true(value: bool) -> bool:
    return value
