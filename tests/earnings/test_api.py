"""Earnings through GraphQL over HTTP: who sees what, worked figures, and refusals that
change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from earnings import payouts
from earnings.models import PayoutStatement, PayoutStatus, Program, ProgramVersion
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import tax_form, tx
from tests.earnings.test_payouts import FlaggedClaims
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL, error_codes

MARCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MARCH_PERIOD = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-04-01T00:00:00+00:00"}
SECRET_NOTE = "internal-note-7f3a"
SECRET_FLAG = "serial-flag-91c2"


@pytest.fixture
async def world(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> Tenant:
    """Partner 0: 12,000.00 sold by its rep, 8,400.00 by nobody in particular (qualified
    20,400.00: Silver). Partner 1: 5,000.00."""
    clock.freeze(MARCH)
    await es.seed_products(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.worked_rules(MARCH - timedelta(days=1)))
    await es.sale(db, clock, tenant, 1_200_000)  # 960.00 + Silver 120.00 = 1,080.00
    await es.sale(db, clock, tenant, 840_000, rep=False)  # 672.00 + 84.00 = 756.00
    await es.sale(db, clock, tenant, 500_000, partner_index=1)  # 400.00
    await dispatch(services)
    return tenant


@pytest.fixture
async def held(world: Tenant, db: Database, clock: OffsetClock, services: Services) -> Tenant:
    """March's statements made on 2 April: partner 0 held for a risk flag, a manual hold
    with an internal note and its missing tax form."""
    signals = FlaggedClaims()
    async with db.session() as session:
        from earnings.models import CreditedSource  # noqa: PLC0415

        claim = (
            await session.exec(
                select(CreditedSource.subject_id).where(
                    CreditedSource.partner_id == world.partners[0].id,
                    CreditedSource.revenue_minor == 1_200_000,
                )
            )
        ).one()
    assert claim is not None
    signals.flags[claim] = [SECRET_FLAG]
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    statements = await tx(
        db,
        lambda s: payouts.generate_statements(
            s, world.principal(Role.FINANCE), clock, month=MARCH, signals=signals
        ),
    )
    mine = next(st for st in statements if st.partner_id == world.partners[0].id)
    await tx(
        db,
        lambda s: payouts.hold(
            s, world.principal(Role.FINANCE), clock, statement_id=mine.id, note=SECRET_NOTE
        ),
    )
    await dispatch(services)
    return world


SUMMARY = """
query($partnerId: ID, $repId: ID, $period: EarningsPeriodInput) {
  earnings(partnerId: $partnerId, repId: $repId, period: $period) {
    currency earned { amountMinor } pending { amountMinor } held { amountMinor }
    paid { amountMinor } revenue { amountMinor }
    tier { currentTier rate qualifiedRevenue { amount } nextTier amountToNextTier { amount } }
    holds { explanation clears expectedReleaseAt }
    explanations { kind text }
  }
}
"""


async def test_partner_admin_sees_its_organisation(gql: GQL, world: Tenant) -> None:
    data = await gql.data(SUMMARY, {"period": MARCH_PERIOD}, as_user=world.user(Role.PARTNER_ADMIN))
    summary = data["earnings"]
    assert summary["earned"]["amountMinor"] == 183_600  # 1,080.00 + 756.00
    assert summary["pending"]["amountMinor"] == 183_600
    assert summary["held"]["amountMinor"] == summary["paid"]["amountMinor"] == 0
    assert summary["revenue"]["amountMinor"] == 2_040_000
    assert summary["tier"] == {
        "currentTier": "Silver",
        "rate": "9%",
        "qualifiedRevenue": {"amount": "20400.00"},
        "nextTier": "Gold",
        "amountToNextTier": {"amount": "4600.00"},
    }
    texts = [e["text"] for e in summary["explanations"]]
    assert (
        "Another 4,600.00 USD of qualified revenue within 30 days moves you to Gold "
        "(+1% on every sale)." in texts
    )


async def test_rep_sees_what_is_attributed_to_it(gql: GQL, world: Tenant) -> None:
    rep = world.user(Role.PARTNER_REP)
    data = await gql.data(SUMMARY, {"period": MARCH_PERIOD}, as_user=rep)
    assert data["earnings"]["earned"]["amountMinor"] == 108_000
    assert data["earnings"]["revenue"]["amountMinor"] == 1_200_000
    entries = await gql.data(
        "{ earningEntries { totalCount edges { node { kind amount { amountMinor } repId } } } }",
        as_user=rep,
    )
    assert entries["earningEntries"]["totalCount"] == 2
    assert {e["node"]["repId"] for e in entries["earningEntries"]["edges"]} == {gid("User", rep.id)}


async def test_nobody_sees_another_partners_or_tenants_earnings(
    gql: GQL, world: Tenant, other_tenant: Tenant
) -> None:
    other_partner = gid(world.partners[1])
    other_rep = gid("User", world.user(Role.PARTNER_REP, 1).id)
    mine = gid(world.partners[0])
    cases = [
        (world.user(Role.PARTNER_ADMIN), {"partnerId": other_partner}),
        (world.user(Role.PARTNER_REP), {"partnerId": other_partner}),
        (world.user(Role.PARTNER_REP), {"repId": other_rep}),
        (world.user(Role.PARTNER_ADMIN), {"partnerId": mine, "repId": other_rep}),
        (world.user(Role.CHANNEL_MANAGER), {"partnerId": other_partner}),  # not assigned
        (other_tenant.user(Role.VENDOR_ADMIN), {"partnerId": mine}),
        (other_tenant.user(Role.PARTNER_ADMIN), {"partnerId": mine}),
        (world.user(Role.VENDOR_ADMIN), {"partnerId": "not-a-global-id"}),
    ]
    for user, variables in cases:
        data = await gql.data(SUMMARY, variables, as_user=user)
        assert data["earnings"] is None, (user.role, variables)
    payload = await gql(SUMMARY)
    assert error_codes(payload) == ["UNAUTHENTICATED"]


async def test_entry_lists_are_scoped_by_role(
    gql: GQL, world: Tenant, other_tenant: Tenant
) -> None:
    query = "{ earningEntries(first: 100) { totalCount edges { node { id partnerId } } } }"
    expected = [
        (world.user(Role.VENDOR_ADMIN), 5),
        (world.user(Role.FINANCE), 5),
        (world.user(Role.CHANNEL_MANAGER), 4),  # partner 0 only
        (world.user(Role.PARTNER_ADMIN), 4),
        (world.user(Role.PARTNER_REP), 2),
        (world.user(Role.PARTNER_ADMIN, 1), 1),
        (other_tenant.user(Role.VENDOR_ADMIN), 0),
    ]
    for user, count in expected:
        data = await gql.data(query, as_user=user)
        assert data["earningEntries"]["totalCount"] == count, user.role
        assert len(data["earningEntries"]["edges"]) == count
    # A node id of another partner's entry answers null, like a missing one.
    admin_entries = await gql.data(query, as_user=world.user(Role.VENDOR_ADMIN))
    foreign = next(
        e["node"]["id"]
        for e in admin_entries["earningEntries"]["edges"]
        if e["node"]["partnerId"] == gid(world.partners[1])
    )
    data = await gql.data(
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": foreign},
        as_user=world.user(Role.PARTNER_ADMIN),
    )
    assert data["node"] is None


async def test_forecast_shows_one_more_deal_reaching_gold(gql: GQL, world: Tenant) -> None:
    data = await gql.data(
        """{ earningsForecast(additionalRevenue: {amount: "4600.00", currency: "USD"}) {
            projectedEarning { amount } base { amount } uplift { amount }
            current { currentTier } projected { currentTier rate } explanation } }""",
        as_user=world.user(Role.PARTNER_ADMIN),
    )
    forecast = data["earningsForecast"]
    # 8% of 4,600.00 = 368.00; Gold's 2% = 92.00.
    assert forecast["projectedEarning"]["amount"] == "460.00"
    assert (forecast["base"]["amount"], forecast["uplift"]["amount"]) == ("368.00", "92.00")
    assert forecast["current"]["currentTier"] == "Silver"
    assert forecast["projected"] == {"currentTier": "Gold", "rate": "10%"}
    assert forecast["explanation"] == (
        "A further sale of 4,600.00 USD would move you to Gold (25,000.00 USD over 30 days), "
        "raising your rate from 9% to 10%, and earn about 460.00 USD."
    )


async def test_forecast_with_a_spiff_sku(gql: GQL, world: Tenant) -> None:
    data = await gql.data(
        """{ earningsForecast(additionalRevenue: {amount: "918.00", currency: "USD"},
                              sku: "nw-ap-6e", units: 2) {
            projectedEarning { amount } spiff { amount } } }""",
        as_user=world.user(Role.PARTNER_REP),
    )
    # 8% of 918.00 = 73.44, Silver 1% = 9.18, spiff 2 x 25.00 (partner 0 is in EMEA).
    assert data["earningsForecast"] == {
        "projectedEarning": {"amount": "132.62"},
        "spiff": {"amount": "50.00"},
    }


async def test_forecast_rejects_bad_amounts(gql: GQL, world: Tenant) -> None:
    for amount, code in (("-5", "INVALID_AMOUNT"), ("1.234", "INVALID_AMOUNT")):
        payload = await gql(
            f'{{ earningsForecast(additionalRevenue: {{amount: "{amount}", currency: "USD"}}) '
            "{ explanation } }",
            as_user=world.user(Role.PARTNER_ADMIN),
        )
        assert error_codes(payload) == [code]


VENDOR_ONLY_QUERIES = {
    "summary margin": "{ earnings { margin { amountMinor } } }",
    "summary hold reason": "{ earnings { holds { reason } } }",
    "summary hold note": "{ earnings { holds { internalNote } } }",
    "summary hold flags": "{ earnings { holds { riskFlags } } }",
    "statement decisions": "{ payouts { edges { node { decisions { action note } } } } }",
    "statement hold reason": "{ payouts { edges { node { holds { reason } } } } }",
    "statement hold note": "{ payouts { edges { node { holds { internalNote } } } } }",
    "statement hold flags": "{ payouts { edges { node { holds { riskFlags } } } } }",
    "metrics": "{ earningsMetrics { total { margin { amountMinor } } } }",
    "metrics concentration": "{ earningsMetrics { concentrationBp } }",
}


@pytest.mark.parametrize("role", [Role.PARTNER_ADMIN, Role.PARTNER_REP])
@pytest.mark.parametrize("name", sorted(VENDOR_ONLY_QUERIES))
async def test_partner_roles_never_receive_vendor_internals(
    gql: GQL, held: Tenant, role: Role, name: str
) -> None:
    payload = await gql(VENDOR_ONLY_QUERIES[name], as_user=held.user(role))
    text = json.dumps(payload)
    assert SECRET_NOTE not in text
    assert SECRET_FLAG not in text
    data = payload.get("data") or {}
    if role is Role.PARTNER_REP and name.startswith("statement"):
        # Reps read no statements at all: an empty list, no error to learn from.
        assert data["payouts"]["edges"] == []
        return
    if role is Role.PARTNER_REP and name.startswith("summary hold"):
        # Nor holds: the organisation's, as its statements.
        assert data["earnings"]["holds"] == []
        return
    assert "FORBIDDEN" in error_codes(payload), payload


@pytest.mark.parametrize("name", sorted(n for n in VENDOR_ONLY_QUERIES if "metrics" not in n))
async def test_a_refused_internal_nulls_that_field_only(gql: GQL, held: Tenant, name: str) -> None:
    """Each refusal is one FORBIDDEN error at the field's path; its parent object (a
    summary, a statement, a hold) and the lists around it stay."""
    payload = await gql(VENDOR_ONLY_QUERIES[name], as_user=held.user(Role.PARTNER_ADMIN))
    assert payload["errors"]
    for error in payload["errors"]:
        assert error["extensions"]["code"] == "FORBIDDEN"
        parent: Any = payload["data"]
        for step in error["path"][:-1]:
            parent = parent[step]
        assert isinstance(parent, dict)
        assert parent[error["path"][-1]] is None


async def test_vendor_roles_receive_the_internals(gql: GQL, held: Tenant) -> None:
    finance = held.user(Role.FINANCE)
    mine = gid(held.partners[0])
    data = await gql.data(
        """query($p: ID) { earnings(partnerId: $p) { margin { amountMinor }
             holds { reason internalNote riskFlags } } }""",
        {"p": mine},
        as_user=finance,
    )
    # The 30-day window's sales are in March; "this month" (April) has no entries.
    assert data["earnings"]["margin"] == {"amountMinor": 0}
    holds = data["earnings"]["holds"]
    assert {h["reason"] for h in holds} == {"MISSING_TAX_FORM", "RISK_FLAGS", "MANUAL"}
    assert any(SECRET_NOTE == h["internalNote"] for h in holds)
    assert any(SECRET_FLAG in " ".join(h["riskFlags"]) for h in holds)
    decisions = await gql.data(
        "{ payouts { edges { node { partnerId decisions { action reason } } } } }",
        as_user=finance,
    )
    assert len(decisions["payouts"]["edges"]) == 2
    manager = await gql(
        "{ payouts { edges { node { decisions { action } } } } }",
        as_user=held.user(Role.CHANNEL_MANAGER),
    )
    assert error_codes(manager) == ["FORBIDDEN"]  # decision records: finance and admins


async def test_partner_sees_its_hold_in_plain_words_only(gql: GQL, held: Tenant) -> None:
    data = await gql.data(SUMMARY, {"period": MARCH_PERIOD}, as_user=held.user(Role.PARTNER_ADMIN))
    summary = data["earnings"]
    assert summary["held"]["amountMinor"] == 183_600
    assert summary["pending"]["amountMinor"] == 0
    assert {h["explanation"].split(".")[0] for h in summary["holds"]} == {
        "We need your tax form before we can pay you",
        "Some sales in this payout are being reviewed",
        "Our finance team has paused this payout",
    }
    hold_texts = [e["text"] for e in summary["explanations"] if e["kind"] == "HOLD"]
    assert len(hold_texts) == 3
    assert all(
        t.startswith("Your payout for March 2026 (1,836.00 USD) is held.") for t in hold_texts
    )
    text = json.dumps(data)
    assert SECRET_NOTE not in text
    assert SECRET_FLAG not in text


PAYOUTS = "{ payouts { edges { node { id status total { amountMinor } } } } }"
APPROVE = """mutation($id: ID!) { payoutApprove(input: {statementId: $id}) {
  statement { status } userErrors { code field message } } }"""


async def statuses(db: Database) -> list[PayoutStatus]:
    async with db.session() as session:
        return sorted(s.status for s in await session.exec(select(PayoutStatement)))


async def test_payout_decisions_are_finance_only_and_refusals_change_nothing(
    gql: GQL, held: Tenant, db: Database
) -> None:
    statements = await gql.data(PAYOUTS, as_user=held.user(Role.FINANCE))
    ids = [e["node"]["id"] for e in statements["payouts"]["edges"]]
    before = await statuses(db)
    for role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER):
        payload = await gql(APPROVE, {"id": ids[0]}, as_user=held.user(role))
        assert error_codes(payload) == ["FORBIDDEN"]
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        payload = await gql(APPROVE, {"id": ids[0]}, as_user=held.user(role))
        assert error_codes(payload) == ["FORBIDDEN"]
    # Approving a held payout without releasing the hold.
    data = await gql.data(APPROVE, {"id": ids[0]}, as_user=held.user(Role.FINANCE))
    assert data["payoutApprove"]["statement"] is None
    assert [e["code"] for e in data["payoutApprove"]["userErrors"]] == ["PAYOUT_HELD"]
    assert await statuses(db) == before == [PayoutStatus.HELD, PayoutStatus.HELD]


async def test_finance_releases_approves_and_pays_through_graphql(
    gql: GQL, world: Tenant, db: Database, clock: OffsetClock
) -> None:
    await tax_form(db, clock, world, 1)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    finance = world.user(Role.FINANCE)
    early = await gql.data(
        """mutation { payoutStatementsGenerate(input: {month: "2026-04-01T00:00:00Z"}) {
             statements { id } userErrors { code field } } }""",
        as_user=finance,
    )
    assert early["payoutStatementsGenerate"]["userErrors"] == [
        {"code": "PERIOD_NOT_ENDED", "field": "month"}
    ]
    made = await gql.data(
        """mutation { payoutStatementsGenerate(input: {month: "2026-03-15T00:00:00Z"}) {
             statements { id partnerId status total { amountMinor }
                          holds { id reason } } userErrors { code } } }""",
        as_user=finance,
    )
    by_partner = {s["partnerId"]: s for s in made["payoutStatementsGenerate"]["statements"]}
    ready = by_partner[gid(world.partners[1])]
    blocked = by_partner[gid(world.partners[0])]
    assert (ready["status"], ready["total"]["amountMinor"]) == ("PENDING", 40_000)
    assert blocked["status"] == "HELD"
    assert [h["reason"] for h in blocked["holds"]] == ["MISSING_TAX_FORM"]
    data = await gql.data(APPROVE, {"id": ready["id"]}, as_user=finance)
    assert data["payoutApprove"] == {"statement": {"status": "APPROVED"}, "userErrors": []}
    paid = await gql.data(
        """mutation($id: ID!) { payoutMarkPaid(input: {statementId: $id, reference: "TX-1"}) {
             statement { status paidReference } userErrors { code } } }""",
        {"id": ready["id"]},
        as_user=finance,
    )
    assert paid["payoutMarkPaid"]["statement"] == {"status": "PAID", "paidReference": "TX-1"}
    again = await gql.data(
        """mutation($id: ID!) { payoutMarkPaid(input: {statementId: $id}) {
             statement { status } userErrors { code } } }""",
        {"id": ready["id"]},
        as_user=finance,
    )
    assert again["payoutMarkPaid"] == {
        "statement": None,
        "userErrors": [{"code": "INVALID_STATUS"}],
    }
    release = """mutation($id: ID!) { payoutHoldRelease(input: {holdId: $id}) {
                   statement { status } userErrors { code } } }"""
    refused = await gql.data(release, {"id": blocked["holds"][0]["id"]}, as_user=finance)
    assert refused["payoutHoldRelease"]["userErrors"] == [{"code": "HOLD_CONDITION_PERSISTS"}]
    profile = await gql.data(
        """mutation($p: ID!) { payoutProfileSet(input: {partnerId: $p, taxFormOnFile: true}) {
             taxFormOnFile userErrors { code } } }""",
        {"p": blocked["partnerId"]},
        as_user=finance,
    )
    assert profile["payoutProfileSet"] == {"taxFormOnFile": True, "userErrors": []}
    # Recording the form released the hold: the statement is ready for approval.
    released = await gql.data(APPROVE, {"id": blocked["id"]}, as_user=finance)
    assert released["payoutApprove"]["statement"] == {"status": "APPROVED"}
    # The partner's view of March now: 400.00 paid.
    summary = await gql.data(
        SUMMARY, {"period": MARCH_PERIOD}, as_user=world.user(Role.PARTNER_ADMIN, 1)
    )
    assert summary["earnings"]["paid"]["amountMinor"] == 40_000


RULES = """{baseRates: [{rateBp: 800}], tiers: [
  {name: "Silver", threshold: "10000.00", upliftBp: 100},
  {name: "Gold", threshold: "25000.00", upliftBp: 200}]}"""


async def program_count(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        programs_ = await session.scalar(select(func.count()).select_from(Program))
        versions = await session.scalar(select(func.count()).select_from(ProgramVersion))
        return int(programs_ or 0), int(versions or 0)


CREATE = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id name versions { number rules { tiers { name threshold { amount } } } } }
  userErrors { code field } } }"""


