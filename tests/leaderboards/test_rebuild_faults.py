"""Redis killed inside a leaderboard rebuild (``leaderboards.rebuild``), in a real server
whose Redis connections pass through a proxy that holds the rebuild's command at a chosen
step until Redis is dead: as the rebuild starts its journal, midway through writing its
shadow copy, and as it swaps the copy in. Redis then comes back, with its data (the
embedded one) or empty, and the board is the ledger's, rebuilt under the contest's new
rules: no copy left half-built as if complete, nothing lost or counted twice."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, insert
from sqlmodel import select

from api.settings import Settings
from deal_registration.events import Line, SaleApproved
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent, event_rows
from leaderboards.models import ContestCredit
from leaderboards.scoring import JOURNAL_LUA, SWAP_LUA
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, create_contest, gid
from tests.private_redis import RedisUnderTest
from tests.processes import api_process
from tests.redis_proxy import HoldingProxy
from tests.support import GQL, eventually, post_as

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

SALES = 5_000  # the rebuild writes its copy's seen sets in three round trips of 2,000
UPDATE = """mutation($input: ContestUpdateInput!) {
  contestUpdate(input: $input) { contest { id } userErrors { code message } } }"""
BOARD = """query($id: ID!) { leaderboard(contestId: $id, first: 10) {
  edges { node { score participant { name } } } } }"""


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()  # noqa: S324 - Redis's script id


# Where the kill lands: the first bytes that carry the marker, after ``skip`` such reads.
# The first rebuild builds the board (none there yet: reads wait for a build); the others
# rebuild it under the contest's new metric (reads are served the old board meanwhile).
STEPS = [
    ("first build, the journal started", _sha(JOURNAL_LUA), 0),
    ("the journal started", _sha(JOURNAL_LUA), 0),
    ("midway through the shadow copy", b"tmp:", 2),
    ("the swap", _sha(SWAP_LUA), 0),
]
PUBLISH = """mutation($input: ContestIdInput!) {
  contestPublish(input: $input) { contest { id } userErrors { code message } } }"""


async def _sales(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    """SALES approved sales of one unit each (amounts vary), dispatched long ago: only a
    rescore reads them."""
    now = clock.now()
    events = []
    for n in range(SALES):
        amount = 100 + n % 37
        sale = SaleApproved(
            claim_id=uuid.uuid4(), partner_id=tenant.partners[n % 2].id, rep_user_id=None,
            region="EMEA", currency="USD", amount_minor=amount,
            lines=[Line(sku="NW-ROUTER-X1", units=1, amount_minor=amount)],
            sold_at=now, approved_at=now, customer_name="",
        )  # fmt: skip
        events.append((tenant.vendor.id, sale.type, sale.claim_id, sale.to_payload()))
    rows = [{**row, "dispatched_at": now} for row in event_rows(clock, events)]
    async with db.transaction() as session:
        await session.execute(insert(OutboxEvent.__table__), rows)  # type: ignore[attr-defined]


async def _ledger(db: Database, tenant: Tenant, contest_id: uuid.UUID) -> dict[str, int]:
    names = {p.id: p.name for p in tenant.partners}
    async with db.session() as session:
        rows = await session.exec(
            select(ContestCredit.participant_id, func.sum(ContestCredit.delta))
            .where(ContestCredit.contest_id == contest_id)
            .group_by(ContestCredit.participant_id)  # type: ignore[arg-type]
        )
        return {names[p]: int(total) for p, total in rows}


async def test_redis_killed_inside_a_rebuild_the_board_is_rebuilt_exactly_once_back(
    own_redis: RedisUnderTest, settings: Settings, services: Services, gql: GQL, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    await _sales(db, clock, tenant)
    contest = await create_contest(
        db, clock, tenant, starts_at=clock.now() - timedelta(days=1), publish=False
    )
    contest_id = gid("Contest", contest.id)
    admin = gql.token(tenant.user(Role.VENDOR_ADMIN), ttl=timedelta(hours=1))
    proxy = HoldingProxy(own_redis.url, b"", hold_marker=True)
    proxy.release.set()
    loop = asyncio.get_running_loop()
    metric = "REVENUE"
    recovered: list[str] = []

    async def board() -> dict[str, int] | None:
        answer = await post_as(http, admin, BOARD, {"id": contest_id})
        if answer.get("errors"):
            return None
        return {
            e["node"]["participant"]["name"]: e["node"]["score"]
            for e in answer["data"]["leaderboard"]["edges"]
        }

    async with (
        services.outbox.paused(),  # the process under test dispatches, to the Redis under test
        proxy.running() as port,
        api_process(settings, REDIS_URL=f"redis://127.0.0.1:{port}/0") as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as http,
    ):
        for n, (step, marker, skip) in enumerate(STEPS):
            proxy.arm(marker, skip=skip)
            if n == 0:
                changed = await post_as(http, admin, PUBLISH, {"input": {"id": contest_id}})
                assert changed["data"]["contestPublish"]["userErrors"] == [], changed
            else:
                metric = "UNITS" if metric == "REVENUE" else "REVENUE"
                changed = await post_as(
                    http, admin, UPDATE, {"input": {"id": contest_id, "metric": metric}}
                )
                assert changed["data"]["contestUpdate"]["userErrors"] == [], changed
            # The rescore committed; the rebuild that follows is held at its step.
            await asyncio.wait_for(proxy.holding.wait(), 60)
            own_redis.kill()
            proxy.release.set()
            expected = await _ledger(db, tenant, contest.id)
            assert expected
            assert all(expected.values())

            async def unavailable() -> bool:  # meanwhile, a read is a coded outage
                errors = (await post_as(http, admin, BOARD, {"id": contest_id})).get("errors")
                assert not errors or errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
                return bool(errors)

            await eventually(unavailable, within=30)
            own_redis.start()
            await own_redis.wait_ready()
            back = loop.time()

            async def rebuilt(expected: dict[str, int] = expected) -> bool:
                return await board() == expected

            # A read never waits long for a dead rebuild (its lock's lease is short; it was
            # 120 s, and a read of the board not built yet hung past the client's 60 s).
            await eventually(rebuilt, within=120)
            recovered.append(f"{step}: {metric} board exact {loop.time() - back:.1f} s after")
    log.info("%s Redis: %s", own_redis.kind, "; ".join(recovered))
