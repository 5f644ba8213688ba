"""Races from outside: the same mutation sent at once many times (a double click, a mobile
client's retry storm) and conflicting mutations sent at once (approve and reject), through
GraphQL over HTTP, on whichever database the run uses (SQLite's writers take turns;
PostgreSQL's transactions interleave). Every request is answered (a loser with a coded
userError, never INTERNAL_SERVER_ERROR), the change happens once (one transition, one
outbox event, one audit entry), and the record ends in a state one of the requests could
have left it in."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from deal_registration.registrations.models import (
    DealExtensionRequest,
    DealRegistration,
    DealStatus,
    DealTransition,
)
from deal_registration.sales.models import SaleClaim, SaleClaimDecision
from earnings import payouts
from earnings.models import (
    EarningEntry,
    PayoutDecision,
    PayoutHold,
    PayoutProfile,
    PayoutStatement,
    PayoutStatus,
    ProgramVersion,
)
from forecasts.models import ForecastRevision, PartnerForecast
from incentives import rules as incentive_rules
from incentives.actions import Action, ActionKind
from incentives.models import (
    BudgetChangeStatus,
    IncentiveRule,
    IncentiveRuleBudgetChange,
    IncentiveRuleVersion,
    Period,
)
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from leaderboards.models import Contest
from partners import groups
from partners.group_models import PartnerGroupMember, PartnerGroupMembership
from partners.models import Partner, User
from partners.names import name_key
from partners.roles import Role
from schema.context import Services
from subscriptions.models import Subscription, SubscriptionChange
from tests.api.fuzzing import decode_id
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE as CLAIM_CREATE
from tests.deal_registration.sales.scenarios import (
    WIDGET,
    claim_input,
    csv_bytes,
    registry_rows,
    seed_registry,
)
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, approve_sale, create_contest, dispatch, gid
from tests.forecasts import scenarios as forecasts_scenarios
from tests.incentives import scenarios as incentive_scenarios
from tests.pilots import scenarios as pilots_scenarios
from tests.subscriptions import scenarios as subscription_scenarios
from tests.support import GQL, multipart
from webhooks.models import EndpointStatus, WebhookDelivery, WebhookEndpoint

# How many identical requests a storm sends at once.
STORM = 10


async def fire(gql: GQL, calls: Sequence[tuple[str, dict[str, Any], User]]) -> list[dict[str, Any]]:
    """Send every call at once; each answer's mutation payload (the first field of data)."""
    answers = await asyncio.gather(*(gql(doc, {"input": v}, as_user=u) for doc, v, u in calls))
    payloads = []
    for answer in answers:
        assert "errors" not in answer, answer  # no INTERNAL_SERVER_ERROR, no other error
        (payload,) = answer["data"].values()
        payloads.append(payload)
    return payloads


def winners(payloads: list[dict[str, Any]]) -> list[int]:
    """The indexes of the requests that succeeded; every other one has coded userErrors."""
    won = []
    for i, payload in enumerate(payloads):
        errors = payload["userErrors"]
        if not errors:
            won.append(i)
        else:
            assert all(e["code"] for e in errors), payload
    return won


async def events_of(db: Database, aggregate_id: uuid.UUID) -> Counter[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent.type).where(OutboxEvent.aggregate_id == aggregate_id)
        )
        return Counter(rows.all())


async def audit_of(db: Database, entity_id: uuid.UUID) -> Counter[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(AuditEntry.action).where(AuditEntry.entity_id == str(entity_id))
        )
        return Counter(rows.all())


# --- deal registrations -----------------------------------------------------------------


@pytest.fixture
async def shop(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    """The tenant, with the catalogue its deals and claims sell from."""
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


DEAL_ACTIONS = {
    name: f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      dealRegistration {{ id status }} userErrors {{ field code message }} }} }}"""
    for name, kind in (
        ("dealRegistrationApprove", "DealRegistrationApproveInput"),
        ("dealRegistrationReject", "DealRegistrationActionInput"),
        ("dealRegistrationWithdraw", "DealRegistrationActionInput"),
        ("dealRegistrationMarkWon", "DealRegistrationActionInput"),
        ("dealRegistrationMarkLost", "DealRegistrationActionInput"),
    )
}


async def deal_state(db: Database, registration_id: uuid.UUID) -> tuple[DealStatus, int]:
    async with db.session() as session:
        row = await session.get(DealRegistration, registration_id)
        assert row is not None
        transitions = await session.exec(
            select(func.count()).where(col(DealTransition.registration_id) == registration_id)
        )
        return row.status, transitions.one()


WEBHOOK_CREATE = """mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) { endpoint { id } userErrors { field code message } } }"""


async def test_a_storm_of_mark_won_wins_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant, services: Services
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    deal = await register(db, clock, rep, approve_as=admin)
    await dispatch(services)
    endpoint = {"url": "https://hooks.example.com/deals",
                "eventTypes": ["deal_registration.status_changed"]}  # fmt: skip
    made = await gql.data(WEBHOOK_CREATE, {"input": endpoint}, as_user=admin)
    endpoint_id = plain_id(made["webhookEndpointCreate"]["endpoint"]["id"])
    _, before = await deal_state(db, deal.id)
    doc = DEAL_ACTIONS["dealRegistrationMarkWon"]
    payloads = await fire(gql, [(doc, {"id": gid(deal)}, rep)] * STORM)
    assert len(winners(payloads)) == 1
    assert await deal_state(db, deal.id) == (DealStatus.WON, before + 1)
    assert (await events_of(db, deal.id))["DealWon"] == 1
    while await dispatch(services):
        pass
    async with db.session() as session:
        deliveries = (
            await session.exec(
                select(func.count()).where(WebhookDelivery.endpoint_id == endpoint_id)
            )
        ).one()
    assert deliveries == 1  # one status change, told once


async def test_a_storm_of_approvals_approves_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    deal = await register(db, clock, rep, review_as=admin)
    _, before = await deal_state(db, deal.id)
    doc = DEAL_ACTIONS["dealRegistrationApprove"]
    payloads = await fire(gql, [(doc, {"id": gid(deal)}, admin)] * STORM)
    assert len(winners(payloads)) == 1
    assert await deal_state(db, deal.id) == (DealStatus.APPROVED, before + 1)
    assert (await events_of(db, deal.id))["DealApproved"] == 1


async def test_approve_reject_and_withdraw_at_once_decide_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    rep = tenant.user(Role.PARTNER_REP)
    for _ in range(3):
        deal = await register(
            db, clock, rep, review_as=admin, customer_domain=f"{uuid.uuid4().hex}.com"
        )
        _, before = await deal_state(db, deal.id)
        calls = [
            (DEAL_ACTIONS["dealRegistrationApprove"], {"id": gid(deal)}, admin),
            (DEAL_ACTIONS["dealRegistrationReject"], {"id": gid(deal), "reason": "no"}, manager),
            (DEAL_ACTIONS["dealRegistrationWithdraw"], {"id": gid(deal)}, rep),
        ] * 3
        payloads = await fire(gql, calls)
        (won,) = winners(payloads)
        expected = {0: DealStatus.APPROVED, 1: DealStatus.REJECTED, 2: DealStatus.WITHDRAWN}
        assert await deal_state(db, deal.id) == (expected[won % 3], before + 1)
        approved = (await events_of(db, deal.id))["DealApproved"]
        assert approved == (1 if won % 3 == 0 else 0)


async def test_won_lost_and_withdrawn_at_once_close_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    for _ in range(3):
        deal = await register(
            db, clock, rep, approve_as=admin, customer_domain=f"{uuid.uuid4().hex}.com"
        )
        _, before = await deal_state(db, deal.id)
        calls = [
            (DEAL_ACTIONS["dealRegistrationMarkWon"], {"id": gid(deal)}, rep),
            (DEAL_ACTIONS["dealRegistrationMarkLost"], {"id": gid(deal)}, admin),
            (DEAL_ACTIONS["dealRegistrationWithdraw"], {"id": gid(deal)}, rep),
        ] * 3
        payloads = await fire(gql, calls)
        (won,) = winners(payloads)
        expected = {0: DealStatus.WON, 1: DealStatus.LOST, 2: DealStatus.WITHDRAWN}
        assert await deal_state(db, deal.id) == (expected[won % 3], before + 1)
        assert (await events_of(db, deal.id))["DealWon"] == (1 if won % 3 == 0 else 0)


# --- sale claims ---------------------------------------------------------------------------

CLAIM_ACTIONS = {
    name: f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      saleClaim {{ id state }} userErrors {{ field code message }} }} }}"""
    for name, kind in (
        ("saleClaimApprove", "SaleClaimApproveInput"),
        ("saleClaimReject", "SaleClaimRejectInput"),
        ("saleClaimReverse", "SaleClaimReverseInput"),
    )
}