def program_input(**rules: Any) -> dict[str, Any]:
    base = {
        "baseRates": [{"rateBp": 800}],
        "tiers": [
            {"name": "Silver", "threshold": "10000.00", "upliftBp": 100},
            {"name": "Gold", "threshold": "25000.00", "upliftBp": 200},
        ],
    }
    return {"name": "Partner Rewards", "currency": "USD", "rules": {**base, **rules}}


async def test_vendor_admin_creates_a_program(gql: GQL, tenant: Tenant) -> None:
    data = await gql.data(
        CREATE, {"input": program_input()}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    program = data["earningProgramCreate"]["program"]
    assert program["versions"][0]["rules"]["tiers"] == [
        {"name": "Silver", "threshold": {"amount": "10000.00"}},
        {"name": "Gold", "threshold": {"amount": "25000.00"}},
    ]
    for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN):
        payload = await gql(CREATE, {"input": program_input()}, as_user=tenant.user(role))
        assert error_codes(payload) == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("rules", "code", "field"),
    [
        (
            {"tiers": [
                {"name": "Silver", "threshold": "10000.00", "upliftBp": 100},
                {"name": "Gold", "threshold": "10000.00", "upliftBp": 200},
            ]},
            "OVERLAPPING_TIERS", "rules.tiers.1.threshold",
        ),
        ({"baseRates": [{"rateBp": -100}]}, "NEGATIVE_RATE", "rules.baseRates.0.rateBp"),
        (
            {"spiffs": [{"sku": "NW-AP-6E", "perUnit": "25.00",
                         "startsAt": "2026-03-10T00:00:00Z", "endsAt": "2026-03-01T00:00:00Z"}]},
            "SPIFF_ENDS_BEFORE_START", "rules.spiffs.0.endsAt",
        ),
        (
            {"tiers": [{"name": "Silver", "threshold": "ten", "upliftBp": 100}]},
            "INVALID_AMOUNT", "rules.tiers.0.threshold",
        ),
    ],
)  # fmt: skip
async def test_bad_program_input_is_refused_and_changes_nothing(
    gql: GQL, tenant: Tenant, db: Database, rules: dict[str, Any], code: str, field: str
) -> None:
    data = await gql.data(
        CREATE, {"input": program_input(**rules)}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    result = data["earningProgramCreate"]
    assert result["program"] is None
    assert {"code": code, "field": field} in result["userErrors"]
    assert await program_count(db) == (0, 0)


@pytest.mark.parametrize("ends", ["2026-03-10T00:00:00Z", "2026-03-01T00:00:00Z"])
async def test_a_spiff_that_ends_at_or_before_its_start_says_it_must_end_after(
    gql: GQL, tenant: Tenant, db: Database, ends: str
) -> None:
    """An empty window ([start, start)) read "The spiff ends before it starts."."""
    spiff = {"sku": "NW-AP-6E", "perUnit": "25.00", "startsAt": "2026-03-10T00:00:00Z",
             "endsAt": ends}  # fmt: skip
    query = CREATE.replace("userErrors { code field }", "userErrors { code field message }")
    data = await gql.data(
        query, {"input": program_input(spiffs=[spiff])}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert data["earningProgramCreate"]["userErrors"] == [{
        "code": "SPIFF_ENDS_BEFORE_START", "field": "rules.spiffs.0.endsAt",
        "message": "A spiff must end after it starts.",
    }]  # fmt: skip
    assert await program_count(db) == (0, 0)


async def test_program_change_cannot_reach_back_into_paid_periods(
    gql: GQL, world: Tenant, db: Database, clock: OffsetClock, services: Services
) -> None:
    await tax_form(db, clock, world, 1)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    fin = world.principal(Role.FINANCE)
    made = await tx(
        db,
        lambda s: payouts.generate_statements(
            s, fin, clock, month=MARCH, signals=services.claim_signals
        ),
    )
    ready = next(s for s in made if s.status is PayoutStatus.PENDING)
    await tx(db, lambda s: payouts.approve(s, fin, clock, statement_id=ready.id))
    await tx(db, lambda s: payouts.mark_paid(s, fin, clock, statement_id=ready.id))
    async with db.session() as session:
        program = (await session.exec(select(Program))).one()
    query = """mutation($input: EarningProgramVersionCreateInput!) {
      earningProgramVersionCreate(input: $input) {
        version { number effectiveFrom } userErrors { code field } } }"""
    before = await program_count(db)
    variables = {
        "input": {
            "programId": gid("EarningProgram", program.id),
            "rules": {"baseRates": [{"rateBp": 900}]},
            "effectiveFrom": "2026-03-20T00:00:00Z",
        }
    }
    admin_user = world.user(Role.VENDOR_ADMIN)
    data = await gql.data(query, variables, as_user=admin_user)
    assert data["earningProgramVersionCreate"] == {
        "version": None,
        "userErrors": [{"code": "EFFECTIVE_BEFORE_PAID_PERIOD", "field": "effectiveFrom"}],
    }
    assert await program_count(db) == before
    variables["input"]["effectiveFrom"] = "2026-04-01T00:00:00Z"
    data = await gql.data(query, variables, as_user=admin_user)
    assert data["earningProgramVersionCreate"]["version"]["number"] == 2


async def test_vendor_metrics(gql: GQL, world: Tenant, other_tenant: Tenant) -> None:
    query = """query($period: EarningsPeriodInput) { earningsMetrics(period: $period) {
      total { revenue { amountMinor } earnings { amountMinor } margin { amountMinor }
              contributionMargin { amountMinor } payoutRatioBp sales }
      activationRateBp concentrationBp topPartnerId
      partners { partnerName figures { revenue { amountMinor } payoutRatioBp } } } }"""
    data = await gql.data(query, {"period": MARCH_PERIOD}, as_user=world.user(Role.FINANCE))
    metrics = data["earningsMetrics"]
    # Revenue 12,000 + 8,400 + 5,000 = 25,400.00; earnings 1,080 + 756 + 400 = 2,236.00.
    # Sales without lines carry no catalogue margin.
    assert metrics["total"] == {
        "revenue": {"amountMinor": 2_540_000},
        "earnings": {"amountMinor": 223_600},
        "margin": {"amountMinor": 0},
        "contributionMargin": {"amountMinor": -223_600},
        "payoutRatioBp": 880,  # 2,236 / 25,400 = 8.803%
        "sales": 3,
    }
    assert metrics["activationRateBp"] == 10_000
    assert metrics["concentrationBp"] == 8_031  # 20,400 / 25,400
    assert metrics["topPartnerId"] == gid(world.partners[0])
    manager = await gql.data(
        query, {"period": MARCH_PERIOD}, as_user=world.user(Role.CHANNEL_MANAGER)
    )
    assert [p["partnerName"] for p in manager["earningsMetrics"]["partners"]] == [
        world.partners[0].name
    ]
    other = await gql.data(
        query, {"period": MARCH_PERIOD}, as_user=other_tenant.user(Role.VENDOR_ADMIN)
    )
    assert other["earningsMetrics"]["total"]["revenue"] == {"amountMinor": 0}


ADJUST = """mutation($input: EarningAdjustmentCreateInput!) {
  earningAdjustmentCreate(input: $input) {
    entry { id kind amount { amountMinor } rule } userErrors { code field } } }"""


async def entry_count(db: Database) -> int:
    from earnings.models import EarningEntry  # noqa: PLC0415

    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(EarningEntry)) or 0)


