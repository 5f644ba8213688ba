"""Score requests other than approvals while a server's Redis is down (a reversal, a won
deal, a subscription's expansion, a contest's new rules, an operator's `leaderboards
rebuild`): each is committed and waits in the outbox, or is refused with a clear code; a
read is SERVICE_UNAVAILABLE. Once Redis is back (with its data, or empty) every board is
its ledger's, and the ledger has every credit (approvals: tests/infra/test_redis_faults.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest, ContestCredit
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations import scenarios as deals
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import CATALOGUE, Tenant, add_products, create_contest, gid
from tests.private_redis import RedisUnderTest
from tests.processes import api_process, cli_process
from tests.subscriptions import scenarios as ss
from tests.support import GQL, eventually, post_as

pytestmark = pytest.mark.slow

APPROVE_CLAIM = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { state } userErrors { code } } }"""
REVERSE = """mutation($input: SaleClaimReverseInput!) {
  saleClaimReverse(input: $input) { saleClaim { state } userErrors { code message } } }"""
UPDATE = """mutation($input: ContestUpdateInput!) {
  contestUpdate(input: $input) { contest { id } userErrors { code message } } }"""
BOARD = """query($id: ID!) { leaderboard(contestId: $id, first: 10) {
  edges { node { score participant { name } } } } }"""


def _committed(answer: dict[str, Any], field: str) -> None:
    """The change is made (its scoring waits in the outbox)."""
    assert "errors" not in answer, answer
    assert answer["data"][field]["userErrors"] == [], answer


async def _ledger(
    db: Database, tenant: Tenant, contest_id: uuid.UUID
) -> tuple[int, dict[str, int]]:
    """The contest's credits, and each participant's total."""
    names = {p.id: p.name for p in tenant.partners}
    async with db.session() as session:
        rows = (
            await session.exec(
                select(ContestCredit.participant_id, func.sum(ContestCredit.delta), func.count())
                .where(ContestCredit.contest_id == contest_id)
                .group_by(ContestCredit.participant_id)  # type: ignore[arg-type]
            )
        ).all()
    return sum(n for *_, n in rows), {names[p]: int(total) for p, total, _ in rows}


async def test_score_requests_while_redis_is_down_end_on_the_board_once_it_is_back(
    own_redis: RedisUnderTest, settings: Settings, services: Services, gql: GQL, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    # Before: a claim approved, a deal approved, a subscription sold; a contest of each.
    await seed_registry(db, clock, tenant, 4, settle=False)
    await ss.seed(db, clock, tenant)
    async with db.transaction() as session:
        await add_products(session, clock, tenant, CATALOGUE)
    start = clock.now() - timedelta(days=1)
    contests: dict[str, Contest] = {
        metric: await create_contest(
            db, clock, tenant, name=metric, metric=metric, starts_at=start
        )  # fmt: skip
        for metric in ("REVENUE", "WON_DEALS", "NEW_ARR")
    }
    rep, manager = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.CHANNEL_MANAGER)
    created = await gql.data(CREATE, {"input": claim_input(["SN000001"], clock)}, as_user=rep)
    claim = created["saleClaimCreate"]["saleClaim"]["id"]
    approved = await gql.data(APPROVE_CLAIM, {"input": {"id": claim}}, as_user=manager)
    assert approved["saleClaimApprove"]["userErrors"] == []
    deal = await deals.submit(gql, rep, clock)
    for mutation, extra in ((deals.START_REVIEW, {}), (deals.APPROVE, {"reason": "ok"})):
        acted = await gql.data(mutation, {"input": {"id": deal, **extra}}, as_user=manager)
        assert next(iter(acted.values()))["userErrors"] == [], acted
    _, subscription = await ss.first_sale(db, clock, tenant, services)
    await ss.settle(services)
    before = {m: (await _ledger(db, tenant, c.id))[0] for m, c in contests.items()}
    assert before == {"REVENUE": 2, "WON_DEALS": 0, "NEW_ARR": 1}, before

    admin, finance = (gql.token(tenant.user(r), ttl=timedelta(hours=1))
                      for r in (Role.VENDOR_ADMIN, Role.FINANCE))  # fmt: skip
    boards = {m: gid("Contest", c.id) for m, c in contests.items()}
    async with (
        services.outbox.paused(),  # the process under test dispatches, to the Redis under test
        api_process(settings, REDIS_URL=own_redis.url, REDIS_CLUSTER="false") as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as http,
    ):
        for board in boards.values():  # built on this Redis
            assert "errors" not in await post_as(http, admin, BOARD, {"id": board})
        own_redis.kill()

        async def down() -> bool:
            errors = (await post_as(http, admin, BOARD, {"id": boards["REVENUE"]})).get("errors")
            assert not errors or errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", errors
            return bool(errors)

        await eventually(down, within=30)
        token = gql.token(manager, ttl=timedelta(hours=1))
        reversal = {"input": {"id": claim, "reason": "REFUNDED", "note": "returned"}}
        _committed(await post_as(http, token, REVERSE, reversal), "saleClaimReverse")
        won = await post_as(http, token, deals.MARK_WON, {"input": {"id": deal}})
        _committed(won, "dealRegistrationMarkWon")
        expansion = {"input": {"subscriptionId": gid("CustomerSubscription", subscription.id),
                               "externalId": "up-1",
                               "amount": {"amount": "1500.00", "currency": "USD"}}}  # fmt: skip
        _committed(await post_as(http, finance, ss.EXPAND, expansion), "subscriptionExpand")
        renamed = {"input": {"id": boards["REVENUE"], "name": "Revenue (renamed)"}}
        _committed(await post_as(http, admin, UPDATE, renamed), "contestUpdate")
        # An operator's rebuild says in one line that Redis is out of reach, and fails.
        async with cli_process(
            settings, "leaderboards", "rebuild", str(contests["NEW_ARR"].id),
            REDIS_URL=own_redis.url, REDIS_CLUSTER="false",
        ) as command:  # fmt: skip
            output, _ = await asyncio.wait_for(command.communicate(), 120)
        assert command.returncode == 3, output.decode()
        assert "Traceback" not in output.decode(), output.decode()
        assert "Redis" in output.decode()

        own_redis.start()
        await own_redis.wait_ready()

        # Nothing lost: the reversal, the won deal and the expansion are credited, and each
        # board is its ledger's.
        expected = {"REVENUE": 3, "WON_DEALS": 1, "NEW_ARR": 2}

        async def boards_are_the_ledgers() -> bool:
            for metric, contest in contests.items():
                credits, totals = await _ledger(db, tenant, contest.id)
                answer = await post_as(http, admin, BOARD, {"id": boards[metric]})
                if credits != expected[metric] or answer.get("errors"):
                    return False
                rows = answer["data"]["leaderboard"]["edges"]
                shown = {e["node"]["participant"]["name"]: e["node"]["score"] for e in rows}
                if shown != totals:
                    return False
            return True

        await eventually(boards_are_the_ledgers, within=60)
        async with cli_process(
            settings, "leaderboards", "rebuild", str(contests["NEW_ARR"].id),
            REDIS_URL=own_redis.url, REDIS_CLUSTER="false",
        ) as command:  # fmt: skip
            output, _ = await asyncio.wait_for(command.communicate(), 120)
        assert command.returncode == 0, output.decode()