async def open_claim(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, serial: str
) -> str:
    """A claim of one serial of partner 0's, waiting for its proof: its global id."""
    rep = tenant.user(Role.PARTNER_REP)
    answer = await gql.data(CLAIM_CREATE, {"input": claim_input([serial], clock)}, as_user=rep)
    claim = answer["saleClaimCreate"]["saleClaim"]
    assert claim["state"] in ("NEEDS_PROOF", "UNDER_REVIEW"), answer
    return str(claim["id"])


async def claim_state(db: Database, claim_gid: str) -> tuple[str, Counter[str]]:
    claim_id = uuid.UUID(decode_id(claim_gid).split(":", 1)[1])
    async with db.session() as session:
        claim = await session.get(SaleClaim, claim_id)
        assert claim is not None
    return claim.state.value, await events_of(db, claim_id)


async def test_a_storm_of_claim_approvals_credits_the_sale_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    serials = await seed_registry(db, clock, tenant, 4)
    admin = tenant.user(Role.VENDOR_ADMIN)
    claim = await open_claim(gql, db, clock, tenant, serials[0])
    payloads = await fire(gql, [(CLAIM_ACTIONS["saleClaimApprove"], {"id": claim}, admin)] * STORM)
    assert len(winners(payloads)) == 1
    state, events = await claim_state(db, claim)
    assert (state, events["SaleApproved"]) == ("APPROVED", 1)
    payloads = await fire(
        gql,
        [(CLAIM_ACTIONS["saleClaimReverse"], {"id": claim, "reason": "REFUNDED"}, admin)] * STORM,
    )
    assert len(winners(payloads)) == 1
    state, events = await claim_state(db, claim)
    assert (state, events["SaleApproved"], events["SaleReversed"]) == ("REVERSED", 1, 1)


async def test_claim_approve_and_reject_at_once_decide_the_claim_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    serials = await seed_registry(db, clock, tenant, 6)
    admin = tenant.user(Role.VENDOR_ADMIN)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    for serial in serials[:3]:
        claim = await open_claim(gql, db, clock, tenant, serial)
        calls = [
            (CLAIM_ACTIONS["saleClaimApprove"], {"id": claim}, admin),
            (CLAIM_ACTIONS["saleClaimReject"], {"id": claim, "reason": "OTHER"}, manager),
        ] * 4
        (won,) = winners(await fire(gql, calls))
        state, events = await claim_state(db, claim)
        if won % 2 == 0:
            assert (state, events["SaleApproved"]) == ("APPROVED", 1)
        else:
            assert (state, events["SaleApproved"]) == ("REJECTED", 0)


# --- payouts -------------------------------------------------------------------------------

PAYOUT_ACTIONS = {
    name: f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      statement {{ id status }} hold {{ id }} userErrors {{ field code message }} }} }}"""
    for name, kind in (
        ("payoutApprove", "PayoutStatementInput"),
        ("payoutMarkPaid", "PayoutMarkPaidInput"),
        ("payoutHold", "PayoutHoldInput"),
        ("payoutHoldRelease", "PayoutHoldReleaseInput"),
    )
}
MARCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


async def statement_for(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, *, approved: bool
) -> PayoutStatement:
    """A pending (or approved) statement of partner 0's for March."""
    clock.freeze(MARCH)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.tax_form(db, clock, tenant)
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)
    if approved:
        fin = tenant.principal(Role.FINANCE)
        await es.tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=statement.id))
    return statement


async def payout_state(
    db: Database, statement_id: uuid.UUID
) -> tuple[PayoutStatus, Counter[str], int]:
    """The statement's status, its decisions by action, and its holds still open."""
    async with db.session() as session:
        statement = await session.get(PayoutStatement, statement_id)
        assert statement is not None
        decisions = await session.exec(
            select(PayoutDecision.action).where(PayoutDecision.statement_id == statement_id)
        )
        open_holds = await session.exec(
            select(func.count()).where(
                PayoutHold.statement_id == statement_id, col(PayoutHold.released_at).is_(None)
            )
        )
        return statement.status, Counter(a.value for a in decisions), open_holds.one()


async def test_a_storm_of_payout_approvals_and_payments_pays_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    statement = await statement_for(db, clock, tenant, services, approved=False)
    finance = tenant.user(Role.FINANCE)
    ref = {"statementId": gid(statement)}
    assert (
        len(winners(await fire(gql, [(PAYOUT_ACTIONS["payoutApprove"], ref, finance)] * STORM)))
        == 1
    )
    assert (
        len(winners(await fire(gql, [(PAYOUT_ACTIONS["payoutMarkPaid"], ref, finance)] * STORM)))
        == 1
    )
    status, decisions, _ = await payout_state(db, statement.id)
    assert (status, decisions["APPROVE"], decisions["PAY"]) == (PayoutStatus.PAID, 1, 1)


