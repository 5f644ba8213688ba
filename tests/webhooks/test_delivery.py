"""Deliveries end to end: committed outbox events become signed requests to a real
receiver on loopback, which verifies them with the Standard Webhooks library as an
integrator would; failures are retried with backoff (the clock moves, nobody sleeps), an
endpoint failing for a day is disabled with a notice, secrets rotate with an overlap, and
the delivery log tells what happened, to the roles that may read it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import col, select

from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch, gid, reverse_sale
from tests.support import GQL, error_codes, eventually
from tests.webhooks.queries import DELIVERIES, ENABLE, ENDPOINTS, ROTATE
from tests.webhooks.receiver import HANG, receiving
from tests.webhooks.scenarios import deliveries, register
from webhooks.events import WEBHOOK_ENDPOINT_DISABLED, WebhookEndpointDisabled
from webhooks.models import DeliveryStatus, EndpointStatus, WebhookAttempt, WebhookEndpoint
from webhooks.worker import MAX_ATTEMPTS, DeliveryWorker


async def test_an_approved_sale_reaches_the_receiver_signed_once_per_endpoint(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    services: Services,
    tenant: Tenant,
    other_tenant: Tenant,
    worker: DeliveryWorker,
) -> None:
    async with receiving() as mine, receiving() as narrow, receiving() as theirs:
        endpoint_id, secret = await register(gql, tenant, mine)
        await register(gql, tenant, narrow, types=["partner.enrolled"])
        await register(gql, other_tenant, theirs)
        sale = await approve_sale(db, clock, tenant, amount=129_900, units=1)
        await dispatch(services)
        assert await worker.deliver_due() == 1

        [got] = mine.received
        assert got.verified_with == [secret]  # Webhook(secret).verify(body, headers) passed
        assert got.message_id == str(sale.id)  # webhook-id: the outbox event's id
        assert got.headers["content-type"] == "application/json"
        assert got.payload["type"] == "sale_claim.approved"
        assert got.payload["timestamp"] == sale.occurred_at.isoformat()
        data = got.payload["data"]
        assert data["partnerId"] == str(tenant.partners[0].id)
        assert (data["amountMinor"], data["currency"]) == (129_900, "USD")
        assert data["lines"] == [{"sku": "NW-ROUTER-X1", "units": 1, "amountMinor": 129_900}]
        assert narrow.received == []  # not subscribed to this type
        assert theirs.received == []  # another vendor's endpoint never sees it

        log = (
            await gql.data(DELIVERIES, {"endpoint": endpoint_id}, as_user=tenant.user(Role.FINANCE))
        )["webhookDeliveries"]
        [node] = [e["node"] for e in log["edges"]]
        assert (node["status"], node["attemptCount"], node["messageId"]) == (
            "DELIVERED", 1, str(sale.id)
        )  # fmt: skip
        assert node["eventId"] == str(sale.id)
        assert json.loads(node["body"]) == got.payload
        [attempt] = node["attempts"]
        assert (attempt["number"], attempt["responseStatus"], attempt["succeeded"]) == (
            1,
            200,
            True,
        )
        assert attempt["responseBody"] == "ok"
        assert attempt["latencyMs"] >= 0
        assert attempt["requestHeaders"]["webhook-id"] == str(sale.id)
        assert attempt["requestHeaders"]["webhook-signature"].startswith("v1,")
        assert secret not in json.dumps(log)

        # At least once, with the receiver de-duplicating by webhook-id: a reversal is a
        # new message with its own id.
        reversal = await reverse_sale(db, clock, tenant, sale)
        await dispatch(services)
        await worker.deliver_due()
        assert [r.message_id for r in mine.received] == [str(sale.id), str(reversal.id)]
        assert mine.received[1].payload["type"] == "sale_claim.reversed"
        assert mine.received[1].payload["data"]["reason"] == "refund"


async def test_failures_are_retried_with_backoff_until_delivered(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        receiver.answers = [500, HANG, ("redirect", "http://127.0.0.1:9/elsewhere"), 200]
        endpoint_id, _ = await register(gql, tenant, receiver)
        sale = await approve_sale(db, clock, tenant)
        await dispatch(services)

        assert await worker.deliver_due() == 1  # 500
        [row] = await deliveries(db)
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
        assert row.next_attempt_at is not None
        wait = row.next_attempt_at - clock.now()
        assert timedelta(seconds=3.9) <= wait <= timedelta(seconds=6.1)  # 5 s +- 20 %
        assert await worker.deliver_due() == 0  # not due yet

        clock.advance(timedelta(seconds=7))
        worker.timeout = 0.5  # the receiver hangs: no need to wait the whole 10 s for it
        assert await worker.deliver_due() == 1  # no answer within the timeout
        worker.timeout = 10.0
        clock.advance(timedelta(minutes=7))
        assert await worker.deliver_due() == 1  # a redirect: not followed
        clock.advance(timedelta(minutes=37))
        assert await worker.deliver_due() == 1  # delivered
        [row] = await deliveries(db)
        assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 4)

        # Every attempt carried the same webhook-id and body, each freshly signed.
        assert [r.message_id for r in receiver.received] == [str(sale.id)] * 4
        assert len({r.body for r in receiver.received}) == 1
        assert all(r.verified_with for r in receiver.received)

        log = (
            await gql.data(
                DELIVERIES, {"endpoint": endpoint_id}, as_user=tenant.user(Role.VENDOR_ADMIN)
            )
        )["webhookDeliveries"]["edges"][0]["node"]
        attempts = [
            (a["number"], a["responseStatus"], a["errorClass"], a["succeeded"])
            for a in log["attempts"]
        ]
        assert attempts == [
            (1, 500, "HTTP_STATUS", False), (2, None, "TIMEOUT", False),
            (3, 302, "REDIRECT", False), (4, 200, None, True),
        ]  # fmt: skip
        assert len(log["attempts"][0]["responseBody"]) == 1024  # truncated
        assert log["attempts"][1]["error"] == "The endpoint did not answer in time."


async def test_an_endpoint_failing_for_a_day_is_disabled_with_a_notice(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        receiver.answers = [503] * MAX_ATTEMPTS
        endpoint_id, _ = await register(gql, tenant, receiver)
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        for _ in range(MAX_ATTEMPTS):
            assert await worker.deliver_due() == 1
            clock.advance(timedelta(hours=12, minutes=1))  # past the longest wait + jitter
        [row] = await deliveries(db)
        assert (row.status, row.attempts) == (DeliveryStatus.FAILED, MAX_ATTEMPTS)
        assert len(receiver.received) == MAX_ATTEMPTS

        admin = tenant.user(Role.VENDOR_ADMIN)
        [endpoint] = [
            e["node"]
            for e in (await gql.data(ENDPOINTS, as_user=admin))["webhookEndpoints"]["edges"]
        ]
        assert (endpoint["status"], endpoint["disabledReason"]) == ("DISABLED", "FAILING")
        async with db.session() as session:
            [entry] = list(
                await session.exec(
                    select(AuditEntry).where(AuditEntry.action == "webhook_endpoint.disabled")
                )
            )
            [event] = list(
                await session.exec(
                    select(OutboxEvent).where(OutboxEvent.type == WEBHOOK_ENDPOINT_DISABLED)
                )
            )
        assert entry.actor == "system:webhooks"
        assert entry.after is not None
        assert entry.after["last_error_class"] == "HTTP_STATUS"
        notice = WebhookEndpointDisabled.parse(event.payload)
        assert (notice.url, notice.last_error_class) == (receiver.url, "HTTP_STATUS")

        # Disabled: new events make no deliveries; enabled again, it receives new ones.
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        assert len(await deliveries(db)) == 1
        enabled = (await gql.data(ENABLE, {"id": endpoint_id}, as_user=admin))[
            "webhookEndpointEnable"
        ]
        assert (enabled["endpoint"]["status"], enabled["endpoint"]["failingSince"]) == (
            "ACTIVE", None
        )  # fmt: skip
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        assert await worker.deliver_due() == 1
        assert receiver.received[-1].verified_with


async def test_a_success_between_failures_keeps_the_endpoint_enabled(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        receiver.answers = [503] * (MAX_ATTEMPTS - 1) + [200] + [503]
        await register(gql, tenant, receiver)
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        for _ in range(MAX_ATTEMPTS):
            await worker.deliver_due()
            clock.advance(timedelta(hours=12, minutes=1))
        [first] = await deliveries(db)
        assert first.status is DeliveryStatus.DELIVERED  # on its last attempt
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        assert await worker.deliver_due() == 1  # fails: failing since now, not a day
        async with db.session() as session:
            [endpoint] = list(await session.exec(select(WebhookEndpoint)))
        assert endpoint.status is EndpointStatus.ACTIVE
        assert endpoint.failing_since is not None  # counting again from this failure


async def test_secrets_rotate_with_an_overlap(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        endpoint_id, old = await register(gql, tenant, receiver)
        rotated = (
            await gql.data(
                ROTATE, {"id": endpoint_id, "overlap": 3600}, as_user=tenant.user(Role.VENDOR_ADMIN)
            )
        )["webhookEndpointSecretRotate"]
        new = rotated["secret"]
        receiver.secrets.append(new)
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        await worker.deliver_due()
        during = receiver.received[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert during.verified_with == [old, new]  # a receiver with either secret verifies

        clock.advance(timedelta(hours=1, seconds=1))  # the overlap is over
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        await worker.deliver_due()
        after = receiver.received[-1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert after.verified_with == [new]


async def test_the_delivery_log_is_for_vendor_admins_and_finance_only(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    other_tenant: Tenant, worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        endpoint_id, _ = await register(gql, tenant, receiver)
        sale = await approve_sale(db, clock, tenant)
        await dispatch(services)
        await worker.deliver_due()
    assert error_codes(await gql(DELIVERIES)) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(DELIVERIES, as_user=tenant.user(role))) == ["FORBIDDEN"]
    for role in (Role.VENDOR_ADMIN, Role.FINANCE):
        log = await gql.data(DELIVERIES, {"event": str(sale.id)}, as_user=tenant.user(role))
        assert log["webhookDeliveries"]["totalCount"] == 1
    stranger = other_tenant.user(Role.VENDOR_ADMIN)
    for variables in ({}, {"endpoint": endpoint_id}, {"event": str(sale.id)}):
        log = await gql.data(DELIVERIES, variables, as_user=stranger)
        assert log["webhookDeliveries"]["totalCount"] == 0
    [row] = await deliveries(db)
    node = await gql.data(
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": gid("WebhookDelivery", row.id)}, as_user=stranger,
    )  # fmt: skip
    assert node == {"node": None}
    none = await gql.data(DELIVERIES, {"event": "not-a-uuid"}, as_user=tenant.user(Role.FINANCE))
    assert none["webhookDeliveries"]["totalCount"] == 0


async def test_the_running_app_delivers_by_itself(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant
) -> None:
    """No test worker: the app's own delivery worker (inline dispatch) sends at once."""
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        sale = await approve_sale(db, clock, tenant)
        services.outbox.notify()

        async def arrived() -> bool:
            return [r.message_id for r in receiver.verified()] == [str(sale.id)]

        await eventually(arrived, within=10)
        async with db.session() as session:
            rows = list(
                await session.exec(select(OutboxEvent).where(col(OutboxEvent.id) == sale.id))
            )
        assert rows[0].dispatched_at is not None


