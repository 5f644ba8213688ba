"""Rate overlays never stack: a rule that fires again (each week, an overlay of 30 days)
extends its live overlay instead of adding one, the overlays on one partner's program total
at most MAX_OVERLAY_BP at every instant of a new overlay's window (not only when it is
placed), and approving a new version ends what the replaced one placed."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from sqlmodel import col, select

from earnings import overlays
from earnings.models import RateOverlay
from earnings.rounding import apply_bp
from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRuleVersion, Period, VersionStatus
from infra.clock import OffsetClock
from infra.db import Database
from infra.ids import new_id
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


async def test_the_cap_holds_over_the_whole_window_not_only_when_placed(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """-5 points for 5 days, then +10 and +5 for 30: at each placement the total now is
    -5, +5, +10, within the cap, but once the -5 ends the +10 and +5 would run at +15. The
    +5 is refused (the dry run says why), and a sale on day 6 pays at most 10 points."""
    s = await shop(db, clock, tenant, services)
    placed = []
    for name, delta, days in (("Minus", -500, 5), ("Plus A", 1000, 30), ("Plus B", 500, 30)):
        placed.append(await active_rule(db, clock, s, name=name, condition=BIG_SELLER, actions=[
            Action(ActionKind.RATE_OVERLAY, days=days, program_id=s.base_program_id,
                   delta_bp=delta)
        ]))  # fmt: skip
        clock.advance(timedelta(seconds=1))
    await settle(services)
    await daily(db, clock)
    firings = nodes(await gql.data(FIRINGS, as_user=s.author), "ruleFirings")
    assert sorted(str(f["outcomes"][0]["skipped"]) for f in firings) == [
        "CAP_REACHED", "None", "None"
    ]  # fmt: skip
    variables = {"v": gid("IncentiveRuleVersion", placed[2].active_version_id)}
    run = (await gql.data(DRY_RUN, variables, as_user=s.author))["incentiveRuleDryRun"]
    [action] = run["partners"][0]["actions"]
    assert (action["skipped"], action["runningDeltaBp"]) == ("CAP_REACHED", 500)
    assert "now and +10 points at times before" in action["note"]
    # Six days later the -5 has ended: only the +10 runs.
    at = T0 + timedelta(days=6)
    assert [d for d, _ in await live_overlays(db, at)] == [1000]
    clock.freeze(at)
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    assert [(a, p) for a, p, _ in await overlay_entries(gql, tenant)] == [(100_00, 10_00)]


async def test_crediting_holds_the_cap_when_a_negative_overlay_is_ended_early(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """-5, +10 and +5 for 30 days each stay within the cap, until the -5 is ended early (a
    rollback ends what a rule placed): crediting then pays the +10 and trims the later +5
    to nothing, and its entry says why."""
    s = await shop(db, clock, tenant, services)
    # The app's dispatcher held meanwhile: it would place -5 and +10 at the instants of
    # their approvals, a second apart, and the +5 then finds a second at the end of its
    # window where -5 has ended and +10 has not (15 %: refused; CI, 2026-12-07).
    async with services.outbox.paused():
        for name, delta in (("Minus", -500), ("Plus A", 1000), ("Plus B", 500)):
            await active_rule(db, clock, s, name=name, condition=BIG_SELLER, actions=[
                Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                       delta_bp=delta)
            ])  # fmt: skip
            clock.advance(timedelta(seconds=1))
    # The approvals' own evaluations first, in order (the dispatcher's), at one instant: one
    # of them running beside the daily run could place +10 and +5 before -5, which passes
    # the cap.
    await settle(services)
    await daily(db, clock)
    assert [d for d, _ in await live_overlays(db, clock.now())] == [-500, 500, 1000]

    async def end_minus(session: Any) -> None:
        rows = await session.exec(select(RateOverlay).where(RateOverlay.delta_bp == -500))
        await overlays.end_overlays(session, clock, overlay_ids=[o.id for o in rows])

    await es.tx(db, end_minus)
    clock.advance(timedelta(hours=1))
    await es.sale(db, clock, tenant, 100_00, partner_index=0)
    await settle(services)
    entries = await overlay_entries(gql, tenant)
    assert sorted(p for _, p, _ in entries) == [0, 10_00]
    [trimmed] = [w for _, p, w in entries if p == 0]
    assert trimmed.startswith("Partner Rewards: Incentive overlay +5% of 100.00 USD until")
    assert trimmed.endswith(
        ", 0% paid: incentive overlays on a program pay at most 10% in all either way"
    )


def test_crediting_trims_the_latest_overlays_on_the_side_past_the_cap() -> None:
    def at(*deltas: int) -> list[RateOverlay]:
        return [RateOverlay(delta_bp=d) for d in deltas]

    assert overlays.paid_deltas(at(1000, 500)) == [1000, 0]
    assert overlays.paid_deltas(at(800, -200, 600)) == [800, -200, 400]
    assert overlays.paid_deltas(at(-600, 300, -900)) == [-600, 300, -700]
    assert overlays.paid_deltas(at(400, 300)) == [400, 300]


def test_an_extension_is_refused_when_its_added_days_would_pass_the_cap() -> None:
    """A rule's own overlay extended past the end of a negative one beside it would run
    past the cap over the added days: refused (it keeps its end), not extended."""
    rule, other = new_id(), new_id()
    live = [
        RateOverlay(vendor_id=rule, program_id=rule, partner_id=rule, delta_bp=bp,
                    starts_at=T0, ends_at=T0 + timedelta(days=days), source="incentive_rule",
                    source_id=source, label="", created_at=T0)
        for bp, days, source in ((-500, 5, other), (1000, 30, other), (500, 3, rule))
    ]  # fmt: skip
    plan = partial(overlays.plan_overlay, live, T0 + timedelta(days=1), delta_bp=500,
                   source="incentive_rule", source_id=rule)  # fmt: skip
    assert plan(ends_at=T0 + timedelta(days=5))[0] is overlays.Placed.EXTENDED
    assert plan(ends_at=T0 + timedelta(days=6))[0] is overlays.Placed.CAP_REACHED


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
    assert "costed for the 1 added day." in action["note"]
    assert 0 < total == action["estimatedCost"]["amountMinor"]
    assert total == apply_bp(2_240_00 * 1 // 30, 600)  # a day of the 30-day pace, +6 %