async def test_a_hold_placed_as_the_payout_is_paid_never_holds_a_paid_payout(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    statement = await statement_for(db, clock, tenant, services, approved=True)
    finance = tenant.user(Role.FINANCE)
    ref = {"statementId": gid(statement)}
    calls = [
        (PAYOUT_ACTIONS["payoutMarkPaid"], ref, finance),
        (PAYOUT_ACTIONS["payoutHold"], {**ref, "note": "check the bank account"}, finance),
    ] * 4
    won = winners(await fire(gql, calls))
    status, decisions, open_holds = await payout_state(db, statement.id)
    paid = [i for i in won if i % 2 == 0]
    if paid:  # paid first: every hold after it was refused
        assert (status, decisions["PAY"], decisions["HOLD"], open_holds) == (
            PayoutStatus.PAID,
            1,
            0,
            0,
        )
        assert won == paid
    else:  # held first: no payment
        assert status is PayoutStatus.HELD
        assert decisions["PAY"] == 0
        assert decisions["HOLD"] == open_holds == len(won)


async def test_releasing_holds_at_once_releases_each_once_and_frees_the_payout(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    statement = await statement_for(db, clock, tenant, services, approved=False)
    finance = tenant.user(Role.FINANCE)
    holds = []
    for note in ("first", "second"):
        answer = await gql.data(
            PAYOUT_ACTIONS["payoutHold"],
            {"input": {"statementId": gid(statement), "note": note}},
            as_user=finance,
        )
        holds.append(answer["payoutHold"]["hold"]["id"])
    calls = [(PAYOUT_ACTIONS["payoutHoldRelease"], {"holdId": h}, finance) for h in holds] * 5
    won = winners(await fire(gql, calls))
    assert sorted(i % 2 for i in won) == [0, 1]  # each hold released once
    status, decisions, open_holds = await payout_state(db, statement.id)
    assert (status, decisions["RELEASE"], open_holds) == (PayoutStatus.PENDING, 2, 0)


# --- the vendor's admin records: pilots, contests, groups, API keys, applications ----------


async def audited(db: Database, entity_id: uuid.UUID | str, action: str) -> int:
    return (await audit_of(db, uuid.UUID(str(entity_id))))[action]


def plain_id(global_id: str) -> uuid.UUID:
    return uuid.UUID(decode_id(global_id).split(":", 1)[1])


async def test_storms_on_a_pilot_start_it_once_and_end_it_once(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    tenant = await pilots_scenarios.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = await pilots_scenarios.group_id(db, tenant, "Resellers")
    made = await gql.data(
        pilots_scenarios.CREATE,
        {
            "input": pilots_scenarios.create_input(
                gid("PartnerGroup", group), clock.now() + timedelta(days=30)
            )
        },
        as_user=admin,
    )
    pilot = made["pilotCreate"]["pilot"]["id"]
    before = await pilots_scenarios.counts(db)
    assert (
        len(winners(await fire(gql, [(pilots_scenarios.START, {"id": pilot}, admin)] * STORM))) == 1
    )
    started = await pilots_scenarios.counts(db)
    assert started[:3] == before[:3]  # no pilot, arm or group made twice
    assert await audited(db, plain_id(pilot), "pilot.started") == 1
    assert (
        len(winners(await fire(gql, [(pilots_scenarios.END, {"id": pilot}, admin)] * STORM))) == 1
    )
    assert await audited(db, plain_id(pilot), "pilot.ended") == 1


CONTEST_PUBLISH = """mutation($input: ContestIdInput!) { contestPublish(input: $input) {
  contest { id status } userErrors { field code message } } }"""
CONTEST_CANCEL = """mutation($input: ContestIdInput!) { contestCancel(input: $input) {
  contest { id status } userErrors { field code message } } }"""


async def test_a_contest_published_and_cancelled_at_once_ends_in_one_of_the_two(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    contest = await create_contest(db, clock, tenant, publish=False)
    ref = {"id": gid(contest)}
    assert len(winners(await fire(gql, [(CONTEST_PUBLISH, ref, admin)] * STORM))) == 1
    assert await audited(db, contest.id, "contest.published") == 1
    contest = await create_contest(db, clock, tenant, publish=False)
    ref = {"id": gid(contest)}
    won = winners(
        await fire(gql, [(CONTEST_PUBLISH, ref, admin), (CONTEST_CANCEL, ref, admin)] * 4)
    )
    async with db.session() as session:
        status = (await session.get(Contest, contest.id)).status  # type: ignore[union-attr]
    published = [i for i in won if i % 2 == 0]
    cancelled = [i for i in won if i % 2 == 1]
    assert len(published) <= 1
    assert len(cancelled) <= 1
    assert status.value == ("CANCELLED" if cancelled else "SCHEDULED")
    assert await audited(db, contest.id, "contest.published") == len(published)
    assert await audited(db, contest.id, "contest.cancelled") == len(cancelled)


MEMBERS_ADD = """mutation($input: PartnerGroupMembersInput!) {
  partnerGroupMembersAdd(input: $input) {
  partnerGroup { id } userErrors { field code message } } }"""
MEMBERS_REMOVE = """mutation($input: PartnerGroupMembersInput!) {
  partnerGroupMembersRemove(input: $input) {
    partnerGroup { id } userErrors { field code message } } }"""


async def test_adding_and_removing_a_member_at_once_keeps_one_membership_history(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        group = await groups.create_group(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Hand-picked"
        )
    partner = tenant.partners[0]
    ref = {"id": gid(group), "partnerIds": [gid(partner)]}
    fire_add = [(MEMBERS_ADD, ref, admin)] * STORM
    won = winners(await fire(gql, fire_add))
    assert won  # an add of a member that is already in is no error
    for _ in range(2):
        winners(await fire(gql, [(MEMBERS_ADD, ref, admin), (MEMBERS_REMOVE, ref, admin)] * 4))
    async with db.session() as session:
        members = (
            await session.exec(
                select(func.count()).where(
                    PartnerGroupMember.group_id == group.id,
                    PartnerGroupMember.partner_id == partner.id,
                )
            )
        ).one()
        windows = list(
            await session.exec(
                select(PartnerGroupMembership).where(
                    PartnerGroupMembership.group_id == group.id,
                    PartnerGroupMembership.partner_id == partner.id,
                )
            )
        )
    assert members == 1
    open_windows = [w for w in windows if w.left_at is None]
    assert len(open_windows) <= 1


API_KEY_CREATE = """mutation($input: ApiKeyCreateInput!) { apiKeyCreate(input: $input) {
  apiKey { id } userErrors { field code message } } }"""
API_KEY_REVOKE = """mutation($input: ApiKeyRevokeInput!) { apiKeyRevoke(input: $input) {
  userErrors { field code message } } }"""


async def test_a_storm_of_revocations_revokes_the_api_key_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(API_KEY_CREATE, {"input": {"name": "ci"}}, as_user=admin)
    key = made["apiKeyCreate"]["apiKey"]["id"]
    assert len(winners(await fire(gql, [(API_KEY_REVOKE, {"id": key}, admin)] * STORM))) == 1
    assert sum((await audit_of(db, plain_id(key))).values()) == 2  # created, revoked


APPLY = """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) {
  reference userErrors { field code message } } }"""
APPLICATIONS = """{ partnerApplications(status: PENDING) { edges { node { id } } } }"""
APPLICATION_APPROVE = """mutation($input: PartnerApplicationApproveInput!) {
  partnerApplicationApprove(input: $input) { application { status } userErrors { field code } } }"""
APPLICATION_REJECT = """mutation($input: PartnerApplicationRejectInput!) {
  partnerApplicationReject(input: $input) { application { status } userErrors { field code } } }"""


async def test_an_application_approved_and_rejected_at_once_makes_one_partner_at_most(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    for n in range(2):
        form = {
            "vendorSlug": tenant.vendor.slug, "company": f"Hooli {n}", "contactName": "Gavin",
            "contactEmail": f"gavin{n}@hooli.example", "country": "us", "message": "We sell.",
        }  # fmt: skip
        assert (await gql.data(APPLY, {"input": form}))["partnerApply"]["userErrors"] == []
    listed = await gql.data(APPLICATIONS, as_user=admin)
    first, second = (e["node"]["id"] for e in listed["partnerApplications"]["edges"])
    approve = (APPLICATION_APPROVE, {"id": first, "region": "EMEA"}, admin)
    assert len(winners(await fire(gql, [approve] * STORM))) == 1
    approve = (APPLICATION_APPROVE, {"id": second, "region": "EMEA"}, admin)
    reject = (APPLICATION_REJECT, {"id": second, "reason": "Not now."}, manager)
    assert len(winners(await fire(gql, [approve, reject] * 4))) == 1
    async with db.session() as session:
        names = list(
            await session.exec(
                select(Partner.name).where(
                    Partner.vendor_id == tenant.vendor.id, col(Partner.name).like("Hooli%")
                )
            )
        )
    assert names.count("Hooli 0") == 1
    assert names.count("Hooli 1") <= 1


async def test_applications_of_look_alike_companies_approved_at_once_make_one_partner(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """Two applications from companies whose names read alike ("Pied Piper", "PIED PIPER"),
    each approved several times at once: one partner; the other application is answered
    DUPLICATE_NAME (and stays pending), never a server error."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    for n, company in enumerate(("Pied Piper", "PIED\u200b PIPER")):
        form = {
            "vendorSlug": tenant.vendor.slug, "company": company, "contactName": "Richard",
            "contactEmail": f"richard{n}@piper.example", "country": "us", "message": "Hi.",
        }  # fmt: skip
        assert (await gql.data(APPLY, {"input": form}))["partnerApply"]["userErrors"] == []
    listed = await gql.data(APPLICATIONS, as_user=admin)
    ids = [e["node"]["id"] for e in listed["partnerApplications"]["edges"]]
    calls = [(APPLICATION_APPROVE, {"id": i, "region": "EMEA"}, admin) for i in ids] * 4
    payloads = await fire(gql, calls)
    assert len(winners(payloads)) == 1, payloads
    codes = {e["code"] for p in payloads for e in p["userErrors"]}
    assert codes <= {"ALREADY_DECIDED", "DUPLICATE_NAME"}, payloads
    async with db.session() as session:
        names = list(
            await session.exec(select(Partner.name).where(Partner.vendor_id == tenant.vendor.id))
        )
    assert sum(name_key(n) == "pied piper" for n in names) == 1, names


ADJUST = """mutation($input: EarningAdjustmentCreateInput!) {
  earningAdjustmentCreate(input: $input) {
  userErrors { field code message } } }"""


async def test_a_storm_of_one_adjustment_books_it_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    finance = tenant.user(Role.FINANCE)
    adjustment = {
        "partnerId": gid(tenant.partners[0]), "amount": {"amount": "12.34", "currency": "USD"},
        "note": "goodwill", "idempotencyKey": "adj-1",
    }  # fmt: skip
    won = winners(await fire(gql, [(ADJUST, adjustment, finance)] * STORM))
    assert len(won) == STORM  # a retry is answered with the first result
    async with db.session() as session:
        entries = (
            await session.exec(
                select(func.count()).where(EarningEntry.partner_id == tenant.partners[0].id)
            )
        ).one()
    assert entries == 1


GENERATE = """mutation($input: PayoutStatementsGenerateInput!) {
  payoutStatementsGenerate(input: $input) {
    statements { id } userErrors { field code message } } }"""


async def test_a_storm_of_statement_runs_makes_one_statement_per_partner_and_month(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(MARCH)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    for index in (0, 1):
        await es.tax_form(db, clock, tenant, index)
        await es.sale(db, clock, tenant, 100_000, partner_index=index)
    await dispatch(services)
    clock.freeze(APRIL + timedelta(days=1))
    finance = tenant.user(Role.FINANCE)
    month = {"month": MARCH.replace(day=1, hour=0).isoformat()}
    calls = [(GENERATE, month, finance)] * (STORM // 2)
    calls += [(GENERATE, {**month, "idempotencyKey": "run-1"}, finance)] * (STORM // 2)
    payloads = await fire(gql, calls)
    winners(payloads)
    made = [s["id"] for p in payloads if p["statements"] for s in p["statements"]]
    async with db.session() as session:
        statements = list(
            await session.exec(
                select(PayoutStatement).where(PayoutStatement.vendor_id == tenant.vendor.id)
            )
        )
    assert len(statements) == 2
    assert {plain_id(i) for i in made} == {s.id for s in statements}
    assert sorted(s.total_minor for s in statements) == [10_000, 10_000]  # 10 % of 1,000.00


EXTENSION_REQUEST = """mutation($input: DealRegistrationActionInput!) {
  dealRegistrationExtensionRequest(input: $input) {
    dealRegistration { id } userErrors { field code message } } }"""
EXTENSION_DECIDE = """mutation($input: DealRegistrationExtensionDecideInput!) {
  dealRegistrationExtensionDecide(input: $input) {
    dealRegistration { id expiresAt } userErrors { field code message } } }"""


async def test_extension_requests_and_decisions_at_once_count_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    manager = tenant.user(Role.CHANNEL_MANAGER)
    rep = tenant.user(Role.PARTNER_REP)
    deal = await register(db, clock, rep, approve_as=admin)
    ask = (EXTENSION_REQUEST, {"id": gid(deal), "reason": "slipped a quarter"}, rep)
    won = winners(await fire(gql, [ask] * STORM))
    async with db.session() as session:
        requests = list(
            await session.exec(
                select(DealExtensionRequest).where(DealExtensionRequest.registration_id == deal.id)
            )
        )
    assert len(requests) == len(won) == 1, requests
    grant = (EXTENSION_DECIDE, {"id": gid(deal), "grant": True, "reason": "ok"}, admin)
    refuse = (EXTENSION_DECIDE, {"id": gid(deal), "grant": False, "reason": "no"}, manager)
    won = winners(await fire(gql, [grant, refuse] * 4))
    assert len(won) == 1
    async with db.session() as session:
        transitions = list(
            await session.exec(
                select(DealTransition.action).where(DealTransition.registration_id == deal.id)
            )
        )
        stored = await session.get(DealRegistration, deal.id)
    assert stored is not None
    decided = [a for a in transitions if a.value in ("GRANT_EXTENSION", "REFUSE_EXTENSION")]
    assert len(decided) == 1
    granted = decided[0].value == "GRANT_EXTENSION"
    assert (stored.expires_at > deal.expires_at) == granted  # type: ignore[operator]


# --- subscriptions (billing reports: renewals credit earnings) ----------------------------


async def test_billing_reports_at_once_change_a_subscription_once_per_billing_id(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(subscription_scenarios.T0)
    await subscription_scenarios.seed(db, clock, tenant)
    _, subscription = await subscription_scenarios.first_sale(db, clock, tenant, services)
    await subscription_scenarios.settle(services)
    finance = tenant.user(Role.FINANCE)
    ref = gid("CustomerSubscription", subscription.id)
    renew = (subscription_scenarios.RENEW, {"subscriptionId": ref, "externalId": "inv-1"}, finance)
    won = winners(await fire(gql, [renew] * STORM))
    assert len(won) == STORM  # a report sent again is answered, and changes nothing
    cancels = [
        (subscription_scenarios.CANCEL, {"subscriptionId": ref, "externalId": f"c-{i}"}, finance)
        for i in range(STORM)
    ]
    assert len(winners(await fire(gql, cancels))) == 1  # cancelled once; then refused
    async with db.session() as session:
        kinds = list(
            await session.exec(
                select(SubscriptionChange.kind).where(
                    SubscriptionChange.subscription_id == subscription.id
                )
            )
        )
        stored = await session.get(Subscription, subscription.id)
    assert stored is not None
    assert Counter(k.value for k in kinds)["RENEWED"] == 1
    assert Counter(k.value for k in kinds)["CANCELLED"] == 1
    assert stored.renewals == 1
    assert (await events_of(db, subscription.id))["SubscriptionRenewed"] == 1


# --- every other setting and record: a storm is answered, never a 500 ---------------------


def _storm_cases(tenant: Tenant) -> list[tuple[str, str, dict[str, Any], Role]]:
    """(mutation, input type, input, role) of changes a double click or a retry sends twice:
    upserts of settings (one row per vendor or partner), assignments, status changes."""
    partner, other = (gid(p) for p in tenant.partners)
    manager = gid(tenant.user(Role.CHANNEL_MANAGER))
    rep = gid(tenant.user(Role.PARTNER_REP))
    usd = {"amount": "1299.00", "currency": "USD"}
    return [
        ("productUpsert", "ProductUpsertInput",
         {"sku": "NW-RACE-1", "name": "Race", "listPrice": usd}, Role.VENDOR_ADMIN),
        ("payoutProfileSet", "PayoutProfileSetInput",
         {"partnerId": partner, "taxFormOnFile": True, "bankAccount": "DE89370400440532013000"},
         Role.FINANCE),
        ("payoutPolicySet", "PayoutPolicySetInput", {"aboveAverageFactorBp": 30_000},
         Role.FINANCE),
        ("partnerManagerAssign", "PartnerManagerInput",
         {"partnerId": other, "managerId": manager}, Role.VENDOR_ADMIN),
        ("concentrationThresholdSet", "ConcentrationThresholdSetInput",
         {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 4_000}, Role.VENDOR_ADMIN),
        ("salesSettingsUpdate", "SalesSettingsUpdateInput", {"claimWindowDays": 60},
         Role.VENDOR_ADMIN),
        ("dealProgramSettingsUpdate", "DealProgramSettingsUpdateInput", {"protectionDays": 60},
         Role.VENDOR_ADMIN),
        ("notificationPreferencesUpdate", "NotificationPreferencesUpdateInput", {"digest": True},
         Role.PARTNER_REP),
        ("partnerTierSet", "PartnerTierSetInput",
         {"partnerId": partner, "tier": "GOLD", "reason": "Grew."}, Role.VENDOR_ADMIN),
        ("partnerSuspend", "PartnerSuspendInput", {"id": other, "reason": "Audit."},
         Role.VENDOR_ADMIN),
        ("userDeactivate", "UserDeactivateInput", {"id": rep}, Role.VENDOR_ADMIN),
        ("apiKeyCreate", "ApiKeyCreateInput", {"name": "ci"}, Role.VENDOR_ADMIN),
        ("webhookEndpointCreate", "WebhookEndpointCreateInput",
         {"url": "https://hooks.example.com/in",
          "eventTypes": ["deal_registration.status_changed"]}, Role.VENDOR_ADMIN),
    ]  # fmt: skip


async def test_a_storm_of_one_upsert_is_answered_without_an_internal_error(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """The quick run's case of the sweep below: the losers of the race for the profile's
    unique key are run again and update the winner's row (before: INTERNAL_SERVER_ERROR)."""
    await _storms(gql, tenant, [c for c in _storm_cases(tenant) if c[0] == "payoutProfileSet"])
    async with db.session() as session:
        profiles = (
            await session.exec(
                select(func.count()).where(PayoutProfile.partner_id == tenant.partners[0].id)
            )
        ).one()
    assert profiles == 1


@pytest.mark.slow
async def test_a_storm_of_any_setting_or_record_change_is_answered_without_an_internal_error(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    await _storms(gql, tenant, _storm_cases(tenant))


async def _storms(
    gql: GQL, tenant: Tenant, cases: list[tuple[str, str, dict[str, Any], Role]]
) -> None:
    """Each case sent STORM times at once: no answer is an error; one at least succeeds."""
    failed = {}
    for name, kind, variables, role in cases:
        doc = f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
          userErrors {{ field code message }} }} }}"""
        user = tenant.user(role)
        answers = await asyncio.gather(
            *(gql(doc, {"input": variables}, as_user=user) for _ in range(STORM))
        )
        refused = [a for a in answers if "errors" in a]
        if refused:
            failed[name] = refused[0]["errors"]
            continue
        assert winners([a["data"][name] for a in answers]), name
    assert sorted(failed) == []


# --- incentive rules (four eyes; pausing ends what the rule runs) ----------------------------

RULE_STATUS = {
    name: f"""mutation($input: IncentiveRuleStatusInput!) {{ {name}(input: $input) {{
      rule {{ status }} userErrors {{ field code message }} }} }}"""
    for name in ("incentiveRulePause", "incentiveRuleResume")
}
RULE_APPROVE = """mutation($input: IncentiveRuleApproveInput!) {
  incentiveRuleApprove(input: $input) {
  rule { status } userErrors { field code message } } }"""


async def test_a_rule_approved_paused_and_resumed_at_once_changes_once_each_time(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await incentive_scenarios.shop(db, clock, tenant, services)

    async def draft(session: Any) -> tuple[uuid.UUID, uuid.UUID]:
        rule = await incentive_rules.create_rule(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Raced",
            condition="revenue_30d >= 100000", period=Period.WEEK,
            actions=[Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                            delta_bp=100)],
        )  # fmt: skip
        [version] = await session.exec(
            select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
        )
        return rule.id, version

    rule_id, version_id = await es.tx(db, draft)
    approve = (RULE_APPROVE, {"versionId": gid("IncentiveRuleVersion", version_id),
                              "reason": "ok"}, s.approver)  # fmt: skip
    assert len(winners(await fire(gql, [approve] * STORM))) == 1
    ref = {"id": gid("IncentiveRule", rule_id), "reason": "Budget review."}
    pause = (RULE_STATUS["incentiveRulePause"], ref, s.approver)
    assert len(winners(await fire(gql, [pause] * STORM))) == 1
    resume = (RULE_STATUS["incentiveRuleResume"], ref, s.approver)
    # Taking turns, a resume and a pause may each go through in any order: every change
    # that went through is one audit entry, and they alternate from PAUSED.
    won = winners(await fire(gql, [resume, pause] * 4))
    resumed = len([i for i in won if i % 2 == 0])
    paused = len(won) - resumed
    assert resumed - paused in (0, 1)
    audit = await audit_of(db, rule_id)
    assert audit["incentive_rule.approved"] == 1
    assert (audit["incentive_rule.paused"], audit["incentive_rule.resumed"]) == (
        1 + paused,
        resumed,
    )
    async with db.session() as session:
        rule = await session.get(IncentiveRule, rule_id)
    assert rule is not None
    assert rule.status.value == ("ACTIVE" if resumed > paused else "PAUSED")


# --- second sweep: webhook endpoints, display keys, partners, thresholds, program versions --

ENDPOINT_ACTIONS = {
    name: f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      {out} userErrors {{ field code message }} }} }}"""
    for name, kind, out in (
        ("webhookEndpointDisable", "WebhookEndpointIdInput", "endpoint { id status }"),
        ("webhookEndpointEnable", "WebhookEndpointIdInput", "endpoint { id status }"),
        ("webhookEndpointDelete", "WebhookEndpointIdInput", "deletedId"),
        ("webhookEndpointSecretRotate", "WebhookEndpointSecretRotateInput", "secret"),
    )
}


async def _endpoint(gql: GQL, admin: User) -> str:
    made = await gql.data(
        WEBHOOK_CREATE,
        {"input": {"url": "https://hooks.example.com/in",
                   "eventTypes": ["deal_registration.status_changed"]}},
        as_user=admin,
    )  # fmt: skip
    return str(made["webhookEndpointCreate"]["endpoint"]["id"])


async def test_webhook_endpoint_storms_disable_delete_and_rotate_once_each(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    endpoint = await _endpoint(gql, admin)
    ref = {"id": endpoint}
    disable = (ENDPOINT_ACTIONS["webhookEndpointDisable"], ref, admin)
    assert len(winners(await fire(gql, [disable] * STORM))) == 1
    assert await audited(db, plain_id(endpoint), "webhook_endpoint.disabled") == 1
    # Rotations take turns: each keeps the one before it signing beside the new one.
    async with db.session() as session:
        first = (await session.get(WebhookEndpoint, plain_id(endpoint))).secret  # type: ignore[union-attr]
    rotate = (ENDPOINT_ACTIONS["webhookEndpointSecretRotate"], ref, admin)
    payloads = await fire(gql, [rotate] * STORM)
    assert len(winners(payloads)) == STORM
    given = [p["secret"] for p in payloads]
    async with db.session() as session:
        stored = await session.get(WebhookEndpoint, plain_id(endpoint))
    assert stored is not None
    assert stored.secret in given
    assert stored.previous_secret in given
    assert stored.previous_secret != first
    # Enabled and deleted at once: a deleted endpoint never sends again.
    enable = (ENDPOINT_ACTIONS["webhookEndpointEnable"], ref, admin)
    delete = (ENDPOINT_ACTIONS["webhookEndpointDelete"], ref, admin)
    won = winners(await fire(gql, [enable, delete] * 4))
    assert len([i for i in won if i % 2 == 1]) == 1
    assert await audited(db, plain_id(endpoint), "webhook_endpoint.deleted") == 1
    async with db.session() as session:
        stored = await session.get(WebhookEndpoint, plain_id(endpoint))
    assert stored is not None
    assert stored.deleted_at is not None
    assert stored.status is EndpointStatus.DISABLED


DISPLAY_KEY_CREATE = """mutation($input: DisplayKeyCreateInput!) { displayKeyCreate(input: $input) {
  displayKey { id } userErrors { field code message } } }"""
DISPLAY_KEY_REVOKE = """mutation($input: DisplayKeyRevokeInput!) {
  displayKeyRevoke(input: $input) { userErrors { field code message } } }"""


async def test_a_storm_of_revocations_revokes_the_display_key_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    contest = await create_contest(db, clock, tenant)
    made = await gql.data(
        DISPLAY_KEY_CREATE, {"input": {"label": "Floor", "contestIds": [gid(contest)]}},
        as_user=admin,
    )  # fmt: skip
    key = made["displayKeyCreate"]["displayKey"]["id"]
    revoke = (DISPLAY_KEY_REVOKE, {"id": key}, admin)
    assert len(winners(await fire(gql, [revoke] * STORM))) == 1
    assert await audited(db, plain_id(key), "display_key.revoked") == 1


PARTNER_ACTIONS = {
    name: f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      partner {{ id status }} userErrors {{ field code message }} }} }}"""
    for name, kind in (
        ("partnerSuspend", "PartnerSuspendInput"),
        ("partnerReactivate", "PartnerStatusInput"),
        ("partnerArchive", "PartnerStatusInput"),
        ("partnerUpdate", "PartnerUpdateInput"),
    )
}


async def test_partner_status_storms_change_the_partner_once_each_time(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    partner = tenant.partners[1]
    ref = {"id": gid(partner)}
    suspend = (PARTNER_ACTIONS["partnerSuspend"], {**ref, "reason": "Audit."}, admin)
    assert len(winners(await fire(gql, [suspend] * STORM))) == 1
    reactivate = (PARTNER_ACTIONS["partnerReactivate"], ref, admin)
    assert len(winners(await fire(gql, [reactivate] * STORM))) == 1
    # Archived while renamed: the archive is final, and no rename comes after it.
    rename = (PARTNER_ACTIONS["partnerUpdate"], {**ref, "name": "Renamed"}, admin)
    archive = (PARTNER_ACTIONS["partnerArchive"], ref, admin)
    won = winners(await fire(gql, [archive, rename] * 4))
    assert len([i for i in won if i % 2 == 0]) == 1
    audit = await audit_of(db, partner.id)
    assert (audit["partner.suspended"], audit["partner.reactivated"]) == (1, 1)
    assert audit["partner.archived"] == 1
    assert audit["partner.updated"] <= 1  # the name changes once; again it changes nothing
    async with db.session() as session:
        stored = await session.get(Partner, partner.id)
    assert stored is not None
    assert stored.status.value == "ARCHIVED"


PARTNER_CREATE = """mutation($input: PartnerCreateInput!) { partnerCreate(input: $input) {
  partner { id name } userErrors { field code message } } }"""
# One name as people read it (partners/names.py), spelled ten ways: case, fullwidth
# letters, a zero-width space. No two are the same string, so only the name key tells them.
LOOK_ALIKES = (
    "Acme Resellers", "ACME RESELLERS", "acme resellers", "AcMe Resellers", "ACME resellers",
    "acme RESELLERS", "\uff21cme Resellers", "\uff41\uff43\uff4d\uff45 resellers",
    "Acme\u200b Resellers", "Acme Resellers\u200b",
)  # fmt: skip


async def _counts(db: Database, vendor_id: uuid.UUID) -> tuple[int, int, int]:
    """The vendor's partners named like LOOK_ALIKES, its partner.created audit entries and
    its PartnerEnrolled events."""
    async with db.session() as session:
        names = await session.exec(select(Partner.name).where(Partner.vendor_id == vendor_id))
        alike = sum(name_key(n) == name_key(LOOK_ALIKES[0]) for n in names)
        audited = await session.exec(
            select(func.count()).where(
                col(AuditEntry.vendor_id) == vendor_id, AuditEntry.action == "partner.created"
            )
        )
        events = await session.exec(
            select(func.count()).where(
                col(OutboxEvent.vendor_id) == vendor_id, OutboxEvent.type == "PartnerEnrolled"
            )
        )
        return alike, audited.one(), events.one()


async def test_look_alike_partners_created_at_once_make_one_partner(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """Names are one per vendor as people read them. The rule was a check before the insert,
    so on PostgreSQL look-alikes created at once all passed it and all were created; now the
    unique (vendor, name key) index refuses all but the first, and each loser, run again,
    is answered DUPLICATE_NAME like any later duplicate (never a server error)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert len({name_key(n) for n in LOOK_ALIKES}) == 1
    assert await _counts(db, tenant.vendor.id) == (0, 0, 0)
    calls = [(PARTNER_CREATE, {"name": n, "region": "EMEA"}, admin) for n in LOOK_ALIKES]
    payloads = await fire(gql, calls)
    (won,) = winners(payloads)
    assert payloads[won]["partner"]["name"] == LOOK_ALIKES[won]
    for i, payload in enumerate(payloads):
        if i != won:
            assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
                ("DUPLICATE_NAME", "name")
            ], payload
    assert await _counts(db, tenant.vendor.id) == (1, 1, 1)


