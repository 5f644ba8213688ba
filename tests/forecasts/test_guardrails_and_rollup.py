"""Concentration guardrails and the forecast roll-up (issue 14, items 3 and 5): vendor
admins set thresholds (audited); a crossed one raises one alert per threshold and quarter
with a ConcentrationAlerted event; vendor staff read alerts and the roll-up by partner,
region and group; partner roles and other vendors are refused or see nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import select

from deal_registration.events import Line
from deal_registration.registrations.models import DealStatus
from forecasts import guardrails
from forecasts.events import CONCENTRATION_ALERTED
from forecasts.models import ConcentrationAlert, ConcentrationThreshold
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import Partner
from partners.roles import Role
from schema.context import Services
from tests.factories import (
    Tenant,
    add_products,
    approve_sale,
    blocked_on_a_lock,
    dispatch,
    gid,
)
from tests.forecasts.scenarios import SUBMIT, add_deal, line, next_quarter
from tests.subscriptions.scenarios import CLOUD
from tests.support import GQL, error_codes

SET = """mutation($input: ConcentrationThresholdSetInput!) {
  concentrationThresholdSet(input: $input) {
    threshold { id metric topN scope scopeValue maxShareBp archivedAt }
    userErrors { field code } } }"""
REMOVE = """mutation($input: ConcentrationThresholdRemoveInput!) {
  concentrationThresholdRemove(input: $input) { threshold { archivedAt }
  userErrors { field code } } }"""
ALERTS = """{ concentrationAlerts { totalCount edges { node { thresholdId quarter shareBp
  maxShareBp topRevenue { amountMinor } totalRevenue { amountMinor } topPartnerIds } } } }"""
ROLLUP = """query($q: String!, $by: ForecastRollupBy!) { forecastRollup(quarter: $q, by: $by) {
  quarter by total { partners forecasts commit { amountMinor } bestCase { amountMinor }
  openDeals pipeline { amountMinor } weightedPipeline { amountMinor } }
  rows { key label partners forecasts commit { amountMinor } pipeline { amountMinor }
         weightedPipeline { amountMinor } } } }"""


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.session() as session:
        found = await session.scalar(select(func.count()).select_from(table).where(*where))
        return int(found or 0)


async def settle(services: Services) -> None:
    """Credit the sales, then run what crediting recorded (EarningsChanged: the check)."""
    while await dispatch(services):
        pass


async def test_a_crossed_threshold_alerts_once_per_quarter(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database, services: Services
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    top = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 6_000, "reason": "board policy"}
    made = (await gql.data(SET, {"input": top}, as_user=admin))["concentrationThresholdSet"]
    assert made["userErrors"] == []
    threshold = made["threshold"]
    assert (threshold["topN"], threshold["scope"], threshold["scopeValue"]) == (1, "OVERALL", "")
    audited = AuditEntry.entity_type == "concentration_threshold"
    assert await count(db, AuditEntry, audited) == 1
    region = {"metric": "TOP_N_SHARE", "topN": 2, "maxShareBp": 9_000, "scope": "REGION",
              "scopeValue": "EMEA"}  # fmt: skip
    assert (await gql.data(SET, {"input": region}, as_user=admin))[
        "concentrationThresholdSet"]["userErrors"] == []  # fmt: skip
    await settle(services)
    assert await count(db, ConcentrationAlert) == 0  # no revenue yet: no share

    async with services.outbox.paused():  # both sales before the check (the app dispatches too)
        await approve_sale(db, services.clock, tenant, partner=0, amount=700_00)
        await approve_sale(db, services.clock, tenant, partner=1, amount=300_00)
    await settle(services)
    data = await gql.data(ALERTS, as_user=tenant.user(Role.FINANCE))
    alerts = sorted((e["node"] for e in data["concentrationAlerts"]["edges"]),
                    key=lambda a: a["maxShareBp"])  # fmt: skip
    assert [(a["shareBp"], a["maxShareBp"], a["topRevenue"]["amountMinor"],
             a["totalRevenue"]["amountMinor"]) for a in alerts] == [
        (7_000, 6_000, 70_000, 100_000),  # the top partner holds 70 %
        (10_000, 9_000, 100_000, 100_000),  # EMEA's top two hold all of it
    ]  # fmt: skip
    assert alerts[0]["thresholdId"] == threshold["id"]
    assert alerts[0]["topPartnerIds"] == [gid(tenant.partners[0])]
    # A channel manager sees the alert, and only its assigned partners among the top ones.
    managed = await gql.data(ALERTS, as_user=tenant.user(Role.CHANNEL_MANAGER))
    assert sorted(len(e["node"]["topPartnerIds"]) for e in
                  managed["concentrationAlerts"]["edges"]) == [1, 1]  # fmt: skip

    # More sales in the quarter: still one alert per threshold, one event each.
    await approve_sale(db, services.clock, tenant, partner=0, amount=900_00)
    await settle(services)
    assert await count(db, ConcentrationAlert) == 2
    assert await count(db, OutboxEvent, OutboxEvent.type == CONCENTRATION_ALERTED) == 2

    # Partner roles and other vendors see no alerts.
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(ALERTS, as_user=tenant.user(role))) == ["FORBIDDEN"]
    other = await gql.data(ALERTS, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert other["concentrationAlerts"]["totalCount"] == 0
    assert error_codes(await gql(ALERTS)) == ["UNAUTHENTICATED"]


async def test_thresholds_are_vendor_admin_business_and_bad_input_is_coded(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    ok = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 5_000}
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(SET, {"input": ok}, as_user=tenant.user(role))) == [
            "FORBIDDEN"
        ]
    assert error_codes(await gql(SET, {"input": ok})) == ["UNAUTHENTICATED"]
    assert await count(db, ConcentrationThreshold) == 0

    bad: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        ({"maxShareBp": 0}, [("maxShareBp", "INVALID_SHARE")]),
        ({"topN": 3}, [("topN", "INVALID_TOP_N")]),
        ({"metric": "TOP_N_SHARE"}, [("topN", "INVALID_TOP_N")]),
        ({"scope": "REGION"}, [("scopeValue", "SCOPE_VALUE_REQUIRED")]),
        ({"scopeValue": "EMEA"}, [("scopeValue", "SCOPE_VALUE_NOT_ALLOWED")]),
        ({"scope": "GROUP", "scopeValue": gid("PartnerGroup", tenant.vendor.id)},
         [("scopeValue", "UNKNOWN_GROUP")]),
        ({"currency": "usdx"}, [("currency", "INVALID_CURRENCY")]),
    ]  # fmt: skip
    for change, errors in bad:
        result = await gql.data(SET, {"input": {**ok, **change}}, as_user=admin)
        payload = result["concentrationThresholdSet"]
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == errors, change
    assert await count(db, ConcentrationThreshold) == 0
    assert await count(db, AuditEntry) == 0

    # A group threshold names the group by its id.
    group = await gql.data(
        'mutation { partnerGroupCreate(input: {name: "Top"}) { partnerGroup { id } } }',
        as_user=admin,
    )
    group_id = group["partnerGroupCreate"]["partnerGroup"]["id"]
    scoped = {**ok, "scope": "GROUP", "scopeValue": group_id}
    made = (await gql.data(SET, {"input": scoped}, as_user=admin))["concentrationThresholdSet"]
    assert made["threshold"]["scopeValue"] == group_id
    # Setting it again changes its limit (one row).
    again = {**scoped, "maxShareBp": 4_000}
    changed = (await gql.data(SET, {"input": again}, as_user=admin))["concentrationThresholdSet"]
    assert changed["threshold"]["id"] == made["threshold"]["id"]
    assert changed["threshold"]["maxShareBp"] == 4_000
    assert await count(db, ConcentrationThreshold) == 1

    # Another vendor cannot remove it (answered as missing); its admin can.
    remove = {"input": {"id": made["threshold"]["id"]}}
    theirs = await gql.data(REMOVE, remove, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert theirs["concentrationThresholdRemove"]["userErrors"] == [
        {"field": "id", "code": "NOT_FOUND"}
    ]
    removed = await gql.data(REMOVE, remove, as_user=admin)
    assert removed["concentrationThresholdRemove"]["threshold"]["archivedAt"] is not None
    listed = await gql.data("{ concentrationThresholds { totalCount } }", as_user=admin)
    assert listed["concentrationThresholds"]["totalCount"] == 0
    assert await count(db, AuditEntry, AuditEntry.entity_type == "concentration_threshold") == 3


async def test_the_rollup_by_partner_region_and_group(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database
) -> None:
    q = next_quarter(clock)
    inside = q.starts_at.date() + timedelta(days=5)
    for partner, commit, best in ((0, "1000.00", "1500.00"), (1, "500.00", "800.00")):
        result = await gql.data(
            SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", commit, best)]}},
            as_user=tenant.user(Role.PARTNER_ADMIN, partner),
        )  # fmt: skip
        assert result["forecastSubmit"]["userErrors"] == []
    await add_deal(db, clock, tenant, partner=0, value=1_000_00, closes=inside)
    await add_deal(db, clock, tenant, partner=1, value=2_000_00, closes=inside,
                   status=DealStatus.SUBMITTED)  # fmt: skip
    await add_deal(db, clock, tenant, partner=1, value=9_000_00, closes=q.ends_at.date())
    async with db.transaction() as session:
        await session.exec(
            update(Partner).where(Partner.id == tenant.partners[1].id).values(region="NA")
        )  # type: ignore[call-overload]
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(
        """mutation { partnerGroupCreate(input: {name: "Europe",
           rule: [{attribute: "region", op: "IN", values: ["EMEA"]}]}) { partnerGroup { id } } }""",
        as_user=admin,
    )

    by_partner = await gql.data(ROLLUP, {"q": q.key, "by": "PARTNER"}, as_user=admin)
    rollup = by_partner["forecastRollup"]
    assert rollup["total"] == {
        "partners": 2, "forecasts": 2, "commit": {"amountMinor": 150_000},
        "bestCase": {"amountMinor": 230_000}, "openDeals": 2,
        "pipeline": {"amountMinor": 300_000},
        # 60 % of 1,000.00 (approved) + 10 % of 2,000.00 (submitted)
        "weightedPipeline": {"amountMinor": 80_000},
    }  # fmt: skip
    assert [r["key"] for r in rollup["rows"]] == [gid(p) for p in tenant.partners]
    by_region = await gql.data(ROLLUP, {"q": q.key, "by": "REGION"}, as_user=admin)
    assert [(r["key"], r["commit"]["amountMinor"], r["weightedPipeline"]["amountMinor"])
            for r in by_region["forecastRollup"]["rows"]] == [
        ("EMEA", 100_000, 60_000), ("NA", 50_000, 20_000),
    ]  # fmt: skip
    by_group = await gql.data(ROLLUP, {"q": q.key, "by": "GROUP"}, as_user=admin)
    assert [(r["label"], r["partners"], r["commit"]["amountMinor"])
            for r in by_group["forecastRollup"]["rows"]] == [("Europe", 1, 100_000)]  # fmt: skip

    managed = await gql.data(ROLLUP, {"q": q.key, "by": "PARTNER"},
                             as_user=tenant.user(Role.CHANNEL_MANAGER))  # fmt: skip
    assert [r["key"] for r in managed["forecastRollup"]["rows"]] == [gid(tenant.partners[0])]
    other = await gql.data(ROLLUP, {"q": q.key, "by": "PARTNER"},
                           as_user=other_tenant.user(Role.VENDOR_ADMIN))  # fmt: skip
    assert other["forecastRollup"]["total"]["forecasts"] == 0
    assert other["forecastRollup"]["total"]["commit"] == {"amountMinor": 0}
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        refused = await gql(ROLLUP, {"q": q.key, "by": "PARTNER"}, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"]
    assert error_codes(await gql(ROLLUP, {"q": q.key, "by": "PARTNER"})) == ["UNAUTHENTICATED"]
    bad = await gql(ROLLUP, {"q": "2027-Q5", "by": "PARTNER"}, as_user=admin)
    assert error_codes(bad) == ["INVALID_QUARTER"]


async def test_recurring_revenue_thresholds_read_live_subscriptions(
    gql: GQL, tenant: Tenant, db: Database, services: Services
) -> None:
    """A share of annual recurring revenue: partner 0's yearly 1,200.00 subscription against
    partner 1's 300.00 is 80 % of the ARR; one alert, checked when subscriptions change."""
    async with db.transaction() as session:
        await add_products(session, services.clock, tenant, (CLOUD,))
    recurring = {"metric": "TOP_PARTNER_SHARE", "basis": "RECURRING_REVENUE",
                 "maxShareBp": 7_500}  # fmt: skip
    made = await gql.data(SET, {"input": recurring}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert made["concentrationThresholdSet"]["userErrors"] == []
    async with services.outbox.paused():  # both sales before the check (the app dispatches too)
        for partner, amount in ((0, 1_200_00), (1, 300_00)):
            await approve_sale(db, services.clock, tenant, partner=partner, amount=amount,
                               lines=[Line(CLOUD.sku, 1, amount)])  # fmt: skip
    await settle(services)
    data = await gql.data(ALERTS, as_user=tenant.user(Role.VENDOR_ADMIN))
    [alert] = [e["node"] for e in data["concentrationAlerts"]["edges"]]
    assert (alert["shareBp"], alert["topRevenue"], alert["totalRevenue"]) == (
        8_000, {"amountMinor": 120_000}, {"amountMinor": 150_000},
    )  # fmt: skip
    assert alert["topPartnerIds"] == [gid(tenant.partners[0])]


async def test_two_dispatchers_checking_one_threshold_at_once_raise_one_alert(
    gql: GQL, tenant: Tenant, db: Database, services: Services
) -> None:
    """Two dispatchers (outbox partitions) may check one vendor's thresholds at once: the
    second's insert waits for the first's and must then find the alert raised, not fail
    its whole run on the unique (threshold, quarter) key and be retried."""
    await approve_sale(db, services.clock, tenant, partner=0, amount=700_00)
    await approve_sale(db, services.clock, tenant, partner=1, amount=300_00)
    await settle(services)
    admin = tenant.user(Role.VENDOR_ADMIN)
    top = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 6_000, "reason": "board policy"}
    async with services.outbox.paused():  # the two checks below are the only ones
        assert (await gql.data(SET, {"input": top}, as_user=admin))[
            "concentrationThresholdSet"]["userErrors"] == []  # fmt: skip
        vendor = tenant.vendor.id
        async with db.transaction() as first:
            assert len(await guardrails.evaluate(first, services.clock, vendor)) == 1

            async def second() -> int:
                async with db.transaction() as session:
                    return len(await guardrails.evaluate(session, services.clock, vendor))

            racing = asyncio.create_task(second())
            await blocked_on_a_lock(first, racing)  # (SQLite: the write lock orders them)
        assert await racing == 0
        assert await count(db, ConcentrationAlert) == 1
        alerted = OutboxEvent.type == CONCENTRATION_ALERTED
        assert await count(db, OutboxEvent, alerted) == 1
