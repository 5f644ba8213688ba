"""The signals forecasts feed (issue 14, items 3 and 5): ``forecast_accuracy`` (the last
closed quarter's, partner-visible) kept from ``ForecastAccuracyRecorded`` and read by a
rule's condition; ``concentration_alert_open`` (vendor-only) kept from
``ConcentrationAlerted``; both recomputed the same by the rebuild."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from forecasts import accuracy
from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRuleVersion
from infra.clock import OffsetClock
from infra.db import Database
from partners import service as partners_service
from partners.roles import Role
from schema.context import Services
from signals import maintenance
from signals.definitions import PARTNER_VISIBLE
from signals.models import SignalSnapshot
from tests.earnings.scenarios import tx
from tests.factories import Tenant, add_products, approve_sale, gid, principal_of
from tests.forecasts.scenarios import SUBMIT, line, next_quarter
from tests.forecasts.test_guardrails_and_rollup import SET
from tests.incentives.rules import daily
from tests.signals.scenarios import settle
from tests.signals.test_api import SIGNALS, by_name
from tests.support import GQL

FIRINGS = "{ ruleFirings { edges { node { partnerId values { name value } } } } }"


async def day_of(gql: GQL, user: Any, partner: Any, clock: OffsetClock) -> dict[str, Any]:
    today = clock.now().date().isoformat()
    data = await gql.data(
        SIGNALS, {"partnerId": gid(partner), "from": today, "to": today}, as_user=user
    )
    [day] = data["signals"]
    return by_name(day)


async def snapshot_values(db: Database) -> dict[Any, Any]:
    async with db.session() as session:
        rows = await session.exec(select(SignalSnapshot))
        return {(r.partner_id, r.day): r.values for r in rows}


async def test_forecast_accuracy_is_a_signal_a_rule_reads(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    q = next_quarter(clock)
    for partner, commit in ((0, "1000.00"), (1, "500.00")):
        result = await gql.data(
            SUBMIT, {"input": {"quarter": q.key, "lines": [line("Other", commit, commit)]}},
            as_user=tenant.user(Role.PARTNER_ADMIN, partner),
        )  # fmt: skip
        assert result["forecastSubmit"]["userErrors"] == []
    clock.advance(q.starts_at - clock.now() + timedelta(days=10))
    await approve_sale(db, clock, tenant, amount=900_00)
    await settle(services)
    admin0 = tenant.user(Role.PARTNER_ADMIN, 0)
    before = await day_of(gql, admin0, tenant.partners[0], clock)
    assert before["forecast_accuracy"]["number"] is None  # no quarter closed yet

    clock.advance(q.ends_at - clock.now() + timedelta(hours=2))
    await accuracy.close_all_due(db, clock)
    await settle(services)  # ForecastAccuracyRecorded: the snapshots of both partners
    # 900.00 sold against a 1,000.00 commit: 0.9; nothing against 500.00: 0.
    today = clock.now().date().isoformat()
    for i, expected in ((0, 0.9), (1, 0.0)):
        values = await day_of(gql, tenant.user(Role.PARTNER_ADMIN, i), tenant.partners[i], clock)
        assert values["forecast_accuracy"]["number"] == expected
        assert values["forecast_accuracy"]["unit"] == "RATIO"
        assert "concentration_alert_open" not in values  # vendor-only
        # Forecasts are the organisation's: not among a rep's own figures.
        rep_days = await gql.data(
            SIGNALS, {"from": today, "to": today}, as_user=tenant.user(Role.PARTNER_REP, i)
        )
        assert all("forecast_accuracy" not in by_name(d) for d in rep_days["signals"])
        # (that holds for no days too:) nor is it among the signals a rep may read at all.
        defined = await gql.data(
            "{ signalDefinitions { name } }", as_user=tenant.user(Role.PARTNER_REP, i)
        )
        names = {d["name"] for d in defined["signalDefinitions"]}
        assert names
        assert "forecast_accuracy" not in names
    assert "forecast_accuracy" in PARTNER_VISIBLE
    staff = await day_of(gql, tenant.user(Role.VENDOR_ADMIN), tenant.partners[0], clock)
    assert staff["forecast_accuracy"]["number"] == 0.9

    # A rule reading it: partner 0 (0.9) fires, partner 1 (0.0) does not.
    author = tenant.user(Role.VENDOR_ADMIN)

    async def make(session: Any) -> None:
        approver = await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, email="second@x.example",
            role=Role.VENDOR_ADMIN, display_name="Second",
        )  # fmt: skip
        rule = await rules.create_rule(
            session, principal_of(author), clock, name="Forecasters",
            condition="forecast_accuracy != null && forecast_accuracy >= 0.85",
            actions=[Action(ActionKind.RECOMMEND, title="Forecast again", text="Well done.")],
        )  # fmt: skip
        version = await session.scalar(
            select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
        )
        await rules.approve(session, principal_of(approver), clock, version_id=version,
                            reason="ok")  # fmt: skip

    await tx(db, make)
    assert await daily(db, clock) == 1
    [firing] = [e["node"] for e in (await gql.data(FIRINGS, as_user=author))["ruleFirings"]
                ["edges"]]  # fmt: skip
    assert firing["partnerId"] == gid(tenant.partners[0])
    assert {"name": "forecast_accuracy", "value": "0.9"} in firing["values"]

    # The rebuild computes the same values from the source tables.
    kept = await snapshot_values(db)
    async with db.transaction() as session:
        await maintenance.rebuild(session, clock, tenant.vendor.id)
    assert await snapshot_values(db) == kept


async def test_a_concentration_alert_is_a_vendor_only_signal(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    top = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 6_000, "reason": "board policy"}
    made = (await gql.data(SET, {"input": top}, as_user=admin))["concentrationThresholdSet"]
    assert made["userErrors"] == []
    async with services.outbox.paused():  # both sales before the check (the app dispatches too)
        await approve_sale(db, clock, tenant, partner=0, amount=700_00)
        await approve_sale(db, clock, tenant, partner=1, amount=300_00)
    await settle(services)  # the sales, the alert (70 % > 60 %), then the snapshots it names
    for user in (admin, tenant.user(Role.FINANCE), tenant.user(Role.CHANNEL_MANAGER)):
        values = await day_of(gql, user, tenant.partners[0], clock)
        assert values["concentration_alert_open"]["flag"] is True
        assert values["concentration_alert_open"]["unit"] == "BOOL"
    other = await day_of(gql, admin, tenant.partners[1], clock)
    assert other["concentration_alert_open"]["flag"] is False
    mine = await day_of(gql, tenant.user(Role.PARTNER_ADMIN, 0), tenant.partners[0], clock)
    assert "concentration_alert_open" not in mine

    # The next quarter has no alert yet: the daily snapshot turns it off.
    clock.advance(timedelta(days=100))
    async with db.transaction() as session:
        await maintenance.take_due(session, clock, tenant.vendor.id)
    values = await day_of(gql, admin, tenant.partners[0], clock)
    assert values["concentration_alert_open"]["flag"] is False

    kept = await snapshot_values(db)
    async with db.transaction() as session:
        await maintenance.rebuild(session, clock, tenant.vendor.id)
    assert await snapshot_values(db) == kept
