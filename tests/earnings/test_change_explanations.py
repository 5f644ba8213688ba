"""Every money change explained (issue 13, item 6), through GraphQL: a new program version
of any field, a program that starts or stops applying because a group membership changed,
and each adjustment with its note, each to the partners it affects and to nobody else.
Expected sentences written by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from earnings import programs
from earnings.changes import describe_changes
from infra.clock import OffsetClock
from infra.db import Database
from partners import groups
from partners.group_models import MemberMode
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MARCH = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-04-01T00:00:00+00:00"}
GROUP_NAME = "Secret segment 7"

SUMMARY = """query($period: EarningsPeriodInput, $partnerId: ID) {
  earnings(period: $period, partnerId: $partnerId) { explanations { kind text amount { amount } } }
}"""
CREATE = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id } userErrors { code field } } }"""
VERSION = """mutation($input: EarningProgramVersionCreateInput!) {
  earningProgramVersionCreate(input: $input) { program { id } userErrors { code field } } }"""
ADJUST = """mutation($input: EarningAdjustmentCreateInput!) {
  earningAdjustmentCreate(input: $input) { entry { id } userErrors { code field } } }"""

CHANGE_KINDS = {"PROGRAM_CHANGED", "PROGRAM_STARTED", "PROGRAM_NOW_APPLIES",
                "PROGRAM_NO_LONGER_APPLIES", "ADJUSTMENT"}  # fmt: skip


def rules(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "baseRates": [{"rateBp": 800}, {"rateBp": 1000, "category": "security"}],
        "windowDays": 30,
        "tiers": [{"name": "Silver", "threshold": "10000.00", "upliftBp": 100},
                  {"name": "Gold", "threshold": "25000.00", "upliftBp": 200}],
        "dealBonusBp": 0, "dealBonus": "250.00", "clawback": True,
    }  # fmt: skip
    return {**base, **overrides}


async def explained(
    gql: GQL, tenant: Tenant, role: Role = Role.PARTNER_ADMIN, index: int = 0
) -> list[tuple[str, str]]:
    data = await gql.data(SUMMARY, {"period": MARCH}, as_user=tenant.user(role, index))
    return [
        (e["kind"], e["text"]) for e in data["earnings"]["explanations"]
        if e["kind"] in CHANGE_KINDS
    ]  # fmt: skip


async def test_a_new_version_of_any_field_is_explained_to_every_partner_it_applies_to(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(T0)
    admin = tenant.user(Role.VENDOR_ADMIN)
    created = await gql.data(CREATE, {"input": {
        "name": "Partner Rewards", "currency": "USD", "rules": rules(),
        "effectiveFrom": "2026-01-01T00:00:00+00:00",
    }}, as_user=admin)  # fmt: skip
    program_id = created["earningProgramCreate"]["program"]["id"]
    changed = rules(
        windowDays=60,
        tiers=[{"name": "Silver", "threshold": "12000.00", "upliftBp": 100},
               {"name": "Gold", "threshold": "25000.00", "upliftBp": 300,
                "maxRefundRateBp": 1000}],
        spiffs=[{"sku": "NW-AP-6E", "perUnit": "25.00", "startsAt": "2026-03-10T00:00:00+00:00",
                 "endsAt": "2026-03-24T00:00:00+00:00", "region": "EMEA"}],
        dealBonus="300.00", clawback=False,
    )  # fmt: skip
    result = await gql.data(VERSION, {"input": {
        "programId": program_id, "rules": changed, "effectiveFrom": "2026-03-05T00:00:00+00:00",
    }}, as_user=admin)  # fmt: skip
    assert result["earningProgramVersionCreate"]["userErrors"] == []
    clock.freeze(T0 + timedelta(days=5))
    expected = [(
        "PROGRAM_CHANGED",
        "The Partner Rewards program changed on 05 Mar 2026 (version 2): tiers are now decided "
        "on 60 days of qualified revenue, it was 30 days; Silver now starts at 12,000.00 USD "
        "of qualified revenue, it was 10,000.00 USD; Gold now adds +3%, it was +2%; Gold now "
        "allows a refund rate of 10%, it was none; a new spiff pays 25.00 USD per unit of "
        "NW-AP-6E in EMEA from 10 Mar 2026 until 24 Mar 2026; a won registered deal now earns "
        "300.00 USD, it was 250.00 USD; a reversed sale no longer takes back what it earned.",
    )]  # fmt: skip
    assert await explained(gql, tenant, index=0) == expected
    assert await explained(gql, tenant, index=1) == expected
    assert await explained(gql, tenant, Role.PARTNER_REP, 0) == expected
    # Only the changed base rate is named: the category rate stayed.
    await gql.data(VERSION, {"input": {
        "programId": program_id, "effectiveFrom": "2026-03-20T00:00:00+00:00",
        "rules": {**changed, "baseRates": [{"rateBp": 900}, {"rateBp": 1000,
                  "category": "security"}]},
    }}, as_user=admin)  # fmt: skip
    found = await explained(gql, tenant, index=1)
    assert found[-1] == (
        "PROGRAM_CHANGED",
        "The Partner Rewards program changes on 20 Mar 2026 (version 3): the base rate is now "
        "9%, it was 8%.",
    )
    # Another period does not repeat them.
    data = await gql.data(SUMMARY, {"period": {"start": "2026-04-01T00:00:00+00:00",
                          "end": "2026-05-01T00:00:00+00:00"}}, as_user=tenant.user(
                          Role.PARTNER_ADMIN))  # fmt: skip
    assert not {e["kind"] for e in data["earnings"]["explanations"]} & CHANGE_KINDS


async def group_with_partner_0(db: Database, clock: OffsetClock, tenant: Tenant) -> Any:
    admin = tenant.principal(Role.VENDOR_ADMIN)

    async def make(session: Any) -> Any:
        group = await groups.create_group(session, admin, clock, name=GROUP_NAME)
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=[tenant.partners[0].id],
            mode=MemberMode.INCLUDE, reason="internal: high churn risk",
        )  # fmt: skip
        return group.id

    return await es.tx(db, make)