async def test_partners_renamed_to_look_alikes_at_once_take_the_name_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """Two partners renamed at once to names that read alike: one takes it, the other is
    answered DUPLICATE_NAME and keeps its name."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    first, second = tenant.partners
    rename = PARTNER_ACTIONS["partnerUpdate"]
    calls = [
        (rename, {"id": gid(partner), "name": name}, admin)
        for _ in range(STORM // 2)
        for partner, name in ((first, "Globex Direct"), (second, "GLOBEX DIRECT"))
    ]
    payloads = await fire(gql, calls)
    codes = {e["code"] for p in payloads for e in p["userErrors"]}
    assert codes <= {"DUPLICATE_NAME"}, payloads
    async with db.session() as session:
        names = list(
            await session.exec(select(Partner.name).where(Partner.vendor_id == tenant.vendor.id))
        )
    assert sum(name_key(n) == "globex direct" for n in names) == 1, names
    assert {first.name, second.name} & set(names), names  # the loser kept its name


THRESHOLD_SET = """mutation($input: ConcentrationThresholdSetInput!) {
  concentrationThresholdSet(input: $input) {
  threshold { id } userErrors { field code message } } }"""
THRESHOLD_REMOVE = """mutation($input: ConcentrationThresholdRemoveInput!) {
  concentrationThresholdRemove(input: $input) {
  threshold { id archivedAt } userErrors { field code message } } }"""


async def test_a_storm_of_removals_removes_the_threshold_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        THRESHOLD_SET, {"input": {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 4_000}},
        as_user=admin,
    )  # fmt: skip
    threshold = made["concentrationThresholdSet"]["threshold"]["id"]
    remove = (THRESHOLD_REMOVE, {"id": threshold, "reason": "Too noisy."}, admin)
    assert len(winners(await fire(gql, [remove] * STORM))) == 1
    assert await audited(db, plain_id(threshold), "concentrationThresholdRemove") == 1


PROGRAM_VERSION_CREATE = """mutation($input: EarningProgramVersionCreateInput!) {
  earningProgramVersionCreate(input: $input) { userErrors { field code message } } }"""


async def test_a_storm_of_program_versions_is_answered_and_numbered_in_turn(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    version = await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    admin = tenant.user(Role.VENDOR_ADMIN)
    ask = {"programId": gid("EarningProgram", version.program_id),
           "rules": {"baseRates": [{"rateBp": 1_200}]}}  # fmt: skip
    won = winners(await fire(gql, [(PROGRAM_VERSION_CREATE, ask, admin)] * STORM))
    async with db.session() as session:
        numbers = sorted(
            await session.exec(
                select(ProgramVersion.number).where(ProgramVersion.program_id == version.program_id)
            )
        )
    assert numbers == list(range(1, len(won) + 2))


MANAGER_ASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerAssign(input: $input) {
  userErrors { field code message } } }"""