async def test_adjustments_are_new_entries_and_retries_return_the_first(
    gql: GQL, world: Tenant, db: Database, other_tenant: Tenant
) -> None:
    variables = {
        "input": {
            "partnerId": gid(world.partners[0]),
            "amount": {"amount": "-12.50", "currency": "USD"},
            "note": "duplicate spiff in March",
            "idempotencyKey": "adj-2026-03-001",
        }
    }
    before = await entry_count(db)
    finance = world.user(Role.FINANCE)
    first = await gql.data(ADJUST, variables, as_user=finance)
    entry = first["earningAdjustmentCreate"]["entry"]
    assert entry["kind"] == "ADJUSTMENT"
    assert entry["amount"] == {"amountMinor": -1_250}
    assert entry["rule"] == "Adjustment of -12.50 USD: duplicate spiff in March"
    again = await gql.data(ADJUST, variables, as_user=finance)
    assert again["earningAdjustmentCreate"]["entry"]["id"] == entry["id"]
    assert await entry_count(db) == before + 1
    variables["input"]["amount"]["amount"] = "-13.00"
    reused = await gql.data(ADJUST, variables, as_user=finance)
    assert reused["earningAdjustmentCreate"]["userErrors"] == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}
    ]
    variables["input"]["idempotencyKey"] = "adj-2"
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(ADJUST, variables, as_user=world.user(role))) == ["FORBIDDEN"]
    foreign = await gql.data(ADJUST, variables, as_user=other_tenant.user(Role.FINANCE))
    assert foreign["earningAdjustmentCreate"]["userErrors"] == [
        {"code": "NOT_FOUND", "field": "partnerId"}
    ]
    assert await entry_count(db) == before + 1


