"""Rate overlays never stack: a rule that fires again (each week, an overlay of 30 days)
extends its live overlay instead of adding one, the live overlays on one partner's program
total at most MAX_OVERLAY_BP, and approving a new version ends what the replaced one placed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from earnings.models import RateOverlay
from earnings.rounding import apply_bp
from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRuleVersion, Period, VersionStatus
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, principal_of
from tests.incentives.rules import _versions, active_rule, daily
from tests.incentives.scenarios import T0, settle, shop
from tests.incentives.test_actions import ENTRIES, FIRINGS, nodes
from tests.support import GQL

BIG_SELLER = "revenue_30d >= 100000"  # partner 0 (2,240.00 USD), not partner 1 (500.00)


async def overlay_entries(gql: GQL, tenant: Tenant) -> list[tuple[int, int, str]]:
    partner = tenant.user(Role.PARTNER_ADMIN, 0)
    data = await gql.data(ENTRIES, {"kind": "RATE_OVERLAY"}, as_user=partner)
    return sorted(
        (e["inputs"]["sale_amount_minor"], e["amount"]["amountMinor"], e["rule"])
        for e in nodes(data, "earningEntries")
    )


async def live_overlays(db: Database, at: Any) -> list[tuple[int, Any]]:
    async with db.session() as session:
        rows = await session.exec(
            select(RateOverlay).where(
                col(RateOverlay.ends_at) > at, col(RateOverlay.ended_at).is_(None)
            )
        )
        return sorted((o.delta_bp, o.ends_at) for o in rows)


async def test_a_rule_firing_each_week_extends_its_one_overlay(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition=BIG_SELLER, period=Period.WEEK, actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=150)
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    for week in (1, 2):  # a new ISO week each time: the rule fires again
        clock.freeze(T0 + timedelta(days=7 * week))
        assert await daily(db, clock) == 1 + week
    now = T0 + timedelta(days=14)
    assert await live_overlays(db, now) == [(150, now + timedelta(days=30))]
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert [f["outcomes"][0]["skipped"] for f in firings] == [None, None, None]
    # The extensions cost the added week each: 2,240.00 x 7/30 x 1.5 %, not 30 days again.
    costs = [f["outcomes"][0]["estimatedCost"]["amountMinor"] for f in firings]
    assert costs == [7_84, 7_84, 33_60]
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 200_00, partner_index=0)
    await settle(services)
    # One overlay pays, once: not one per week's firing.
    assert await overlay_entries(gql, tenant) == [
        (200_00, 3_00, "Partner Rewards: Incentive overlay +1.5% of 200.00 USD until "
         "18 January 2027")
    ]  # fmt: skip


async def test_live_overlays_on_one_program_total_at_most_the_cap(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    for name in ("Kicker A", "Kicker B"):
        await active_rule(db, clock, s, name=name, condition=BIG_SELLER, actions=[
            Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=600)
        ])  # fmt: skip
    assert await daily(db, clock) == 2
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert sorted(str(f["outcomes"][0]["skipped"]) for f in firings) == ["CAP_REACHED", "None"]
    assert [d for d, _ in await live_overlays(db, T0)] == [600]
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert [(a, p) for a, p, _ in await overlay_entries(gql, tenant)] == [(100_00, 6_00)]


async def test_approving_a_new_version_ends_what_the_replaced_one_placed(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await active_rule(db, clock, s, condition=BIG_SELLER, actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=150)
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    clock.advance(timedelta(hours=1))

    async def second(session: Any) -> None:
        version = await rules.draft_version(
            session, principal_of(s.author), clock, rule_id=rule.id, condition=BIG_SELLER,
            actions=[Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                            delta_bp=200)],
        )  # fmt: skip
        await rules.approve(
            session, principal_of(s.approver), clock, version_id=version.id, reason="bigger"
        )

    await es.tx(db, second)
    assert await live_overlays(db, clock.now()) == []  # v1's overlay ended on approval
    clock.freeze(T0 + timedelta(days=1))
    assert await daily(db, clock) == 2  # v2 fires anew
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert [(a, p) for a, p, _ in await overlay_entries(gql, tenant)] == [(100_00, 2_00)]
    async with db.session() as session:
        statuses = list(
            await session.exec(
                select(IncentiveRuleVersion.status).where(IncentiveRuleVersion.rule_id == rule.id)
            )
        )
    assert sorted(statuses) == [VersionStatus.APPROVED, VersionStatus.APPROVED]


DRY_RUN = """query($v: ID!, $day: Date) { incentiveRuleDryRun(versionId: $v, day: $day) {
  firing estimatedCost { amountMinor }
  partners { partnerName actions { kind estimatedCost { amountMinor } skipped runningDeltaBp
                                   note } } } }"""


async def test_the_dry_run_counts_the_overlays_already_running_and_says_so(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    running = await active_rule(db, clock, s, name="Running", condition=BIG_SELLER, actions=[
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=600)
    ])  # fmt: skip
    assert await daily(db, clock) == 1  # partner 0: +6 points until T0 + 30 days

    async def draft(name: str, delta_bp: int) -> str:
        async def make(session: Any) -> str:
            rule = await rules.create_rule(
                session, principal_of(s.author), clock, name=name, condition=BIG_SELLER,
                actions=[Action(ActionKind.RATE_OVERLAY, days=30,
                                program_id=s.base_program_id, delta_bp=delta_bp)],
                period=Period.WEEK,
            )  # fmt: skip
            [version] = await _versions(session, rule)
            return gid("IncentiveRuleVersion", version)

        return await es.tx(db, make)

    async def dry(version: str) -> tuple[int, dict[str, Any]]:
        variables = {"v": version, "day": T0.date().isoformat()}  # T0's signals
        run = (await gql.data(DRY_RUN, variables, as_user=s.author))["incentiveRuleDryRun"]
        [partner] = run["partners"]
        [action] = partner["actions"]
        return run["estimatedCost"]["amountMinor"], action

    # Another +6 points would pass the 10-point cap with the running +6: not placed.
    total, action = await dry(await draft("Too much", 600))
    assert (total, action["skipped"], action["runningDeltaBp"]) == (0, "CAP_REACHED", 600)
    assert action["estimatedCost"]["amountMinor"] == 0
    assert "already run +6 points on Partner Rewards" in action["note"]
    assert "pass the cap of 10 points" in action["note"]
    # +2 points stack with it: placed and costed, and the note says it stacks.
    total, action = await dry(await draft("A little more", 200))
    assert (action["skipped"], action["runningDeltaBp"]) == (None, 600)
    assert total == action["estimatedCost"]["amountMinor"] > 0
    assert "Stacks with +6 points" in action["note"]
    assert "+8 points in all" in action["note"]
    # The running rule's own version: its overlay already runs as long (nothing new), and a
    # day later it would be extended by a day, costed for that day only.
    own = gid("IncentiveRuleVersion", running.active_version_id)
    total, action = await dry(own)
    assert (total, action["skipped"], action["runningDeltaBp"]) == (0, "ALREADY_LIVE", 0)
    assert "already runs on Partner Rewards until" in action["note"]
    clock.advance(timedelta(days=1))
    total, action = await dry(own)
    assert action["skipped"] is None
    assert "it would be extended to" in action["note"]
    assert "costed for the 1 added days" in action["note"]
    assert 0 < total == action["estimatedCost"]["amountMinor"]
    assert total == apply_bp(2_240_00 * 1 // 30, 600)  # a day of the 30-day pace, +6 %