async def test_a_delivery_that_cannot_be_made_fails_alone(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    services: Services,
    tenant: Tenant,
    other_tenant: Tenant,
    worker: DeliveryWorker,
) -> None:
    """An endpoint whose stored secret is unreadable (a bad restore, a hand edit): signing
    raised, the whole round's outcomes were lost, and every later round failed on the same
    row, so no vendor's webhooks were delivered again. It is now that delivery's failure
    (SEND_FAILED, retried with backoff) and the round's other deliveries go out."""
    async with receiving() as good, receiving() as broken:
        await register(gql, tenant, good)
        await register(gql, other_tenant, broken)
        async with db.transaction() as session:
            [row] = await session.exec(
                select(WebhookEndpoint).where(WebhookEndpoint.url == broken.url)
            )
            row.secret = "whsec_not base64!"
            broken_id = row.id
        await approve_sale(db, clock, tenant)
        await approve_sale(db, clock, other_tenant)
        await dispatch(services)
        assert await worker.deliver_due() == 2
        assert len(good.received) == 1
        assert broken.received == []
    by_endpoint = {d.endpoint_id: d for d in await deliveries(db)}
    failed = by_endpoint[broken_id]
    assert (failed.status, failed.attempts) == (DeliveryStatus.PENDING, 1)
    assert failed.next_attempt_at is not None
    assert [d.status for i, d in by_endpoint.items() if i != broken_id] == [
        DeliveryStatus.DELIVERED
    ]
    async with db.session() as session:
        [attempt] = await session.exec(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == failed.id)
        )
    assert (attempt.error_class, attempt.succeeded) == ("SEND_FAILED", False)
    assert attempt.error is not None
    assert "base64" not in attempt.error  # a fixed message, never the exception's text


@pytest.mark.parametrize("to", ["2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z"])
async def test_a_delivery_log_range_that_ends_at_or_before_its_start_is_refused(
    gql: GQL, tenant: Tenant, to: str
) -> None:
    """It was an empty log, read as "nothing was sent then"."""
    query = """query($from: DateTime, $to: DateTime) {
      webhookDeliveries(occurredFrom: $from, occurredTo: $to) { totalCount } }"""
    given = {"from": "2026-12-01T00:00:00Z", "to": to}
    response = await gql(query, given, as_user=tenant.user(Role.FINANCE))
    [error] = response["errors"]
    assert error["extensions"] == {"code": "INVALID_RANGE", "field": "occurredTo"}
    assert error["message"] == "`occurredFrom` must be before `occurredTo`."