async def test_a_targeted_program_and_membership_changes_reach_only_its_members(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(datetime(2026, 2, 1, tzinfo=UTC))
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(CREATE, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": rules()}}, as_user=admin)  # fmt: skip
    group_id = await group_with_partner_0(db, clock, tenant)
    clock.freeze(T0)
    created = await gql.data(CREATE, {"input": {
        "name": "Boost", "currency": "USD", "kind": "BONUS", "rules": {"baseRates": [
        {"rateBp": 200}]}, "targetGroupIds": [gid("PartnerGroup", group_id)],
    }}, as_user=admin)  # fmt: skip
    boost = created["earningProgramCreate"]["program"]["id"]
    clock.freeze(T0 + timedelta(days=3))
    await gql.data(VERSION, {"input": {"programId": boost, "rules": {"baseRates": [
        {"rateBp": 300}]}}}, as_user=admin)  # fmt: skip
    clock.freeze(T0 + timedelta(days=10))
    await es.tx(db, lambda s: groups.set_members(
        s, tenant.principal(Role.VENDOR_ADMIN), clock, group_id=group_id,
        partner_ids=[tenant.partners[0].id, tenant.partners[1].id], mode=MemberMode.EXCLUDE,
        reason="internal: pilot over",
    ))  # fmt: skip
    clock.freeze(T0 + timedelta(days=12))
    await es.tx(db, lambda s: groups.set_members(
        s, tenant.principal(Role.VENDOR_ADMIN), clock, group_id=group_id,
        partner_ids=[tenant.partners[1].id], mode=MemberMode.INCLUDE,
    ))  # fmt: skip
    await dispatch(services)
    clock.freeze(T0 + timedelta(days=20))
    assert await explained(gql, tenant, index=0) == [
        ("PROGRAM_STARTED", "The Boost program (bonus program, paid on top of your base "
         "program) applies to you from 02 Mar 2026: 2% of every sale."),
        ("PROGRAM_CHANGED", "The Boost program changed on 05 Mar 2026 (version 2): the base "
         "rate is now 3%, it was 2%."),
        ("PROGRAM_NO_LONGER_APPLIES", "From 12 Mar 2026 the Boost program no longer applies "
         "to your sales; sales made before then keep what they earned under it."),
    ]  # fmt: skip
    assert await explained(gql, tenant, index=1) == [
        ("PROGRAM_NOW_APPLIES", "From 14 Mar 2026 the Boost program (bonus program, paid on "
         "top of your base program) applies to your sales: 3% of every sale."),
    ]  # fmt: skip
    # Never the group's name, nor why the vendor changed the membership.
    for index in (0, 1):
        data = await gql(SUMMARY, {"period": MARCH}, as_user=tenant.user(Role.PARTNER_ADMIN, index))
        assert GROUP_NAME not in str(data)
        assert "internal" not in str(data)
    # Vendor staff reading a partner's earnings read the same sentences.
    data = await gql.data(SUMMARY, {"period": MARCH, "partnerId": gid(tenant.partners[1])},
                          as_user=admin)  # fmt: skip
    assert [e["kind"] for e in data["earnings"]["explanations"] if e["kind"] in CHANGE_KINDS] == [
        "PROGRAM_NOW_APPLIES"
    ]


async def test_each_adjustment_is_explained_with_its_note_to_its_partner_only(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(datetime(2026, 2, 1, tzinfo=UTC))
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(CREATE, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": rules()}}, as_user=admin)  # fmt: skip
    clock.freeze(T0)
    finance = tenant.user(Role.FINANCE)
    for amount, note, key in (("50.00", "Goodwill for the delayed March shipment", "a"),
                              ("-20.00", "Duplicate credit on order 1142.", "b")):  # fmt: skip
        result = await gql.data(ADJUST, {"input": {
            "partnerId": gid(tenant.partners[0]), "amount": {"amount": amount, "currency": "USD"},
            "note": note, "idempotencyKey": key,
        }}, as_user=finance)  # fmt: skip
        assert result["earningAdjustmentCreate"]["userErrors"] == []
    data = await gql.data(SUMMARY, {"period": MARCH}, as_user=tenant.user(Role.PARTNER_ADMIN))
    adjustments = [e for e in data["earnings"]["explanations"] if e["kind"] == "ADJUSTMENT"]
    assert [(e["text"], e["amount"]["amount"]) for e in adjustments] == [
        ("Our finance team added 50.00 USD to your earnings on 02 Mar 2026: Goodwill for the "
         "delayed March shipment.", "50.00"),
        ("Our finance team took 20.00 USD back from your earnings on 02 Mar 2026: Duplicate "
         "credit on order 1142.", "-20.00"),
    ]  # fmt: skip
    assert await explained(gql, tenant, index=1) == []
    # Adjustments are the organisation's: its rep's own earnings do not include them.
    assert await explained(gql, tenant, Role.PARTNER_REP, 0) == []


async def test_a_change_of_what_subscriptions_earn_is_explained(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze(T0)
    admin = tenant.user(Role.VENDOR_ADMIN)
    recurring = {"renewalRateBp": 1000, "clawbackDays": 0}
    created = await gql.data(CREATE, {"input": {
        "name": "Renewals", "currency": "USD", "rules": rules(recurring=recurring),
        "effectiveFrom": "2026-01-01T00:00:00+00:00",
    }}, as_user=admin)  # fmt: skip
    program_id = created["earningProgramCreate"]["program"]["id"]
    for effective, changed in [
        ("2026-03-05", {"renewalRateBp": 200, "clawbackDays": 90}),
        ("2026-03-06", None),
    ]:
        result = await gql.data(VERSION, {"input": {
            "programId": program_id, "rules": rules(recurring=changed),
            "effectiveFrom": f"{effective}T00:00:00+00:00",
        }}, as_user=admin)  # fmt: skip
        assert result["earningProgramVersionCreate"]["userErrors"] == []
    clock.freeze(T0 + timedelta(days=5))
    assert (await explained(gql, tenant))[-2:] == [
        ("PROGRAM_CHANGED",
         "The Renewals program changed on 05 Mar 2026 (version 2): each renewal of a "
         "subscription now earns 2%, it was 10%; what a subscription's renewal and expansions "
         "earned is now taken back if it is cancelled within 90 days of the term's start, it "
         "was never taken back."),
        ("PROGRAM_CHANGED",
         "The Renewals program changed on 06 Mar 2026 (version 3): subscriptions no longer "
         "earn recurring commissions."),
    ]  # fmt: skip


def _changed(value: Any, declared: str) -> Any:
    """Another value of a rules field's declared type (enough to make it differ)."""
    if value is None:
        return "other" if "str" in declared else 5
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, tuple):
        return (*value, 300)
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, datetime):
        return value + timedelta(days=1)
    raise AssertionError(f"no other value for {value!r}")


def test_every_field_of_a_programs_rules_has_its_own_sentence() -> None:
    """A field added to the rules must be explained when it changes: each field of each part
    of the rules, changed alone, gives a sentence of its own (not the catch-all)."""
    base_rate = programs.BaseRate(rate_bp=800)
    tier = programs.Tier(name="Gold", threshold_minor=1_000_000, uplift_bp=200)
    spiff = programs.Spiff(
        sku="AP-1", per_unit_minor=2_500, starts_at=T0, ends_at=T0 + timedelta(days=7)
    )
    recurring = programs.Recurring(
        renewal_rate_bp=1000, retention_months=12, retention_bonus_minor=5_000
    )
    base = programs.Rules(
        base_rates=(base_rate,), tiers=(tier,), spiffs=(spiff,), recurring=recurring
    )
    parts: list[tuple[Any, Callable[[Any], programs.Rules]]] = [
        (base, lambda changed: changed),
        (base_rate, lambda changed: dataclasses.replace(base, base_rates=(changed,))),
        (tier, lambda changed: dataclasses.replace(base, tiers=(changed,))),
        (spiff, lambda changed: dataclasses.replace(base, spiffs=(changed,))),
        (recurring, lambda changed: dataclasses.replace(base, recurring=changed)),
    ]
    for part, into in parts:
        for field in dataclasses.fields(part):
            if dataclasses.is_dataclass(getattr(part, field.name)) or field.name in {
                "base_rates", "tiers", "spiffs", "recurring"
            }:  # fmt: skip
                continue  # the parts themselves, each covered field by field
            changed = dataclasses.replace(
                part, **{field.name: _changed(getattr(part, field.name), str(field.type))}
            )
            clauses = describe_changes(base, into(changed), "USD")
            assert clauses, f"{type(part).__name__}.{field.name} changed unexplained"
            assert clauses != ["some of its terms changed"], (
                f"{type(part).__name__}.{field.name} has no sentence of its own"
            )
