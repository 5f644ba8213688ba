"""A dispatcher process killed in the middle of a delivery loses nothing: the delivery
stays in SQL under its lease, and the next dispatcher sends it once the lease expires, with
the same webhook-id (the receiver de-duplicates: at least once)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch
from tests.processes import cli_process
from tests.support import GQL, eventually
from tests.webhooks.receiver import HANG, receiving
from tests.webhooks.scenarios import deliveries, register
from webhooks.models import DeliveryStatus, WebhookAttempt

pytestmark = pytest.mark.slow

# A lease of 3 s x 1 wave + 10 s: the second dispatcher takes over about 13 s after the kill.
DISPATCHER = {
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOKS_TIMEOUT_SECONDS": "3",
    "WEBHOOKS_CONCURRENCY": "256",
}


async def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    settings: Settings, gql: GQL, db: Database, clock: OffsetClock, services: Services,
    tenant: Tenant,
) -> None:  # fmt: skip
    async with services.webhooks.paused(), receiving() as receiver:  # only the processes send
        receiver.answers = [HANG]
        await register(gql, tenant, receiver)
        sale = await approve_sale(db, clock, tenant)
        await dispatch(services)
        [row] = await deliveries(db)

        async with cli_process(settings, "dispatch", **DISPATCHER) as first:

            async def requested() -> bool:
                return len(receiver.received) == 1

            await eventually(requested, within=60)
            first.kill()  # mid-request: no answer came, nothing recorded
            await first.wait()
        [row] = await deliveries(db)
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
        assert row.lease_token is not None

        async with cli_process(settings, "dispatch", **DISPATCHER):

            async def delivered() -> bool:
                [row] = await deliveries(db)
                return row.status is DeliveryStatus.DELIVERED

            await eventually(delivered, within=90)
        assert [r.message_id for r in receiver.received] == [str(sale.id)] * 2
        assert all(r.verified_with for r in receiver.received)
        async with db.session() as session:
            attempts = list(await session.exec(select(WebhookAttempt)))
        assert [(a.number, a.succeeded) for a in attempts] == [(1, True)]
