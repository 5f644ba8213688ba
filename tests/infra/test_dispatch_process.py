"""API processes that leave dispatching to a `channelboard dispatch` process
(CHANNELBOARD_DISPATCH=external): events wait in SQL until it runs, then are credited,
scored and pushed; a commit through the API wakes it over pub/sub, not its poll."""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest
from sqlmodel import col, select

from api.settings import Settings, SettingsError
from deal_registration.registrations.models import DealRegistration
from earnings.models import CreditedSource
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from leaderboards.models import Metric
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import MARK_WON, register
from tests.factories import Tenant, add_products, create_contest, dispatch, gid
from tests.processes import api_process, cli_process
from tests.support import GQL, eventually, ws_client

pytestmark = pytest.mark.slow

LIVE = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) { version rows { score participant { name } } }
}"""


def test_the_dispatch_setting_is_checked() -> None:
    assert Settings.from_env({}).dispatch == "inline"
    assert Settings.from_env({"CHANNELBOARD_DISPATCH": "External"}).dispatch == "external"
    with pytest.raises(SettingsError, match="inline or external"):
        Settings.from_env({"CHANNELBOARD_DISPATCH": "worker"})


async def _approved_deal(db: Database, clock: OffsetClock, tenant: Tenant) -> DealRegistration:
    # Unrelated customers, so the two deals never conflict: random names with nothing in
    # common ("Customer <8 hex>" pairs shared most of their letters and sometimes matched).
    name = uuid.uuid4().hex
    return await register(
        db, clock, tenant.user(Role.PARTNER_REP), approve_as=tenant.user(Role.VENDOR_ADMIN),
        customer_name=name, customer_domain=f"{name[:12]}.example",
    )  # fmt: skip


async def _mark_won(address: str, token: str, deal: DealRegistration) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://{address}/graphql",
            json={
                "query": MARK_WON,
                "variables": {"input": {"id": gid(deal)}},
            },
            headers={"authorization": f"Bearer {token}"},
        )
    payload = response.json()["data"]["dealRegistrationMarkWon"]
    assert payload["userErrors"] == [], payload
    assert payload["dealRegistration"]["status"] == "WON"


async def _won_events(db: Database) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.exec(select(OutboxEvent).where(OutboxEvent.type == "DealWon"))
        return list(rows)


async def _dispatched(db: Database) -> list[OutboxEvent]:
    """The DealWon events, once every one is marked dispatched (after all its handlers,
    earnings last: the board can move before that)."""

    async def all_marked() -> bool:
        return all(e.dispatched_at is not None for e in await _won_events(db))

    await eventually(all_marked, within=15)
    return await _won_events(db)


async def _credited(db: Database, event: OutboxEvent) -> bool:
    async with db.session() as session:
        found = await session.exec(
            select(CreditedSource.id).where(col(CreditedSource.source_event_id) == event.id)
        )
        return found.first() is not None


async def test_a_dispatcher_process_handles_what_api_processes_commit(
    settings: Settings, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    contest = await create_contest(db, clock, tenant, metric=Metric.WON_DEALS)
    first_deal = await _approved_deal(db, clock, tenant)
    second_deal = await _approved_deal(db, clock, tenant)
    await dispatch(services)  # the set-up's own events
    contest_id = gid("Contest", contest.id)
    token = gql.token(tenant.user(Role.PARTNER_REP))
    admin_token = gql.token(tenant.user(Role.VENDOR_ADMIN))

    # This test process's app dispatches inline: held, so only the processes below can.
    async with services.outbox.paused(), api_process(settings, DISPATCH="external") as api:
        async with ws_client(api, admin_token) as live:
            await live.subscribe(LIVE, {"id": contest_id})
            assert (await live.data())["leaderboardChanged"]["rows"] == []

            await _mark_won(api, token, first_deal)
            # Longer than an inline dispatcher's poll: the API process did not dispatch it.
            await asyncio.sleep(1.5)
            [event] = await _won_events(db)
            assert event.dispatched_at is None

            # A 10-minute poll: only the pub/sub wake-up can explain a prompt dispatch below.
            async with cli_process(settings, "dispatch", "--poll-interval", "600") as worker:
                # Its start-up (seconds, tens on a loaded machine) is not what is measured.
                assert worker.stdout is not None
                async with asyncio.timeout(120):
                    while b"dispatching outbox events" not in (
                        line := await worker.stdout.readline()
                    ):
                        assert line, "the dispatcher exited"
                # What was pending when it started: credited, scored, pushed.
                while True:
                    rows = (await live.data())["leaderboardChanged"]["rows"]
                    if rows:
                        break
                assert [r["score"] for r in rows] == [1]
                await _dispatched(db)
                assert await _credited(db, event)

                await _mark_won(api, token, second_deal)
                while True:
                    rows = (await live.data())["leaderboardChanged"]["rows"]
                    if rows[0]["score"] == 2:
                        break
                events = await _dispatched(db)
                assert all([await _credited(db, e) for e in events])

                worker.send_signal(signal.SIGTERM)
                output, _ = await asyncio.wait_for(worker.communicate(), 30)
                assert worker.returncode == 0, output.decode()
                assert "dispatcher stopped" in output.decode()


async def test_the_dispatcher_refuses_to_run_without_a_shared_redis(
    settings: Settings, tmp_path: object
) -> None:
    bare = settings.with_overrides(redis_url=None, redis_cluster=False, var_dir=tmp_path)
    async with cli_process(bare, "dispatch") as worker:
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 2
    assert "no Redis to share" in output.decode()