async def test_other_payout_refusals_change_nothing(
    gql: GQL, held: Tenant, db: Database, other_tenant: Tenant
) -> None:
    finance = held.user(Role.FINANCE)
    statements = await gql.data(PAYOUTS, as_user=finance)
    statement_id = statements["payouts"]["edges"][0]["node"]["id"]
    hold = """mutation($id: ID!, $note: String!) {
      payoutHold(input: {statementId: $id, note: $note}) {
        hold { id } userErrors { code field } } }"""
    generate = """mutation { payoutStatementsGenerate(input: {month: "2026-03-01T00:00:00Z"}) {
      statements { id } userErrors { code } } }"""
    policy = """mutation($f: Int!) { payoutPolicySet(input: {aboveAverageFactorBp: $f}) {
      aboveAverageFactorBp userErrors { code field } } }"""

    async def counts() -> tuple[int, int]:
        from earnings.models import PayoutDecision, PayoutHold  # noqa: PLC0415

        async with db.session() as session:
            holds = await session.scalar(select(func.count()).select_from(PayoutHold))
            decisions = await session.scalar(select(func.count()).select_from(PayoutDecision))
            return int(holds or 0), int(decisions or 0)

    before = await counts()
    for role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN):
        user = held.user(role)
        assert error_codes(await gql(hold, {"id": statement_id, "note": "x"}, as_user=user)) == [
            "FORBIDDEN"
        ]
        assert error_codes(await gql(generate, as_user=user)) == ["FORBIDDEN"]
    empty = await gql.data(hold, {"id": statement_id, "note": "  "}, as_user=finance)
    assert empty["payoutHold"]["userErrors"] == [{"code": "REQUIRED", "field": "note"}]
    # Longer than its column: PostgreSQL failed the write (INTERNAL_SERVER_ERROR).
    long = await gql.data(hold, {"id": statement_id, "note": "x" * 2001}, as_user=finance)
    assert long["payoutHold"]["userErrors"] == [{"code": "TOO_LONG", "field": "note"}]
    foreign = await gql.data(
        hold, {"id": statement_id, "note": "x"}, as_user=other_tenant.user(Role.FINANCE)
    )
    assert foreign["payoutHold"]["userErrors"] == [{"code": "NOT_FOUND", "field": "statementId"}]
    again = await gql.data(generate, as_user=finance)  # made before: left alone
    assert again["payoutStatementsGenerate"] == {"statements": [], "userErrors": []}
    bad = await gql.data(policy, {"f": 9_000}, as_user=finance)
    assert bad["payoutPolicySet"]["userErrors"] == [
        {"code": "INVALID_FACTOR", "field": "aboveAverageFactorBp"}
    ]
    assert await counts() == before


