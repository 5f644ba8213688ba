"""What each trigger tells whom: deals decided and deal protection about to expire (a
clock-driven check, once per deal), payouts held (with what clears the hold), released and
paid, tiers reached and lost, and partner applications (to the vendor's admins). Each is
read back through GraphQL as its recipient sees it; nobody else is told."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from deal_registration.registrations import review
from earnings import payouts, reviews
from earnings.models import PayoutHold
from earnings.programs import BaseRate, Rules, Tier
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from notifications.models import Notification
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tx
from tests.factories import Tenant, add_products, dispatch, principal_of, reverse_sale
from tests.notifications.scenarios import INBOX
from tests.support import GQL

OCTOBER = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def told(gql: GQL, user: User) -> list[dict[str, Any]]:
    data = await gql.data(INBOX, {}, as_user=user)
    return [e["node"] for e in data["notifications"]["edges"]]


async def kinds(gql: GQL, user: User) -> list[str]:
    return [n["kind"] for n in await told(gql, user)]


def bystanders(tenant: Tenant, other: Tenant) -> list[User]:
    return [
        tenant.user(Role.PARTNER_REP, 1), tenant.user(Role.PARTNER_ADMIN, 1),
        other.user(Role.PARTNER_ADMIN, 0), other.user(Role.VENDOR_ADMIN),
    ]  # fmt: skip


async def test_deal_decisions_and_protection_expiring_once(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    rep, admin = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_ADMIN, 0)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    approved = await register(db, clock, rep, approve_as=manager)
    rejected = await register(
        db, clock, rep, review_as=manager, customer_name="Hooli <Labs>",
        customer_domain="hooli.com",
    )  # fmt: skip
    async with db.transaction() as session:
        await review.reject(
            session, principal_of(manager), clock, registration_id=rejected.id,
            reason="Already ours",
        )  # fmt: skip
    await dispatch(services)
    for user in (rep, admin):
        notes = {n["kind"]: n for n in await told(gql, user)}
        assert set(notes) == {"deal_approved", "deal_rejected"}
        assert notes["deal_approved"]["title"] == "Deal registration approved: Acme Corp."
        assert "protected until" in notes["deal_approved"]["body"]
        assert notes["deal_rejected"]["body"] == (
            "Your deal registration for Hooli <Labs> ($10,000.00) was rejected: Already ours"
        )
    for user in [tenant.user(Role.VENDOR_ADMIN), *bystanders(tenant, other_tenant)]:
        assert await told(gql, user) == []

    # Protection ends after the vendor's period: nothing until it is within 7 days.
    assert approved.expires_at is not None
    await services.notifier.tick()
    assert "deal_expiring" not in await kinds(gql, rep)
    clock.advance(approved.expires_at - clock.now() - timedelta(days=7, minutes=-1))
    await services.notifier.tick()
    await services.notifier.tick()  # once per deal, however often the check runs
    for user in (rep, admin):
        expiring = [n for n in await told(gql, user) if n["kind"] == "deal_expiring"]
        assert len(expiring) == 1
        assert expiring[0]["title"].startswith("Deal protection ends ")
        assert expiring[0]["title"].endswith(": Acme Corp.")
    for user in bystanders(tenant, other_tenant):
        assert await told(gql, user) == []


async def test_payout_held_with_what_clears_it_released_and_paid(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(NOVEMBER)
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)  # no tax form
    await dispatch(services)
    admin, rep = tenant.user(Role.PARTNER_ADMIN, 0), tenant.user(Role.PARTNER_REP, 0)
    [held] = [n for n in await told(gql, admin) if n["kind"] == "payout_held"]
    assert held["title"] == "Payout held: October 2026"
    assert held["category"] == "PAYOUT"
    assert "Your payout for October 2026 ($100.00) is on hold." in held["body"]
    assert "What clears it: send your tax form to your channel manager" in held["body"]

    finance = tenant.principal(Role.FINANCE)
    await es.tax_form(db, clock, tenant)  # releases the automatic hold
    await tx(db, lambda s: payouts.approve(s, finance, clock, statement_id=statement.id))
    await tx(db, lambda s: payouts.mark_paid(s, finance, clock, statement_id=statement.id))
    await dispatch(services)
    assert await kinds(gql, admin) == ["payout_paid", "payout_released", "payout_held"]
    paid = (await told(gql, admin))[0]
    assert paid["title"] == "Payout paid: $100.00"
    # Statements are the organisation's: its admins are told, not its reps nor anyone else.
    assert [k for k in await kinds(gql, rep) if k.startswith("payout")] == []
    for user in [tenant.user(Role.FINANCE), *bystanders(tenant, other_tenant)]:
        assert await told(gql, user) == []


async def test_a_manual_hold_tells_nothing_of_the_internal_note(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(NOVEMBER)
    await es.tax_form(db, clock, tenant)
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)
    finance = tenant.principal(Role.FINANCE)
    await tx(
        db,
        lambda s: payouts.hold(
            s, finance, clock, statement_id=statement.id, note="fraud ring suspected",
            expected_release_at=datetime(2026, 11, 20, tzinfo=UTC),
        ),
    )  # fmt: skip
    await dispatch(services)
    [held] = await told(gql, tenant.user(Role.PARTNER_ADMIN, 0))
    assert "fraud" not in held["body"]
    assert "Our finance team has paused this payout." in held["body"]
    assert "We expect to release it by November 20, 2026." in held["body"]


async def held_for_review(
    db: Database, services: Services, clock: OffsetClock, tenant: Tenant, partner_note: str
) -> None:
    """Partner 0's October statement, held by a review (as an incentive rule places one)
    with ``partner_note`` for the partner and an internal note for the vendor."""
    await october_statement(db, services, clock, tenant)
    await place_review(db, clock, tenant, partner_note)


async def october_statement(
    db: Database, services: Services, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(OCTOBER)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(NOVEMBER)
    await es.tax_form(db, clock, tenant)  # no automatic hold: the review's is the only one
    await es.generate(db, clock, tenant, services.claim_signals)


async def place_review(db: Database, clock: OffsetClock, tenant: Tenant, partner_note: str) -> None:
    await tx(
        db,
        lambda s: reviews.place_review(
            s, clock, vendor_id=tenant.vendor.id, partner_id=tenant.partners[0].id,
            partner_note=partner_note, internal_note="growth looks inflated",
            ends_at=datetime(2026, 11, 30, tzinfo=UTC), source="RULE", source_id=uuid.uuid4(),
        ),
    )  # fmt: skip


async def test_a_review_hold_tells_the_partner_the_rules_note(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await held_for_review(db, services, clock, tenant, "We check unusual growth <b>first</b>")
    await dispatch(services)
    [held] = await told(gql, tenant.user(Role.PARTNER_ADMIN, 0))
    assert held["kind"] == "payout_held"
    assert (
        "This payout is on hold for a review: We check unusual growth <b>first</b>."
        " We expect to release it by November 30, 2026." in held["body"]
    )
    assert "What clears it: no action is needed from you" in held["body"]
    assert "inflated" not in held["body"]  # the internal note stays the vendor's


async def test_a_hold_released_before_its_notice_is_sent_is_told_as_it_was(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    # The review's hold is released before the dispatcher handles the statement's HELD
    # event: the notice tells the hold as it was when placed (the review's words), and the
    # release after it; the partner's later events are not held back behind a failure.
    await october_statement(db, services, clock, tenant)
    async with services.outbox.paused():
        await place_review(db, clock, tenant, "We check unusual growth first")
        [hold] = (await tx(db, lambda s: s.exec(select(PayoutHold)))).all()
        finance = tenant.principal(Role.FINANCE)
        await tx(db, lambda s: payouts.release(s, finance, clock, hold_id=hold.id))
    await dispatch(services)
    admin = tenant.user(Role.PARTNER_ADMIN, 0)
    released, held = await told(gql, admin)
    assert (held["kind"], released["kind"]) == ("payout_held", "payout_released")
    assert "This payout is on hold for a review: We check unusual growth first." in held["body"]
    failed = select(OutboxEvent.type).where(col(OutboxEvent.attempts) > 0)
    assert (await tx(db, lambda s: s.exec(failed))).all() == []


async def test_tier_reached_by_a_sale_and_lost_by_a_reversal(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    rules = Rules(
        base_rates=(BaseRate(1_000),),
        tiers=(Tier("Silver", 1_000_00, 100), Tier("Gold", 2_500_00, 200)),
    )
    await es.make_program(db, clock, tenant, rules)
    await es.sale(db, clock, tenant, 600_00)
    await dispatch(services)
    admin = tenant.user(Role.PARTNER_ADMIN, 0)
    assert await told(gql, admin) == []  # below every tier
    big = await es.sale(db, clock, tenant, 600_00)
    await dispatch(services)
    [reached] = await told(gql, admin)
    assert reached["kind"] == "tier_reached"
    assert reached["category"] == "TIER"
    assert reached["title"] == "You reached Silver"
    assert "$1,200.00 of qualified revenue" in reached["body"]
    assert "(threshold $1,000.00)" in reached["body"]
    await reverse_sale(db, clock, tenant, big)
    await dispatch(services)
    lost = (await told(gql, admin))[0]
    assert lost["kind"] == "tier_lost"
    assert lost["title"] == "You are back at the base rate"
    assert "no longer hold the Silver tier of Partner Rewards" in lost["body"]
    for user in bystanders(tenant, other_tenant):
        assert await told(gql, user) == []


async def test_a_partner_application_tells_the_vendors_admins(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    applied = await gql.data(
        """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) {
             userErrors { code } } }""",
        {"input": {"vendorSlug": tenant.vendor.slug, "company": "Initrode & <Sons>",
                   "contactName": "Bill", "contactEmail": "bill@initrode.example",
                   "country": "US"}},
    )  # fmt: skip
    assert applied["partnerApply"]["userErrors"] == []
    await dispatch(services)
    [note] = await told(gql, tenant.user(Role.VENDOR_ADMIN))
    assert note["kind"] == "partner_applied"
    assert note["title"] == "New partner application: Initrode & <Sons>"
    assert "Bill <bill@initrode.example>" in note["body"]
    for user in (
        tenant.user(Role.CHANNEL_MANAGER), tenant.user(Role.PARTNER_ADMIN, 0),
        other_tenant.user(Role.VENDOR_ADMIN),
    ):  # fmt: skip
        assert await told(gql, user) == []
    async with db.session() as session:
        rows = list(await session.exec(select(Notification).order_by(col(Notification.id))))
    assert len(rows) == 1


async def test_a_disabled_webhook_endpoint_tells_the_vendors_admins(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    # As the webhooks delivery worker records it (webhooks.events.WebhookEndpointDisabled).
    endpoint_id = uuid.uuid4()
    async with db.transaction() as session:
        await record_event(
            session, clock, vendor_id=tenant.vendor.id, type="WebhookEndpointDisabled",
            aggregate_id=endpoint_id,
            payload={
                "endpoint_id": str(endpoint_id), "url": "https://crm.example/hooks?a=1&b=<2>",
                "failing_since": (clock.now() - timedelta(days=1)).isoformat(),
                "disabled_at": clock.now().isoformat(), "last_error_class": "ConnectTimeout",
            },
        )  # fmt: skip
    await dispatch(services)
    [note] = await told(gql, tenant.user(Role.VENDOR_ADMIN))
    assert note["category"] == "WEBHOOK"
    assert note["title"] == "Webhook endpoint disabled"
    assert note["body"].startswith(
        "The webhook endpoint https://crm.example/hooks?a=1&b=<2> was disabled after repeated "
        "delivery failures (ConnectTimeout)."
    )
    for user in (
        tenant.user(Role.FINANCE), tenant.user(Role.PARTNER_ADMIN, 0),
        other_tenant.user(Role.VENDOR_ADMIN),
    ):  # fmt: skip
        assert await told(gql, user) == []
