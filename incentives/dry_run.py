"""The dry run of a rule version: which partners would fire on a day's signals, with which
actions and what estimated incentive cost over their windows. It writes nothing (it runs
in a query's read-only session) and ignores firings already made: it answers "what would
this version do on that day" — but against what runs now: the overlays already live on
each partner's programs (this rule's own, which a firing extends or leaves, and other
rules', which count towards the cap per program) and the rule's budget left, each said in
the action's ``note``. A target group's members are those of that day."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import overlays
from earnings.models import RateOverlay
from earnings.rounding import apply_bp
from incentives import actions as act
from incentives.evaluation import Compiled, eligible, read_values
from incentives.explanations import count, day, points
from incentives.models import IncentiveRule
from incentives.policy import RULES, RuleOp
from incentives.rules import _rule, _version
from infra.clock import Clock
from infra.ids import new_id
from partners.models import Partner
from partners.roles import Principal
from signals.snapshots import values_at

MAX_LISTED = 500  # partners listed; counts and totals cover all


@dataclass(frozen=True)
class DryAction:
    kind: str
    cost_minor: int
    # Why it would not be applied (BUDGET_REACHED, ALREADY_LIVE, CAP_REACHED, GROUP_ARCHIVED,
    # GROUP_MANAGED), as a firing's outcome would say; None when it would be.
    skipped: str | None = None
    # A rate overlay: the basis points other overlays already run on the partner's program.
    running_bp: int | None = None
    note: str | None = None  # what runs already and what that changes, in words


@dataclass(frozen=True)
class WouldFire:
    partner_id: uuid.UUID
    partner_name: str
    values: dict[str, Any]
    actions: list[DryAction]


@dataclass
class DryRun:
    rule: IncentiveRule
    version_number: int
    day: date
    evaluated: int
    firing: int
    estimated_cost_minor: int
    currency: str
    partners: list[WouldFire] = field(default_factory=list)


async def dry_run(
    session: AsyncSession, principal: Principal, clock: Clock, *, version_id: uuid.UUID, day: date
) -> DryRun:
    RULES.require(principal, RuleOp.DRY_RUN)
    version = await _version(session, principal, version_id, "version_id")
    rule = await _rule(session, principal, version.rule_id, to_change=False)
    compiled = Compiled.of(rule, version)
    values = await values_at(session, rule.vendor_id, day, None)
    # The target group as it was that day (its end, or now for today): the signals are
    # that day's.
    day_ends = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    partners = await eligible(
        session, compiled, values, clock, members_at=min(day_ends, clock.now())
    )
    paid = 0
    if rule.budget_cap_minor is not None:
        paid = await overlays.paid_by_sources(
            session, source=act.SOURCE, source_ids=[rule.id], currency=rule.currency
        )
    budget = act.Budget(
        act.budget_left(rule.budget_cap_minor, rule.budget_committed_minor, paid), rule.currency
    )
    names = dict(
        (await session.exec(
            select(Partner.id, Partner.name).where(col(Partner.id).in_(partners[:MAX_LISTED]))
        )).all()
    )  # fmt: skip
    out = DryRun(rule, version.number, day, len(values), len(partners), 0, rule.currency)
    rates: dict[uuid.UUID, Any] = {}
    rows: dict[uuid.UUID, Any] = {}
    now = clock.now()
    overlay_programs = {
        a.program_id for a in compiled.actions if a.kind in act.RATE_ACTIONS and a.program_id
    }
    live = await overlays.live_overlays(session, rule.vendor_id, partners, overlay_programs, now)
    for partner_id in partners:
        ctx = act.Context(
            session=session, clock=clock, vendor_id=rule.vendor_id, rule_id=rule.id,
            rule_name=rule.name, firing_id=new_id(), partner_id=partner_id,
            values=values[partner_id], budget=budget, group_rates=rates,
            rows=rows,
        )  # fmt: skip
        costs = []
        for action in compiled.actions:
            if action.kind in act.RATE_ACTIONS:
                costs.append(await _rate(ctx, action, live, now))
            elif closed := await act.closed_group(ctx, action):
                costs.append(DryAction(action.kind.value, 0, skipped=closed))
            else:
                costs.append(_spending(ctx, action, await act.estimate(ctx, action)))
        out.estimated_cost_minor += sum(c.cost_minor for c in costs)
        if len(out.partners) < MAX_LISTED:
            out.partners.append(
                WouldFire(
                    partner_id,
                    names.get(partner_id, ""),
                    read_values(compiled, values[partner_id]),
                    costs,
                )
            )
    return out


def _spending(ctx: act.Context, action: act.Action, cost_minor: int) -> DryAction:
    """An action that costs (a window into a group its programs pay for) spends the budget
    as ``actions.apply`` would, and is skipped once it is reached."""
    if not ctx.budget.try_spend(cost_minor):
        return DryAction(action.kind.value, 0, skipped="BUDGET_REACHED")
    return DryAction(action.kind.value, cost_minor)


async def _rate(
    ctx: act.Context,
    action: act.Action,
    live: dict[tuple[uuid.UUID, uuid.UUID], list[RateOverlay]],
    now: datetime,
) -> DryAction:
    """A rate overlay as ``actions.apply`` would place it, against the overlays running on
    the partner's program (kept up to date, as a run does, with what this one would add)."""
    assert action.program_id is not None
    kind = action.kind.value
    program = await ctx.program(action.program_id)
    on = live.setdefault((ctx.partner_id, program.id), [])
    until = now + timedelta(days=action.days)
    running = overlays.running(on, now)
    others = sum(
        o.delta_bp for o in running if not (o.source == act.SOURCE and o.source_id == ctx.rule_id)
    )
    if ctx.budget.reached:
        spent = "The rule's budget is spent: the overlay would not be placed."
        return DryAction(kind, 0, "BUDGET_REACHED", others, spent)
    placed, own = overlays.plan_overlay(
        on, now, delta_bp=action.delta_bp, ends_at=until, source=act.SOURCE,
        source_id=ctx.rule_id,
    )  # fmt: skip
    match placed:
        case overlays.Placed.ALREADY_LIVE:
            assert own is not None
            return DryAction(kind, 0, placed.value, others, (
                f"This rule's overlay already runs on {program.name} until {day(own.ends_at)}: "
                "nothing new would be placed."))  # fmt: skip
        case overlays.Placed.CAP_REACHED:
            why = _cap_note(on, own, action.delta_bp, now, until, others, program.name)
            return DryAction(kind, 0, placed.value, others, why)
        case overlays.Placed.EXTENDED:
            assert own is not None
            added = max(0, (until - max(own.ends_at, now)).days)
            cost = apply_bp(act.projected_revenue(ctx.values, added), action.delta_bp)
            ctx.budget.spend(cost)
            extended = (
                f"This rule's overlay already runs on {program.name} until "
                f"{day(own.ends_at)}: it would be extended to {day(until)}, costed for the "
                f"{count(added, 'added day')}."
            )
            return DryAction(kind, cost, None, others, extended)
    cost = await act.estimate(ctx, action)
    ctx.budget.spend(cost)
    on.append(RateOverlay(
        vendor_id=program.vendor_id, program_id=program.id, partner_id=ctx.partner_id,
        delta_bp=action.delta_bp, starts_at=now, ends_at=until, source=act.SOURCE,
        source_id=ctx.rule_id, label=ctx.rule_name, created_at=now,
    ))  # fmt: skip  # (never added to the session: the dry run writes nothing)
    note: str | None = None
    if others:
        note = (
            f"Stacks with {points(others)} other overlays already run on {program.name} for "
            f"this partner: {points(others + action.delta_bp)} in all while both run."
        )
    return DryAction(kind, cost, None, others, note)


