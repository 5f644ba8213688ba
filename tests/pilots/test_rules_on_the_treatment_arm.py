"""A rule (incentives domain) targeting a pilot's treatment group acts on the treatment only:
its recommendation reaches the treatment partners' next actions and no control partner's,
and so do its notifications, which never name the pilot or its treatment group."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select

from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.models import IncentiveRuleVersion, RuleFiring
from infra.clock import OffsetClock
from partners import service as partners_service
from partners.group_models import PartnerGroup
from partners.roles import Role
from pilots.models import Pilot
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import dispatch, gid, principal_of
from tests.next_actions.scenarios import QUERY
from tests.notifications.scenarios import INBOX
from tests.pilots import scenarios as ps
from tests.pilots.test_pilots_api import PROGRAM, create, pilot_uuid
from tests.support import GQL

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


async def test_a_rule_on_the_treatment_group_recommends_to_the_treatment_only(
    gql: GQL, clock: OffsetClock, services: Services
) -> None:
    db = services.db
    clock.freeze(T0 - timedelta(days=3))
    tenant = await ps.pilot_tenant(db, clock)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(PROGRAM, {"input": {"name": "Partner Rewards", "currency": "USD",
                   "rules": {"baseRates": [{"rateBp": 800}]}}}, as_user=admin)  # fmt: skip
    for index in range(len(tenant.partners)):
        await es.sale(db, clock, tenant, 500_00, partner_index=index, rep=False)
    while await dispatch(services):
        pass
    clock.freeze(T0)
    group = gid("PartnerGroup", await ps.group_id(db, tenant, "Resellers"))
    made = await create(gql, tenant, ps.create_input(group, T0 + timedelta(days=30), seed="9"))
    pilot = made["pilot"]
    assert isinstance(pilot, dict)
    await gql.data(ps.START, {"input": {"id": pilot["id"]}}, as_user=admin)
    async with db.session() as session:
        stored = await session.get(Pilot, pilot_uuid(pilot["id"]))
        assert stored is not None
        target = stored.treatment_group_id

    async def make(session: Any) -> None:
        approver = await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, role=Role.VENDOR_ADMIN,
            email=f"second-{uuid.uuid4().hex[:6]}@x.example", display_name="Second",
        )  # fmt: skip
        rule = await rules.create_rule(
            session, tenant.principal(Role.VENDOR_ADMIN), clock, name="Nudge",
            condition="revenue_30d >= 0", target_group_id=target,
            actions=[Action(ActionKind.RECOMMEND, days=14, title="Bundle a care pack",
                            text="Add NW-CARE-3Y to your next quote.", code="CARE10")],
        )  # fmt: skip
        [version] = await session.exec(
            select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
        )
        await rules.approve(session, principal_of(approver), clock, version_id=version,
                            reason="pilot")  # fmt: skip

    await es.tx(db, make)
    # Today's run: this call's, or the app's own daily job's if it came first (it runs every
    # minute in tests, with this clock: the same firings, and this call finds the day done).
    await run_due(db, clock)
    arms = await ps.arms(db, pilot_uuid(pilot["id"]))
    async with db.session() as session:
        fired = {f.partner_id for f in await session.exec(select(RuleFiring))}
    assert fired == {p for p, arm in arms.items() if arm == "TREATMENT"}
    assert len(fired) == 4  # the four treatment partners
    for index, partner in enumerate(tenant.partners):
        data = await gql.data(QUERY, as_user=tenant.user(Role.PARTNER_ADMIN, index))
        recommended = [
            (a["title"], a["why"], a["code"]) for a in data["nextActions"]["actions"]
            if a["kind"] == "RECOMMENDATION"
        ]  # fmt: skip
        if arms[partner.id] == "TREATMENT":
            assert recommended == [
                ("Bundle a care pack", "Add NW-CARE-3Y to your next quote.", "CARE10")
            ]
            assert data["nextActions"]["actions"][0]["kind"] == "RECOMMENDATION"
        else:
            assert recommended == []

    # Notified: the treatment partners' admins (the firing, explained, and the new action),
    # in words that name neither the pilot nor its treatment group; control partners: nothing.
    while await dispatch(services):
        pass
    async with db.session() as session:
        treatment = await session.get(PartnerGroup, target)
        assert treatment is not None
    for index, partner in enumerate(tenant.partners):
        inbox = await gql.data(INBOX, {}, as_user=tenant.user(Role.PARTNER_ADMIN, index))
        notes = [e["node"] for e in inbox["notifications"]["edges"]
                 if e["node"]["category"] in ("INCENTIVE", "NEXT_ACTION")]  # fmt: skip
        if arms[partner.id] == "TREATMENT":
            assert sorted(n["kind"] for n in notes) == [
                "next_action_recommendation", "rule_applied"
            ]  # fmt: skip
            text = json.dumps(notes)
            assert treatment.name not in text
            assert "pilot" not in text.lower()
            assert "control" not in text.lower()
        else:
            assert notes == []