MANAGER_UNASSIGN = """mutation($input: PartnerManagerInput!) {
  partnerManagerUnassign(input: $input) { userErrors { field code message } } }"""


async def test_a_storm_of_unassignments_unassigns_the_manager_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    partner = tenant.partners[1]
    ref = {"partnerId": gid(partner), "managerId": gid(tenant.user(Role.CHANNEL_MANAGER))}
    assert len(winners(await fire(gql, [(MANAGER_ASSIGN, ref, admin)] * STORM))) == 1
    assert len(winners(await fire(gql, [(MANAGER_UNASSIGN, ref, admin)] * STORM))) == 1
    audit = await audit_of(db, partner.id)
    assert (audit["partner.manager_assigned"], audit["partner.manager_unassigned"]) == (1, 1)


REPLAY = """mutation($input: WebhookReplayInput!) { webhookReplay(input: $input) {
  deliveries { sequence } userErrors { field code message } } }"""


async def test_replays_at_once_are_numbered_in_turn_and_none_reach_a_deleted_endpoint(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        WEBHOOK_CREATE,
        {"input": {"url": "https://hooks.example.com/in", "eventTypes": ["sale_claim.approved"]}},
        as_user=admin,
    )
    endpoint = made["webhookEndpointCreate"]["endpoint"]["id"]
    sale = await approve_sale(db, clock, tenant)
    await dispatch(services)
    replay = (REPLAY, {"endpointId": endpoint, "eventId": str(sale.id)}, admin)
    payloads = await fire(gql, [replay] * STORM)
    assert len(winners(payloads)) == STORM
    sequences = sorted(d["sequence"] for p in payloads for d in p["deliveries"])
    assert sequences == list(range(1, STORM + 1))
    delete = (ENDPOINT_ACTIONS["webhookEndpointDelete"], {"id": endpoint}, admin)
    winners(await fire(gql, [replay, delete] * 4))
    async with db.session() as session:
        pending = (
            await session.exec(
                select(func.count()).where(
                    WebhookDelivery.endpoint_id == plain_id(endpoint),
                    col(WebhookDelivery.status) == "PENDING",
                )
            )
        ).one()
    assert pending == 0  # what the delete left failed; no replay after it