async def test_a_hold_expected_to_end_in_the_past_says_it_must_be_in_the_future(
    gql: GQL, held: Tenant, db: Database
) -> None:
    """The message read "The expected release is in the future." (the opposite)."""
    finance = held.user(Role.FINANCE)
    statements = await gql.data(PAYOUTS, as_user=finance)
    statement_id = statements["payouts"]["edges"][0]["node"]["id"]
    hold = """mutation($id: ID!, $at: DateTime) {
      payoutHold(input: {statementId: $id, note: "check", expectedReleaseAt: $at}) {
        hold { id } userErrors { code field message } } }"""

    async def holds() -> int:
        from earnings.models import PayoutHold  # noqa: PLC0415

        async with db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(PayoutHold)) or 0)

    before = await holds()
    data = await gql.data(hold, {"id": statement_id, "at": "2020-01-01T00:00:00Z"}, as_user=finance)
    assert data["payoutHold"] == {"hold": None, "userErrors": [{
        "code": "INVALID_PERIOD", "field": "expectedReleaseAt",
        "message": "The expected release must be in the future.",
    }]}  # fmt: skip
    assert await holds() == before


@pytest.mark.parametrize("end", ["2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z"])
async def test_a_period_that_ends_at_or_before_its_start_names_its_end(
    gql: GQL, world: Tenant, end: str
) -> None:
    """The message read "The period ends before it starts." also for an empty period, and
    named no argument."""
    query = """query($p: EarningsPeriodInput) { earningEntries(period: $p) { totalCount } }"""
    period = {"start": "2026-03-01T00:00:00Z", "end": end}
    response = await gql(query, {"p": period}, as_user=world.user(Role.PARTNER_ADMIN))
    [error] = response["errors"]
    assert error["extensions"] == {"code": "INVALID_PERIOD", "field": "period.end"}
    assert error["message"] == "The period must end after it starts."