def _cap_note(
    on: list[RateOverlay],
    own: RateOverlay | None,
    delta_bp: int,
    now: datetime,
    until: datetime,
    others: int,
    program_name: str,
) -> str:
    """Why the overlay (or the extension of this rule's own) would pass the cap: the other
    overlays' total at the instant of the window where it would (``plan_overlay``'s check),
    which is not always the total now (a negative overlay ending before it would)."""
    start = now if own is None else own.ends_at
    low, high = overlays.totals_over([o for o in on if o is not own], start, until)
    delta = delta_bp if own is None else own.delta_bp
    worst = high if abs(high + delta) > overlays.MAX_OVERLAY_BP else low
    cap = points(overlays.MAX_OVERLAY_BP, signed=False)
    if own is not None:
        return (
            f"This rule's overlay runs {points(delta)} on {program_name} until "
            f"{day(own.ends_at)}; other overlays would run {points(worst)} at times before "
            f"{day(until)}: extending it would pass the cap of {cap} either way, so it "
            "would not be extended."
        )
    if worst == others:
        return (
            f"Other overlays already run {points(others)} on {program_name} for this "
            f"partner; {points(delta)} more would pass the cap of {cap} either way: it "
            "would not be placed."
        )
    return (
        f"Other overlays run {points(others)} on {program_name} for this partner now and "
        f"{points(worst)} at times before {day(until)} (as others end); {points(delta)} "
        f"more would pass the cap of {cap} either way: it would not be placed."
    )