# --- second sweep, already locked: users, pilots, groups, contests, invitations ------------


def errors_only(name: str) -> str:
    """The mutation ``name`` asking for its userErrors alone (its input type named after it)."""
    kind = f"{name[0].upper()}{name[1:]}Input"
    return f"""mutation($input: {kind}!) {{ {name}(input: $input) {{
      userErrors {{ field code message }} }} }}"""


async def test_a_user_deactivated_and_given_a_role_at_once_changes_once_each(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    ref = {"id": gid(rep)}
    role = (errors_only("userRoleChange"), {**ref, "role": "PARTNER_ADMIN"}, admin)
    deactivate = (errors_only("userDeactivate"), ref, admin)
    won = winners(await fire(gql, [role, deactivate] * 4))
    assert len([i for i in won if i % 2 == 1]) == 1
    reactivate = (errors_only("userReactivate"), ref, admin)
    assert len(winners(await fire(gql, [reactivate] * STORM))) == 1
    audit = await audit_of(db, rep.id)
    assert (audit["user.role_changed"], audit["user.deactivated"]) == (1, 1)
    assert audit["user.reactivated"] == 1
    async with db.session() as session:
        stored = await session.get(User, rep.id)
    assert stored is not None
    assert (stored.role, stored.active) == (Role.PARTNER_ADMIN, True)


async def test_a_pilot_extended_and_ended_at_once_ends_once(
    gql: GQL, db: Database, clock: OffsetClock
) -> None:
    tenant = await pilots_scenarios.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = await pilots_scenarios.group_id(db, tenant, "Resellers")
    ends = clock.now() + timedelta(days=30)
    made = await gql.data(
        pilots_scenarios.CREATE,
        {"input": pilots_scenarios.create_input(gid("PartnerGroup", group), ends)},
        as_user=admin,
    )
    pilot = made["pilotCreate"]["pilot"]["id"]
    await gql.data(pilots_scenarios.START, {"input": {"id": pilot}}, as_user=admin)
    later = {"id": pilot, "endsAt": (ends + timedelta(days=30)).isoformat()}
    assert len(winners(await fire(gql, [(pilots_scenarios.EXTEND, later, admin)] * STORM))) == 1
    latest = {"id": pilot, "endsAt": (ends + timedelta(days=60)).isoformat()}
    won = winners(
        await fire(
            gql,
            [(pilots_scenarios.EXTEND, latest, admin), (pilots_scenarios.END, {"id": pilot}, admin)]
            * 4,
        )
    )
    extended = [i for i in won if i % 2 == 0]
    assert len(extended) <= 1
    assert len(won) - len(extended) == 1
    assert await audited(db, plain_id(pilot), "pilot.extended") == 1 + len(extended)
    assert await audited(db, plain_id(pilot), "pilot.ended") == 1


GROUP_UPDATE = """mutation($input: PartnerGroupUpdateInput!) {
  partnerGroupUpdate(input: $input) { partnerGroup { id } userErrors { field code message } } }"""
GROUP_DELETE = """mutation($input: PartnerGroupDeleteInput!) {
  partnerGroupDelete(input: $input) { partnerGroup { id } userErrors { field code message } } }"""


async def test_a_group_deleted_while_members_are_added_keeps_no_member(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        group = await groups.create_group(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Hand-picked"
        )
    ref = {"id": gid(group)}
    rename = (GROUP_UPDATE, {**ref, "name": "Picked by hand"}, admin)
    assert winners(await fire(gql, [rename] * STORM))
    add = (MEMBERS_ADD, {**ref, "partnerIds": [gid(p) for p in tenant.partners]}, admin)
    won = winners(await fire(gql, [(GROUP_DELETE, ref, admin), add] * 4))
    assert len([i for i in won if i % 2 == 0]) == 1
    assert await audited(db, group.id, "partner_group.archived") == 1
    async with db.session() as session:
        open_windows = (
            await session.exec(
                select(func.count()).where(
                    PartnerGroupMembership.group_id == group.id,
                    col(PartnerGroupMembership.left_at).is_(None),
                )
            )
        ).one()
    assert open_windows == 0


CONTEST_UPDATE = """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
  contest { id status } userErrors { field code message } } }"""


async def test_a_contest_updated_and_cancelled_at_once_takes_no_change_after_the_cancel(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    contest = await create_contest(db, clock, tenant)
    ref = {"id": gid(contest)}
    update = (CONTEST_UPDATE, {**ref, "description": "Q4 push"}, admin)
    won = winners(await fire(gql, [(CONTEST_CANCEL, ref, admin), update] * 4))
    assert len([i for i in won if i % 2 == 0]) == 1
    async with db.session() as session:
        cancelled_at = (
            await session.exec(
                select(AuditEntry.at).where(
                    AuditEntry.entity_id == str(contest.id),
                    AuditEntry.action == "contest.cancelled",
                )
            )
        ).one()
        updated = list(
            await session.exec(
                select(AuditEntry.at).where(
                    AuditEntry.entity_id == str(contest.id),
                    AuditEntry.action == "contest.updated",
                )
            )
        )
        stored = await session.get(Contest, contest.id)
    assert stored is not None
    assert stored.status.value == "CANCELLED"
    assert all(at <= cancelled_at for at in updated)


INVITATION_CREATE = """mutation($input: InvitationCreateInput!) {
  invitationCreate(input: $input) { invitation { id } userErrors { field code message } } }"""


async def test_an_invitation_resent_and_revoked_at_once_is_revoked_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        INVITATION_CREATE,
        {"input": {"email": "new@acme.example", "role": "PARTNER_REP",
                   "partnerId": gid(tenant.partners[0])}},
        as_user=admin,
    )  # fmt: skip
    invitation = made["invitationCreate"]["invitation"]["id"]
    ref = {"id": invitation}
    resend = (errors_only("invitationResend"), ref, admin)
    assert len(winners(await fire(gql, [resend] * STORM))) == STORM
    revoke = (errors_only("invitationRevoke"), ref, admin)
    won = winners(await fire(gql, [revoke, resend] * 4))
    assert len([i for i in won if i % 2 == 0]) == 1
    audit = await audit_of(db, plain_id(invitation))
    assert audit["invitation.revoked"] == 1
    assert audit["invitation.resent"] == STORM + len([i for i in won if i % 2 == 1])


# --- second sweep, already locked: proof, review, forecasts ---------------------------------

CLAIM_ATTACH = """mutation($input: SaleClaimAttachProofInput!) {
  saleClaimAttachProof(input: $input) {
  saleClaim { id state } userErrors { field code message } } }"""
CLAIM_REQUEST_PROOF = """mutation($input: SaleClaimRequestProofInput!) {
  saleClaimRequestProof(input: $input) { saleClaim { id state } userErrors { field code } } }"""
PROOF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def test_proof_sent_many_times_without_a_key_moves_the_claim_on_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    serials = await seed_registry(db, clock, tenant, 2)
    rep = tenant.user(Role.PARTNER_REP)
    admin = tenant.user(Role.VENDOR_ADMIN)
    claim = await open_claim(gql, db, clock, tenant, serials[0])
    token = gql.token(rep)
    answers = await asyncio.gather(
        *(
            multipart(
                gql,
                CLAIM_ATTACH,
                {"input": {"id": claim, "file": None}},
                {
                    "variables.input.file": (
                        f"invoice-{i}.pdf",
                        PROOF + bytes([i]),
                        "application/pdf",
                    )
                },
                token=token,
            )  # fmt: skip
            for i in range(STORM)
        )
    )
    assert all("errors" not in a.json() for a in answers)
    assert winners([a.json()["data"]["saleClaimAttachProof"] for a in answers])
    state, _ = await claim_state(db, claim)
    assert (await claim_decisions(db, claim))["PROOF_ADDED"] == 1
    if state == "UNDER_REVIEW":
        ask = (CLAIM_REQUEST_PROOF, {"id": claim, "note": "A signed one."}, admin)
        assert len(winners(await fire(gql, [ask] * STORM))) == 1
        assert (await claim_decisions(db, claim))["PROOF_REQUESTED"] == 1
    else:
        assert state == "AUTO_APPROVED"


async def claim_decisions(db: Database, claim_gid: str) -> Counter[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(SaleClaimDecision.action).where(
                SaleClaimDecision.claim_id == plain_id(claim_gid)
            )
        )
        return Counter(a.value for a in rows)


START_REVIEW = """mutation($input: DealRegistrationIdInput!) {
  dealRegistrationStartReview(input: $input) {
  dealRegistration { id status } userErrors { field code message } } }"""


async def test_a_storm_of_review_starts_takes_the_deal_into_review_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    manager = tenant.user(Role.CHANNEL_MANAGER)
    deal = await register(db, clock, tenant.user(Role.PARTNER_REP))
    _, before = await deal_state(db, deal.id)
    assert len(winners(await fire(gql, [(START_REVIEW, {"id": gid(deal)}, manager)] * STORM))) == 1
    assert await deal_state(db, deal.id) == (DealStatus.UNDER_REVIEW, before + 1)


async def test_a_storm_of_one_forecast_numbers_its_revisions_in_turn(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    quarter = forecasts_scenarios.next_quarter(clock).key
    lines = [forecasts_scenarios.line("Other", "1000.00", "1500.00")]
    submit = (forecasts_scenarios.SUBMIT, {"quarter": quarter, "lines": lines},
              tenant.user(Role.PARTNER_ADMIN))  # fmt: skip
    assert len(winners(await fire(gql, [submit] * STORM))) == STORM
    async with db.session() as session:
        forecasts = list(
            await session.exec(
                select(PartnerForecast).where(PartnerForecast.partner_id == tenant.partners[0].id)
            )
        )
        numbers = sorted(
            await session.exec(
                select(ForecastRevision.number).where(
                    ForecastRevision.partner_id == tenant.partners[0].id
                )
            )
        )
    assert [f.revision for f in forecasts] == [STORM]
    assert numbers == list(range(1, STORM + 1))


# --- second sweep: records made twice, imports started twice -------------------------------


def _create_cases(
    tenant: Tenant, clock: OffsetClock
) -> list[tuple[str, str, dict[str, Any], Role]]:
    """Creations a double click sends twice: a name taken is refused with its code."""
    start = clock.now() + timedelta(days=1)
    return [
        ("partnerCreate", "PartnerCreateInput", {"name": "Race Co", "region": "EMEA"},
         Role.VENDOR_ADMIN),
        ("partnerGroupCreate", "PartnerGroupCreateInput", {"name": "Race group"},
         Role.VENDOR_ADMIN),
        ("contestCreate", "ContestCreateInput",
         {"name": "Race", "startsAt": start.isoformat(),
          "endsAt": (start + timedelta(days=30)).isoformat()}, Role.VENDOR_ADMIN),
        ("earningProgramCreate", "EarningProgramCreateInput",
         {"name": "Race program", "currency": "USD",
          "rules": {"baseRates": [{"rateBp": 1_000}]}}, Role.VENDOR_ADMIN),
        ("invitationCreate", "InvitationCreateInput",
         {"email": "race@acme.example", "role": "PARTNER_REP",
          "partnerId": gid(tenant.partners[0])}, Role.VENDOR_ADMIN),
        ("notificationMarkAllRead", "NotificationMarkAllReadInput", {}, Role.PARTNER_REP),
    ]  # fmt: skip


async def test_a_storm_of_one_creation_is_answered_without_an_internal_error(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    await _storms(gql, tenant, _create_cases(tenant, clock))


PARTNERS_IMPORT = """mutation($input: PartnersImportInput!) { partnersImport(input: $input) {
  result { inserted } userErrors { field code message } } }"""
SERIALS_IMPORT = """mutation($input: SerialsImportInput!) { serialsImport(input: $input) {
  result { inserted } userErrors { field code message } } }"""


async def test_one_import_sent_many_times_at_once_inserts_each_row_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    partners_csv = b"external_ref,name,region\nCRM-1,Alpha Networks,EMEA\nCRM-2,Beta Systems,NA\n"
    serials_csv = csv_bytes(registry_rows(tenant, clock, 3, prefix="RACE"))
    for doc, name, data in (
        (PARTNERS_IMPORT, "partnersImport", partners_csv),
        (SERIALS_IMPORT, "serialsImport", serials_csv),
    ):
        answers = await asyncio.gather(
            *(
                multipart(gql, doc, {"input": {"file": None}},
                          {"variables.input.file": ("rows.csv", data, "text/csv")}, token=token)
                for _ in range(STORM // 2)
            )
        )  # fmt: skip
        bodies = [a.json() for a in answers]
        assert all("errors" not in b for b in bodies), bodies
        payloads = [b["data"][name] for b in bodies]
        assert winners(payloads), payloads
        inserted = [p["result"]["inserted"] for p in payloads if p["result"]]
        assert sum(inserted) == data.count(b"\n") - 1, payloads


BUDGET_SET = """mutation($input: IncentiveRuleBudgetSetInput!) {
  incentiveRuleBudgetSet(input: $input) {
  budgetChange { id } userErrors { field code message } } }"""
BUDGET_DECIDE = {
    name: f"""mutation($input: IncentiveRuleBudgetChangeDecideInput!) {{ {name}(input: $input) {{
      applied userErrors {{ field code message }} }} }}"""
    for name in ("incentiveRuleBudgetChangeApprove", "incentiveRuleBudgetChangeCancel")
}


async def test_budget_requests_and_decisions_at_once_leave_one_change_decided_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await incentive_scenarios.shop(db, clock, tenant, services)
    admin = tenant.user(Role.VENDOR_ADMIN)

    async def draft(session: Any) -> uuid.UUID:
        rule = await incentive_rules.create_rule(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Capped",
            condition="revenue_30d >= 100000", period=Period.WEEK,
            actions=[Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                            delta_bp=100)],
        )  # fmt: skip
        return rule.id

    rule_id = await es.tx(db, draft)
    ref = {"id": gid("IncentiveRule", rule_id)}
    cap = {**ref, "budgetCap": {"amount": "100.00", "currency": "USD"}}
    assert len(winners(await fire(gql, [(BUDGET_SET, cap, admin)] * STORM))) == STORM
    more = {**ref, "budgetCap": {"amount": "1000.00", "currency": "USD"}, "reason": "Q4."}
    payloads = await fire(gql, [(BUDGET_SET, more, admin)] * STORM)
    assert len(winners(payloads)) == STORM
    async with db.session() as session:
        statuses = Counter(
            c.value
            for c in await session.exec(
                select(IncentiveRuleBudgetChange.status).where(
                    IncentiveRuleBudgetChange.rule_id == rule_id
                )
            )
        )
        [pending] = await session.exec(
            select(IncentiveRuleBudgetChange.id).where(
                IncentiveRuleBudgetChange.rule_id == rule_id,
                IncentiveRuleBudgetChange.status == BudgetChangeStatus.PENDING,
            )
        )
    assert statuses == {"PENDING": 1, "SUPERSEDED": STORM - 1}
    change = {"id": gid("IncentiveRuleBudgetChange", pending), "reason": "ok"}
    approve = (BUDGET_DECIDE["incentiveRuleBudgetChangeApprove"], change, s.approver)
    cancel = (BUDGET_DECIDE["incentiveRuleBudgetChangeCancel"], change, admin)
    (won,) = winners(await fire(gql, [approve, cancel] * 4))
    async with db.session() as session:
        rule = await session.get(IncentiveRule, rule_id)
    assert rule is not None
    assert rule.budget_cap_minor == (100_000 if won % 2 == 0 else 10_000)


SUBMIT_DRAFT = """mutation($input: DealRegistrationIdInput!) {
  dealRegistrationSubmitDraft(input: $input) {
  dealRegistration { id status } userErrors { field code message } } }"""


async def test_a_storm_of_draft_submissions_submits_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    rep = tenant.user(Role.PARTNER_REP)
    deal = await register(db, clock, rep, draft=True)
    assert len(winners(await fire(gql, [(SUBMIT_DRAFT, {"id": gid(deal)}, rep)] * STORM))) == 1
    async with db.session() as session:
        actions = Counter(
            a.value
            for a in await session.exec(
                select(DealTransition.action).where(DealTransition.registration_id == deal.id)
            )
        )
    assert actions["SUBMIT"] == 1, actions