async def test_a_rep_reads_its_own_held_earnings_but_never_its_organisations_holds(
    gql: GQL, held: Tenant, other_tenant: Tenant
) -> None:
    """Holds are organisation-level, as statements are (``RepAccess.NONE``): the partner
    admin reads them, with the statement's total; the rep reads how much of its own earnings
    is held, never the holds, their reasons or the organisation's statement total."""
    variables = {"period": MARCH_PERIOD}
    admin = (await gql.data(SUMMARY, variables, as_user=held.user(Role.PARTNER_ADMIN)))["earnings"]
    assert len(admin["holds"]) == 3
    assert [e for e in admin["explanations"] if e["kind"] == "HOLD"]
    assert admin["held"]["amountMinor"] == 183_600
    assert "1,836.00 USD" in json.dumps(admin)

    rep = held.user(Role.PARTNER_REP)
    payload = await gql(SUMMARY, variables, as_user=rep)
    mine = payload["data"]["earnings"]
    assert mine["held"]["amountMinor"] == 108_000  # its own entries, in a held statement
    assert mine["holds"] == []
    assert not [e for e in mine["explanations"] if e["kind"].startswith("HOLD")]
    text = json.dumps(payload)
    for secret in ("1,836.00", "tax form", "being reviewed", "paused", SECRET_NOTE):
        assert secret not in text, secret
    # Partner 1's users and another vendor's read nothing of partner 0's holds.
    mine_id = gid(held.partners[0])
    others = [
        (held.user(Role.PARTNER_ADMIN, 1), {}),
        (held.user(Role.PARTNER_REP, 1), {}),
        (other_tenant.user(Role.PARTNER_ADMIN), {"partnerId": mine_id}),
        (other_tenant.user(Role.VENDOR_ADMIN), {"partnerId": mine_id}),
    ]
    for user, asked in others:
        answer = json.dumps(await gql(SUMMARY, {**variables, **asked}, as_user=user))
        for secret in ("1,836.00", "being reviewed", "paused"):  # partner 0's holds
            assert secret not in answer, (user.role, secret)
    assert error_codes(await gql(SUMMARY, variables)) == ["UNAUTHENTICATED"]


