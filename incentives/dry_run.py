"""The dry run of a rule version: which partners would fire on a day's signals, with which
actions and what estimated incentive cost over their windows. It writes nothing (it runs
in a query's read-only session) and ignores firings already made: it answers "what would
this version do on that day"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import overlays
from incentives import actions as act
from incentives.evaluation import Compiled, eligible, read_values
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
class WouldFire:
    partner_id: uuid.UUID
    partner_name: str
    values: dict[str, Any]
    actions: list[tuple[str, int]]  # (kind, estimated cost)


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
    rule = await _rule(session, principal, version.rule_id)
    compiled = Compiled.of(rule, version)
    values = await values_at(session, rule.vendor_id, day, None)
    partners = await eligible(session, compiled, values, clock)
    paid = 0
    if rule.budget_cap_minor is not None:
        paid = await overlays.paid_by_sources(
            session, source=act.SOURCE, source_ids=[rule.id], currency=rule.currency
        )
    budget = act.Budget(act.budget_left(rule.budget_cap_minor, rule.budget_committed_minor, paid))
    names = dict(
        (await session.exec(
            select(Partner.id, Partner.name).where(col(Partner.id).in_(partners[:MAX_LISTED]))
        )).all()
    )  # fmt: skip
    out = DryRun(rule, version.number, day, len(values), len(partners), 0, rule.currency)
    rates: dict[uuid.UUID, Any] = {}
    rows: dict[uuid.UUID, Any] = {}
    for partner_id in partners:
        ctx = act.Context(
            session=session, clock=clock, vendor_id=rule.vendor_id, rule_id=rule.id,
            rule_name=rule.name, firing_id=new_id(), partner_id=partner_id,
            values=values[partner_id], budget=budget, group_rates=rates,
            rows=rows,
        )  # fmt: skip
        costs = []
        for action in compiled.actions:
            rate = action.kind in act.RATE_ACTIONS
            cost = 0 if rate and budget.reached else await act.estimate(ctx, action)
            if rate:
                budget.spend(cost)  # as a run spends it
            costs.append((action.kind.value, cost))
        out.estimated_cost_minor += sum(c for _, c in costs)
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
