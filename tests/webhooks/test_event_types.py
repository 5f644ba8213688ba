"""Each event type from the change that makes it, through the outbox to the receiver:
what its data carries, for the endpoint's own vendor (who owns every figure in it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from deal_registration.registrations import extensions
from incentives.actions import Action, ActionKind
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import register as register_deal
from tests.deal_registration.registrations.scenarios import submit
from tests.deal_registration.sales.scenarios import CREATE as CLAIM_CREATE
from tests.deal_registration.sales.scenarios import claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, dispatch, gid, principal_of
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, settle, shop
from tests.leaderboards.test_winners import APPROVE, finished_contest, winners_of
from tests.partners.test_partner_applications import _apply, form
from tests.support import GQL
from tests.webhooks.receiver import Receiver, receiving
from tests.webhooks.scenarios import register
from webhooks.worker import DeliveryWorker

OCTOBER = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def of_type(receiver: Receiver, type_: str) -> list[dict[str, Any]]:
    found = [r.payload for r in receiver.received if r.payload["type"] == type_]
    assert all(r.verified_with for r in receiver.received)
    return [p["data"] for p in found]


async def test_earnings_entries_and_payout_statements(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    clock.freeze(OCTOBER)
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
        await es.sale(db, clock, tenant, 100_000)
        await dispatch(services)
        clock.freeze(NOVEMBER)
        await es.tax_form(db, clock, tenant)
        await es.generate(db, clock, tenant, services.claim_signals)
        await dispatch(services)
        await dispatch(services)  # the events earnings recorded while crediting
        while await worker.deliver_due():
            pass
        [entry] = of_type(receiver, "earnings_entry.created")
        assert (entry["kind"], entry["amountMinor"], entry["currency"]) == (
            "COMMISSION", 10_000, "USD"
        )  # fmt: skip
        assert entry["explanation"].startswith("Partner Rewards: 10% of 1,000.00 USD")
        assert entry["partnerId"] == str(tenant.partners[0].id)
        assert [r.message_id for r in receiver.received if r.payload["type"] ==
                "earnings_entry.created"] == [entry["earningsEntryId"]]  # fmt: skip
        [statement] = of_type(receiver, "payout_statement.status_changed")
        assert (statement["fromStatus"], statement["toStatus"], statement["amountMinor"]) == (
            None, "PENDING", 10_000
        )  # fmt: skip
        assert statement["periodStart"] == "2026-10-01T00:00:00+00:00"


async def test_claims_deals_and_partners(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        await seed_registry(db, clock, tenant, 2)
        rep = tenant.user(Role.PARTNER_REP)
        rejected = (
            await gql.data(CLAIM_CREATE, {"input": claim_input(["ZZ999999"], clock)}, as_user=rep)
        )["saleClaimCreate"]["saleClaim"]
        assert rejected["state"] == "REJECTED"
        async with db.transaction() as session:
            await add_products(session, clock, tenant)
        await submit(gql, rep, clock)
        applied = await _apply(gql, form(tenant))
        created = await gql.data(
            """mutation { partnerCreate(input: {name: "Raviga", region: "EMEA"}) {
                 partner { id } userErrors { code } } }""",
            as_user=tenant.user(Role.VENDOR_ADMIN),
        )
        assert created["partnerCreate"]["userErrors"] == []
        await dispatch(services)
        while await worker.deliver_due():
            pass

        [claim] = of_type(receiver, "sale_claim.rejected")
        assert (claim["state"], claim["partnerId"]) == ("REJECTED", str(tenant.partners[0].id))
        [deal] = of_type(receiver, "deal_registration.status_changed")
        assert deal["toStatus"] in ("SUBMITTED", "UNDER_REVIEW")
        [application] = of_type(receiver, "partner.applied")
        assert (application["reference"], application["company"]) == (
            applied["reference"], "Hooli Resellers"
        )  # fmt: skip
        [enrolled] = of_type(receiver, "partner.enrolled")
        assert (enrolled["name"], enrolled["via"]) == ("Raviga", "CREATED")


async def test_a_finished_contest_and_its_approved_prize(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        contest = await finished_contest(services, db, clock, tenant)
        cash = (await winners_of(db, contest.id))[0]
        approved = await gql.data(
            APPROVE, {"input": {"id": gid(cash), "note": "ok"}}, as_user=tenant.user(Role.FINANCE)
        )
        assert approved["contestPrizeApprove"]["userErrors"] == []
        for _ in range(3):  # the finish, the approval, then the credit's EarningsChanged
            await dispatch(services)
        while await worker.deliver_due():
            pass
        [finished] = of_type(receiver, "contest.finished")
        assert (finished["contestId"], finished["contestName"], finished["final"]) == (
            str(contest.id), "Q4 push", True
        )  # fmt: skip
        first = finished["winners"][0]
        assert (first["rank"], first["partnerId"], first["prize"], first["prizeMinor"]) == (
            1, str(tenant.partners[1].id), "Cash", 500_00
        )  # fmt: skip
        prizes = [e for e in of_type(receiver, "earnings_entry.created") if e["kind"] == "PRIZE"]
        assert [(p["partnerId"], p["amountMinor"]) for p in prizes] == [
            (str(tenant.partners[1].id), 500_00)
        ]
        assert prizes[0]["explanation"].startswith("Prize for finishing 1st")


async def test_a_rule_firing(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        rule = await active_rule(db, clock, s, condition=GROWTH, actions=[
            Action(ActionKind.GROUP_WINDOW, group_id=s.boost_group_id, days=30),
            Action(ActionKind.NOTIFY_STAFF, message="Partner 0 is growing fast"),
        ])  # fmt: skip
        assert await daily(db, clock) == 1
        await settle(services)
        while await worker.deliver_due():
            pass
        [fired] = of_type(receiver, "rule.fired")
        assert (fired["ruleId"], fired["ruleName"], fired["version"], fired["partnerId"]) == (
            str(rule.id), "Growth kicker", 1, str(tenant.partners[0].id)
        )  # fmt: skip
        assert fired["actions"] == ["GROUP_WINDOW", "NOTIFY_STAFF"]
        assert (fired["estimatedCostMinor"], fired["currency"]) == (
            44_80,
            "USD",
        )  # Boost: 2 % of the 30-day pace
        assert fired["firedAt"].startswith("2026-12-05T")
        # The firing's own facts: no signal values read, no staff message.
        assert set(fired) == {
            "ruleFiringId",
            "ruleId",
            "ruleName",
            "ruleVersionId",
            "version",
            "partnerId",
            "actions",
            "estimatedCostMinor",
            "currency",
            "firedAt",
        }
        assert "growing" not in str(fired)


async def test_a_granted_extension(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker,
) -> None:  # fmt: skip
    async with receiving() as receiver:
        await register(gql, tenant, receiver)
        async with db.transaction() as session:
            await add_products(session, clock, tenant)
        rep, admin = tenant.user(Role.PARTNER_REP), tenant.user(Role.VENDOR_ADMIN)
        clock.freeze()
        deal = await register_deal(db, clock, rep, approve_as=admin)
        assert deal.expires_at is not None
        async with db.transaction() as session:
            await extensions.request_extension(
                session, principal_of(rep), clock, registration_id=deal.id, reason="Later."
            )
            await extensions.decide_extension(
                session, principal_of(admin), clock, registration_id=deal.id, grant=True
            )
        await dispatch(services)
        while await worker.deliver_due():
            pass
        [moved] = of_type(receiver, "deal_registration.protection_changed")
        assert moved == {
            "dealRegistrationId": str(deal.id), "partnerId": str(tenant.partners[0].id),
            "previousUntil": deal.expires_at.isoformat(),
            "protectedUntil": (deal.expires_at + timedelta(days=30)).isoformat(),
            "action": "GRANT_EXTENSION", "at": clock.now().isoformat(),
        }  # fmt: skip