GENERATE = """mutation($month: DateTime!, $key: String) {
  payoutStatementsGenerate(input: {month: $month, idempotencyKey: $key}) {
    statements { id partnerId status } userErrors { code field } } }"""
PAY = """mutation($id: ID!, $ref: String!, $key: String) {
  payoutMarkPaid(input: {statementId: $id, reference: $ref, idempotencyKey: $key}) {
    statement { id status paidReference } userErrors { code field } } }"""


async def decision_count(db: Database) -> int:
    from earnings.models import PayoutDecision  # noqa: PLC0415

    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(PayoutDecision)) or 0)


async def test_payout_retries_with_a_key_return_the_first_result(
    gql: GQL, world: Tenant, db: Database, clock: OffsetClock, other_tenant: Tenant
) -> None:
    """A client whose answer was lost retries with its key: generation answers with the
    statements it made (it answered an empty list), payment with the statement it paid (it
    answered INVALID_STATUS); nothing is made or paid twice."""
    await tax_form(db, clock, world, 1)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    finance = world.user(Role.FINANCE)
    march = {"month": "2026-03-15T00:00:00Z", "key": "gen-march"}
    first = (await gql.data(GENERATE, march, as_user=finance))["payoutStatementsGenerate"]
    assert len(first["statements"]) == 2
    assert first["userErrors"] == []
    made = await decision_count(db)
    # The same month named by another instant in it is the same request.
    again = await gql.data(GENERATE, {**march, "month": "2026-03-01T00:00:00Z"}, as_user=finance)
    assert again["payoutStatementsGenerate"] == first
    assert await decision_count(db) == made
    assert len(await statuses(db)) == 2
    # Without a key, or with a new one, a second generation makes nothing and says so.
    for key in (None, "gen-march-2"):
        later = await gql.data(GENERATE, {**march, "key": key}, as_user=finance)
        assert later["payoutStatementsGenerate"] == {"statements": [], "userErrors": []}
    replayed = await gql.data(GENERATE, {**march, "key": "gen-march-2"}, as_user=finance)
    assert replayed["payoutStatementsGenerate"] == {"statements": [], "userErrors": []}
    # The key for another month; a key too long; another vendor's caller with the key.
    reused = await gql.data(GENERATE, {**march, "month": "2026-02-10T00:00:00Z"}, as_user=finance)
    too_long = await gql.data(GENERATE, {**march, "key": "k" * 129}, as_user=finance)
    foreign = await gql.data(GENERATE, march, as_user=other_tenant.user(Role.FINANCE))
    assert reused["payoutStatementsGenerate"]["userErrors"] == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}
    ]
    assert too_long["payoutStatementsGenerate"]["userErrors"] == [
        {"code": "TOO_LONG", "field": "idempotencyKey"}
    ]
    assert foreign["payoutStatementsGenerate"] == {"statements": [], "userErrors": []}
    assert await decision_count(db) == made

    ready = next(s for s in first["statements"] if s["partnerId"] == gid(world.partners[1]))
    approved = await gql.data(APPROVE, {"id": ready["id"]}, as_user=finance)
    assert approved["payoutApprove"]["userErrors"] == []
    pay = {"id": ready["id"], "ref": "TX-9", "key": "pay-9"}
    paid = (await gql.data(PAY, pay, as_user=finance))["payoutMarkPaid"]
    assert paid == {
        "statement": {"id": ready["id"], "status": "PAID", "paidReference": "TX-9"},
        "userErrors": [],
    }
    decided = await decision_count(db)
    assert (await gql.data(PAY, pay, as_user=finance))["payoutMarkPaid"] == paid
    other_ref = await gql.data(PAY, {**pay, "ref": "TX-10"}, as_user=finance)
    no_key = await gql.data(PAY, {**pay, "key": None}, as_user=finance)
    assert other_ref["payoutMarkPaid"]["userErrors"] == [
        {"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}
    ]
    assert no_key["payoutMarkPaid"]["userErrors"] == [
        {"code": "INVALID_STATUS", "field": "statementId"}
    ]
    assert await decision_count(db) == decided


PAY_WHY = """mutation($id: ID!, $ref: String!) {
  payoutMarkPaid(input: {statementId: $id, reference: $ref}) {
    statement { id } userErrors { code field message } } }"""


async def test_a_payment_reference_with_controls_or_overrides_is_refused(
    gql: GQL, world: Tenant, db: Database, clock: OffsetClock
) -> None:
    """The partner reads the bank reference on the statement: infra.text's one-line rule,
    INVALID_CHARACTERS on reference, and the statement stays APPROVED."""
    await tax_form(db, clock, world, 1)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    finance = world.user(Role.FINANCE)
    made = await gql.data(GENERATE, {"month": "2026-03-15T00:00:00Z"}, as_user=finance)
    statement = next(
        s for s in made["payoutStatementsGenerate"]["statements"]
        if s["partnerId"] == gid(world.partners[1])
    )  # fmt: skip
    approved = await gql.data(APPROVE, {"id": statement["id"]}, as_user=finance)
    assert approved["payoutApprove"]["userErrors"] == []
    for text, named in (("TX\u202e1", "U+202E"), ("TX\x1b1", "U+001B"), ("TX\n1", "U+000A")):
        refused = await gql.data(PAY_WHY, {"id": statement["id"], "ref": text}, as_user=finance)
        assert refused["payoutMarkPaid"]["statement"] is None
        [error] = refused["payoutMarkPaid"]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", "reference")
        assert named in error["message"]
        assert await statuses(db) == sorted([PayoutStatus.APPROVED, PayoutStatus.HELD]), named
    paid = await gql.data(PAY, {"id": statement["id"], "ref": "SEPA שלום 42"}, as_user=finance)
    assert paid["payoutMarkPaid"]["statement"]["paidReference"] == "SEPA שלום 42"
