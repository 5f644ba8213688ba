"""Redis killed while a real server credits a sale to a board, and while it pushes the
change: the server's Redis connections pass through a proxy that holds the credit script
(or, after it, the PUBLISH that tells the subscribers) until Redis is dead. Redis comes
back, with its data (the embedded one) or empty, and the open subscription resumes on the
ledger's board (a rebuild from SQL when Redis came back empty), its versions only rising;
the board read then is the ledger's."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import ContestCredit
from leaderboards.scoring import CREDIT_LUA, CREDIT_MANY_LUA
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, gid
from tests.infra.test_redis_faults import BOARD, until_rows
from tests.private_redis import RedisUnderTest
from tests.processes import api_process
from tests.redis_proxy import HoldingProxy
from tests.support import GQL, post_as, ws_client

pytestmark = pytest.mark.slow

READ = """query($id: ID!) { leaderboard(contestId: $id, first: 10) {
  version edges { node { score } } } }"""
_CREDITS = [
    hashlib.sha1(script.encode()).hexdigest().encode()  # noqa: S324 - Redis's script id
    for script in (CREDIT_LUA, CREDIT_MANY_LUA)
]


def _at_the_credit() -> Callable[[bytes], bool]:
    return lambda data: any(sha in data for sha in _CREDITS)


def _at_the_push(contest_id: uuid.UUID) -> Callable[[bytes], bool]:
    """The first PUBLISH on the contest's channel once the credit script has gone by."""
    credited = False

    def carries(data: bytes) -> bool:
        nonlocal credited
        credited = credited or any(sha in data for sha in _CREDITS)
        return credited and b"PUBLISH" in data and str(contest_id).encode() in data

    return carries


async def _ledger(db: Database, contest_id: object) -> list[int]:
    async with db.session() as session:
        rows = await session.exec(
            select(func.sum(ContestCredit.delta))
            .where(ContestCredit.contest_id == contest_id)
            .group_by(ContestCredit.participant_id)  # type: ignore[arg-type]
        )
        return sorted(int(total) for total in rows)


async def test_redis_killed_mid_credit_or_mid_push_subscribers_resume_on_the_ledger(
    own_redis: RedisUnderTest, settings: Settings, services: Services, gql: GQL, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    if settings.redis_cluster:
        pytest.skip("the proxy stands before one Redis node")
    contest = await create_contest(db, clock, tenant)
    contest_id = gid("Contest", contest.id)
    vendor = gql.token(tenant.user(Role.VENDOR_ADMIN))
    proxy = HoldingProxy(own_redis.url, b"", hold_marker=True)
    proxy.release.set()
    async with (
        services.outbox.paused(),  # the process under test dispatches, to the Redis under test
        proxy.running() as port,
        api_process(settings, REDIS_URL=f"redis://127.0.0.1:{port}/0") as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as http,
        ws_client(address, vendor) as board,
    ):
        await board.subscribe(BOARD, {"id": contest_id})
        await approve_sale(db, clock, tenant, partner=1, amount=100_00)
        version = (await until_rows(board, [100_00]))["version"]
        scores = [100_00, 0]
        for step, amount in ((_at_the_credit(), 50_00), (_at_the_push(contest.id), 25_00)):
            proxy.arm(b"")
            proxy.carries = step
            await approve_sale(db, clock, tenant, partner=0, amount=amount)
            await asyncio.wait_for(proxy.holding.wait(), 60)
            own_redis.kill()
            proxy.release.set()
            own_redis.start()
            await own_redis.wait_ready()
            scores[1] += amount
            version = (await until_rows(board, scores, at_least=version))["version"]
            assert sorted(scores) == await _ledger(db, contest.id)

        read = await post_as(http, vendor, READ, {"id": contest_id})
        leaderboard = read["data"]["leaderboard"]
        assert sorted(e["node"]["score"] for e in leaderboard["edges"]) == sorted(scores)
        assert leaderboard["version"] >= version
