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

from deal_registration.registrations.models import DealRegistration, DealStatus, DealTransition
from deal_registration.sales.models import SaleClaim
from earnings import payouts
from earnings.models import PayoutDecision, PayoutHold, PayoutStatement, PayoutStatus
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.api.fuzzing import decode_id
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE as CLAIM_CREATE
from tests.deal_registration.sales.scenarios import claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, dispatch, gid
from tests.support import GQL

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


async def test_a_storm_of_mark_won_wins_the_deal_once(
    gql: GQL, db: Database, clock: OffsetClock, shop: Tenant
) -> None:
    tenant = shop
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    deal = await register(db, clock, rep, approve_as=admin)
    _, before = await deal_state(db, deal.id)
    doc = DEAL_ACTIONS["dealRegistrationMarkWon"]
    payloads = await fire(gql, [(doc, {"id": gid(deal)}, rep)] * STORM)
    assert len(winners(payloads)) == 1
    assert await deal_state(db, deal.id) == (DealStatus.WON, before + 1)
    assert (await events_of(db, deal.id))["DealWon"] == 1


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
