"""A sale approved while the dispatcher's pass is busy with slow handlers (earnings, the
signals, the rules) reaches the live leaderboard at once: scoring runs in the dispatcher's
live lane (``infra.outbox.Dispatcher``), not after the rest of the pass."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette

from deal_registration.events import SALE_APPROVED
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, batch_handler_of, live_server, ws_client

pytestmark = pytest.mark.slow

LIVE = """
subscription($id: ID!) { leaderboardChanged(contestId: $id) { version rows { score } } }
"""


@dataclass
class Gate:
    """A slow handler of sales that nothing live waits for, as earnings crediting is: it
    holds its run while ``closed`` (open by default: the app is shared with other tests)."""

    closed: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, events: list[OutboxEvent]) -> None:
        if self.closed:
            self.entered.set()
            await self.opened.wait()


def gate(services: Services) -> Gate:
    """The app's gate, reset for this test."""
    found = batch_handler_of(services, [SALE_APPROVED], "live-lane-gate", Gate)
    found.closed, found.opened, found.entered = False, asyncio.Event(), asyncio.Event()
    return found


async def test_a_sale_approved_during_a_busy_pass_moves_the_board_before_the_pass_ends(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    held = gate(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    try:
        async with live_server(app) as address, ws_client(address, token) as client:
            await client.subscribe(LIVE, {"id": gid(contest)})
            await client.data()
            held.closed = True
            first = await approve_sale(db, clock, tenant, partner=0, amount=100)
            services.outbox.notify()  # as the API does after a commit
            await asyncio.wait_for(held.entered.wait(), 10)  # the pass is held past scoring
            await approve_sale(db, clock, tenant, partner=1, amount=250)
            services.outbox.notify()

            async def scored() -> int:
                while True:
                    rows = (await client.data())["leaderboardChanged"]["rows"]
                    if sum(r["score"] for r in rows) == 350:
                        return len(rows)

            # The second sale is on the board while the pass still holds the first.
            assert await asyncio.wait_for(scored(), 10) == 2
            async with db.session() as session:  # the pass still holds the first sale
                row = await session.get(OutboxEvent, first.id)
                assert row is not None
                assert row.dispatched_at is None
    finally:
        held.opened.set()
        held.closed = False
