"""Replay: vendor admins send an endpoint's messages again, by outbox event id or by the
time range the events occurred in; each replay keeps the message's webhook-id and body
(receivers de-duplicate), reaches events the endpoint never received, is audited, and
bad requests are coded and change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch
from tests.support import GQL, count_rows, error_codes
from tests.webhooks.queries import DISABLE, REPLAY
from tests.webhooks.receiver import receiving
from tests.webhooks.scenarios import deliveries, register
from webhooks.models import WebhookDelivery
from webhooks.worker import DeliveryWorker


def iso(value: Any) -> str:
    return str(value.isoformat())


async def test_replay_by_event_id_and_by_range(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    admin = tenant.user(Role.VENDOR_ADMIN)
    first = await approve_sale(db, clock, tenant)  # before the endpoint existed
    await dispatch(services)
    clock.advance(timedelta(minutes=10))
    async with receiving() as receiver:
        endpoint_id, _ = await register(gql, tenant, receiver, types=["sale_claim.approved"])
        second = await approve_sale(db, clock, tenant)
        await dispatch(services)
        await worker.deliver_due()
        assert [r.message_id for r in receiver.received] == [str(second.id)]

        by_id = (
            await gql.data(
                REPLAY, {"input": {"endpointId": endpoint_id, "eventId": str(second.id)}},
                as_user=admin,
            )
        )["webhookReplay"]  # fmt: skip
        assert by_id["userErrors"] == []
        [replayed] = by_id["deliveries"]
        assert (replayed["messageId"], replayed["sequence"], replayed["status"]) == (
            str(second.id), 1, "PENDING"
        )  # fmt: skip
        await worker.deliver_due()
        assert [r.message_id for r in receiver.received] == [str(second.id)] * 2
        assert receiver.received[0].body == receiver.received[1].body
        assert receiver.received[1].verified_with

        # The range covers the event from before the endpoint existed, and the second again.
        by_range = (
            await gql.data(
                REPLAY,
                {"input": {"endpointId": endpoint_id, "from": iso(first.occurred_at),
                           "to": iso(clock.now() + timedelta(seconds=1))}},
                as_user=admin,
            )
        )["webhookReplay"]  # fmt: skip
        assert [(d["messageId"], d["sequence"]) for d in by_range["deliveries"]] == [
            (str(first.id), 0), (str(second.id), 2)
        ]  # fmt: skip
        await worker.deliver_due()
        assert sorted(r.message_id for r in receiver.received[2:]) == sorted(
            [str(first.id), str(second.id)]
        )
    async with db.session() as session:
        replays = list(
            await session.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "webhook_endpoint.replayed")
                .order_by(col(AuditEntry.at), col(AuditEntry.id))  # (no order is not an order)
            )
        )
    assert [e.after["messages"] for e in replays if e.after] == [1, 2]


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({}, [(None, "REPLAY_TARGET_REQUIRED")]),
        ({"eventId": "E", "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"},
         [(None, "REPLAY_TARGET_AMBIGUOUS")]),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, [("to", "INVALID_RANGE")]),
        ({"from": "2026-12-01T00:00:00Z"}, [("to", "INVALID_RANGE")]),
        ({"from": "2026-10-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
         [("to", "RANGE_TOO_LONG")]),
        ({"from": "2099-01-01T00:00:00Z", "to": "2099-01-02T00:00:00Z"},
         [("from", "INVALID_RANGE")]),
        ({"eventId": "not-a-uuid"}, [("eventId", "NOT_FOUND")]),
        ({"eventId": "OTHER"}, [("eventId", "NOT_FOUND")]),
    ],
)  # fmt: skip
async def test_bad_replays_are_coded_and_change_nothing(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    other_tenant: Tenant, given: dict[str, Any], errors: list[Any],
) -> None:  # fmt: skip
    async with receiving() as receiver:
        endpoint_id, _ = await register(gql, tenant, receiver)
    mine = await approve_sale(db, clock, tenant)
    theirs = await approve_sale(db, clock, other_tenant)
    async with services.webhooks.paused():
        await dispatch(services)
        before = await count_rows(db, WebhookDelivery)
        audits = await count_rows(db, AuditEntry)
        values = {
            k: {"E": str(mine.id), "OTHER": str(theirs.id)}.get(v, v) for k, v in given.items()
        }
        payload = (
            await gql.data(
                REPLAY, {"input": {"endpointId": endpoint_id, **values}},
                as_user=tenant.user(Role.VENDOR_ADMIN),
            )
        )["webhookReplay"]  # fmt: skip
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == errors
        assert payload["deliveries"] is None
        assert await count_rows(db, WebhookDelivery) == before
        assert await count_rows(db, AuditEntry) == audits


@pytest.mark.parametrize("to", ["2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z"])
async def test_a_replay_range_that_ends_at_or_before_its_start_says_what_to_fix(
    gql: GQL, tenant: Tenant, to: str
) -> None:
    """The message read "`from` is before `to`." (the opposite of what was wrong)."""
    async with receiving() as receiver:
        endpoint_id, _ = await register(gql, tenant, receiver)
    given = {"endpointId": endpoint_id, "from": "2026-12-01T00:00:00Z", "to": to}
    data = await gql.data(REPLAY, {"input": given}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["webhookReplay"]["userErrors"] == [
        {"field": "to", "code": "INVALID_RANGE", "message": "`from` must be before `to`."}
    ]


async def test_replay_roles_other_vendor_and_disabled_endpoint(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        endpoint_id, _ = await register(gql, tenant, receiver)
    sale = await approve_sale(db, clock, tenant)
    async with services.webhooks.paused():
        await dispatch(services)
        variables = {"input": {"endpointId": endpoint_id, "eventId": str(sale.id)}}
        before = len(await deliveries(db))
        assert error_codes(await gql(REPLAY, variables)) == ["UNAUTHENTICATED"]
        for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
            assert error_codes(await gql(REPLAY, variables, as_user=tenant.user(role))) == [
                "FORBIDDEN"
            ]
        stranger = (
            await gql.data(REPLAY, variables, as_user=other_tenant.user(Role.VENDOR_ADMIN))
        )["webhookReplay"]
        assert [(e["field"], e["code"]) for e in stranger["userErrors"]] == [
            ("endpointId", "NOT_FOUND")
        ]
        admin = tenant.user(Role.VENDOR_ADMIN)
        await gql.data(DISABLE, {"id": endpoint_id}, as_user=admin)
        disabled = (await gql.data(REPLAY, variables, as_user=admin))["webhookReplay"]
        assert [(e["field"], e["code"]) for e in disabled["userErrors"]] == [
            ("endpointId", "ENDPOINT_DISABLED")
        ]
        assert len(await deliveries(db)) == before
