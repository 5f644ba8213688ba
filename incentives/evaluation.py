"""Evaluating active rules and firing them.

A rule's active version is evaluated for the vendor's partners (those of its target group
when it has one) on one day's signal snapshot (``signals.snapshots.values_at``): when the
signals it reads change (``handlers``), when it is activated (``handlers``: an approval, a
rollback, a resume) and once a day (``daily``). A firing is written once per (rule version,
activation, partner, period): the unique constraint makes a second evaluation of the same
period in the same activation — a re-run, or the daily run after the signal handler —
write nothing, while a version made active again by a rollback fires anew. Each
firing's actions and its record are written in one savepoint, so a firing that loses a race
leaves no action behind."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import overlays, reviews
from earnings.models import Program
from incentives import actions as act
from incentives.actions import Action, ActionKind
from incentives.events import RuleFired
from incentives.expressions import Condition, compile_condition
from incentives.models import (
    IncentiveRule,
    IncentiveRuleVersion,
    Period,
    RuleFiring,
    RuleStatus,
)
from infra.audit import record_many
from infra.clock import Clock
from infra.ids import new_id
from infra.outbox import record_events
from partners.audit_log import AuditEntity
from partners.groups import member_ids_at
from signals.definitions import DEFINITIONS
from signals.maintenance import signal_currency
from signals.snapshots import values_at

Values = dict[uuid.UUID, dict[str, Any]]
ValuesAt = Callable[[AsyncSession, uuid.UUID, date, Collection[uuid.UUID] | None], Awaitable[Any]]


def period_key(period: Period, day: date) -> str:
    match period:
        case Period.DAY:
            return day.isoformat()
        case Period.WEEK:
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        case Period.MONTH:
            return f"{day:%Y-%m}"
    raise ValueError(period)  # pragma: no cover


@dataclass
class Compiled:
    rule: IncentiveRule
    version: IncentiveRuleVersion
    condition: Condition
    actions: list[Action]

    @classmethod
    def of(cls, rule: IncentiveRule, version: IncentiveRuleVersion) -> Compiled:
        return cls(
            rule, version, compile_condition(version.condition, DEFINITIONS),
            [Action.from_json(a) for a in version.actions],
        )  # fmt: skip


async def active_rules(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    changed: Collection[str] | None = None,
    rule_ids: Collection[uuid.UUID] | None = None,
) -> list[Compiled]:
    """The vendor's active rules with their active versions; only those reading one of
    ``changed``, and only ``rule_ids``, when given."""
    statement = (
        select(IncentiveRule, IncentiveRuleVersion)
        .join(
            IncentiveRuleVersion,
            col(IncentiveRuleVersion.id) == col(IncentiveRule.active_version_id),
        )
        .where(IncentiveRule.vendor_id == vendor_id, IncentiveRule.status == RuleStatus.ACTIVE)
        .order_by(col(IncentiveRule.created_at), col(IncentiveRule.id))
    )
    if rule_ids is not None:
        statement = statement.where(col(IncentiveRule.id).in_(list(rule_ids)))
    rows = await session.exec(statement)
    wanted = set(changed) if changed is not None else None
    return [
        Compiled.of(rule, version)
        for rule, version in rows
        if wanted is None or wanted & set(version.reads)
    ]


async def eligible(
    session: AsyncSession,
    compiled: Compiled,
    values: Values,
    clock: Clock,
    *,
    members_at: datetime | None = None,
) -> list[uuid.UUID]:
    """The partners (of ``values``) for whom the rule's condition holds, in its target
    group (at ``members_at``, default now) when it has one."""
    candidates: Collection[uuid.UUID] = values.keys()
    if compiled.rule.target_group_id is not None:
        at = members_at or clock.now()
        members = set(await session.exec(member_ids_at(compiled.rule.target_group_id, at)))
        candidates = [p for p in values if p in members]
    holds = compiled.condition.holds
    return [p for p in candidates if holds(values[p])]


def read_values(compiled: Compiled, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values the condition read (what the firing keeps and the partner's explanation
    quotes, where visible to it)."""
    return {name: values.get(name) for name in compiled.condition.reads}


@dataclass
class Evaluation:
    firings: list[uuid.UUID] = field(default_factory=list)  # the ids of those written
    already: int = 0  # fired before in the period


async def fire(
    session: AsyncSession,
    clock: Clock,
    compiled: Compiled,
    partner_ids: list[uuid.UUID],
    values: Values,
    *,
    day: date,
    trigger: str,
    out: Evaluation,
    signal_currency: str,
) -> None:
    """Fire the rule for ``partner_ids`` on ``values`` (their money in ``signal_currency``,
    which each firing records: its explanation formats that money in it)."""
    rule, version = compiled.rule, compiled.version
    key = period_key(version.period, day)
    activation = rule.activation
    done = set(
        await session.exec(
            select(RuleFiring.partner_id).where(
                RuleFiring.version_id == version.id,
                RuleFiring.activation == activation,
                RuleFiring.period_key == key,
            )
        )
    )
    group_rates: dict[uuid.UUID, Any] = {}
    rows: dict[uuid.UUID, Any] = {}
    todo = [p for p in partner_ids if p not in done]
    out.already += len(partner_ids) - len(todo)
    now = clock.now()
    statements = None
    if any(a.kind is ActionKind.PAYOUT_HOLD for a in compiled.actions):
        statements = await reviews.open_statements_of(session, rule.vendor_id, todo)
    overlay_programs = {
        a.program_id for a in compiled.actions if a.kind is ActionKind.RATE_OVERLAY and a.program_id
    }
    budget = act.Budget(None, rule.currency)
    spends = overlay_programs or any(a.kind is ActionKind.GROUP_WINDOW for a in compiled.actions)
    if todo:
        # Under the rule's row lock (PostgreSQL; SQLite's write lock is the transaction's
        # already), read fresh: a change of the rule (approve, roll back, pause: they take
        # it first) made meanwhile is seen, and the budget is checked and spent there: a
        # concurrent run of the rule waits here until this one has committed what it spent.
        fresh = (
            await session.exec(
                select(IncentiveRule)
                .where(IncentiveRule.id == rule.id)
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            )
        ).one()
        if (
            fresh.status is not RuleStatus.ACTIVE
            or fresh.active_version_id != version.id
            or fresh.activation != activation
        ):
            return  # paused, replaced or rolled back by a concurrent change meanwhile
        cap, committed = fresh.budget_cap_minor, fresh.budget_committed_minor
        paid = 0
        if spends and cap is not None:
            paid = await overlays.paid_by_sources(
                session, source=act.SOURCE, source_ids=[rule.id], currency=rule.currency
            )
        if spends:
            budget = act.Budget(act.budget_left(cap, committed, paid), rule.currency)
    live = await overlays.live_overlays(session, rule.vendor_id, todo, overlay_programs, now)

    async def one(partner_id: uuid.UUID) -> tuple[dict[str, Any], list[Any]]:
        """Apply the actions; the firing's row, and the rows naming the firing (added once
        it is written)."""
        firing_id = new_id()
        ctx = act.Context(
            session=session, clock=clock, vendor_id=rule.vendor_id, rule_id=rule.id,
            rule_name=rule.name, firing_id=firing_id, partner_id=partner_id,
            values=values[partner_id], budget=budget, group_rates=group_rates,
            rows=rows, open_statements=statements, live=live,
        )  # fmt: skip
        outcomes = [await act.apply(ctx, action) for action in compiled.actions]
        firing = {
            "id": firing_id, "vendor_id": rule.vendor_id, "rule_id": rule.id,
            "version_id": version.id, "version_number": version.number,
            "activation": activation, "partner_id": partner_id, "period_key": key,
            "signal_day": day.isoformat(),
            "values": read_values(compiled, values[partner_id]), "outcomes": outcomes,
            "trigger": trigger, "fired_at": now, "signal_currency": signal_currency,
        }  # fmt: skip
        return firing, list(ctx.pending)

    async def write(made: list[tuple[dict[str, Any], list[Any]]], spent: int) -> None:
        # The firings in one INSERT (the unique constraint guards each), then the rows that
        # name them, what their rate actions committed, the RuleFired events and the audit
        # entries.
        await session.execute(insert(RuleFiring), [firing for firing, _ in made])
        session.add_all([row for _, pending in made for row in pending])
        await session.flush()
        if spent:
            await session.execute(
                update(IncentiveRule)
                .where(col(IncentiveRule.id) == rule.id)
                .values(budget_committed_minor=IncentiveRule.budget_committed_minor + spent)
            )
        await _announce(session, clock, compiled, [firing for firing, _ in made])

    # All of the rule's firings in one savepoint. Should a concurrent evaluation have
    # written one meanwhile, the savepoint is undone and each is tried on its own.
    # An undone savepoint undoes its spending and its overlays too: the budget and the live
    # overlays are read again before the retries and kept per try.
    start, spent = budget.left_minor, budget.spent_minor
    try:
        async with session.begin_nested():
            made = [await one(partner_id) for partner_id in todo]
            if made:
                await write(made, budget.spent_minor - spent)
        out.firings.extend(firing["id"] for firing, _ in made)
        return
    except IntegrityError:
        pass
    budget.left_minor, budget.spent_minor = start, spent
    for partner_id in todo:
        live.clear()
        live.update(
            await overlays.live_overlays(
                session, rule.vendor_id, [partner_id], overlay_programs, now
            )
        )
        before, spent = budget.left_minor, budget.spent_minor
        try:
            async with session.begin_nested():
                made = [await one(partner_id)]
                await write(made, budget.spent_minor - spent)
        except IntegrityError:
            out.already += 1  # fired by a concurrent evaluation; its savepoint is undone
            budget.left_minor, budget.spent_minor = before, spent
            continue
        out.firings.append(made[0][0]["id"])


async def _announce(
    session: AsyncSession, clock: Clock, compiled: Compiled, firings: list[dict[str, Any]]
) -> None:
    """A RuleFired event and an audit entry per firing."""
    rule, version = compiled.rule, compiled.version
    notify = [a for a in compiled.actions if a.kind is ActionKind.NOTIFY_STAFF]
    events, entries = [], []
    for firing in firings:
        applied = [o for o in firing["outcomes"] if not o.get("skipped")]
        fired = RuleFired(
            firing_id=firing["id"], rule_id=rule.id, rule_name=rule.name,
            version_id=version.id, version_number=version.number,
            partner_id=firing["partner_id"], actions=[o["kind"] for o in applied],
            estimated_cost_minor=sum(int(o.get("estimated_cost_minor", 0)) for o in applied),
            currency=rule.currency, notify_staff=bool(notify),
            message=notify[0].message if notify else "", fired_at=firing["fired_at"],
        )  # fmt: skip
        events.append((rule.vendor_id, fired.type, firing["partner_id"], fired.to_payload()))
        entries.append((
            str(firing["id"]),
            {
                "rule": rule.name, "version": version.number,
                "partner_id": str(firing["partner_id"]), "period": firing["period_key"],
                "values": firing["values"], "actions": fired.actions,
                "estimated_cost_minor": fired.estimated_cost_minor,
            },
        ))  # fmt: skip
    await record_events(session, clock, events)
    await record_many(
        session, vendor_id=rule.vendor_id, actor=f"rule:{rule.id}",
        action="incentive_rule.fired", entity_type=AuditEntity.RULE_FIRING,
        at=clock.now(), entries=entries,
    )  # fmt: skip


async def evaluate_vendor(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    day: date,
    trigger: str,
    partner_ids: Collection[uuid.UUID] | None = None,
    changed: Collection[str] | None = None,
    values: Values | None = None,
    rule_ids: Collection[uuid.UUID] | None = None,
) -> Evaluation:
    """Evaluate the vendor's active rules (those reading ``changed``, and only ``rule_ids``,
    when given) for the partners (all when None) on ``day``'s signals, and fire them. In
    the caller's transaction."""
    out = Evaluation()
    rules = await active_rules(session, vendor_id, changed, rule_ids)
    if not rules:
        return out
    # The live overlays on a partner's program total at most MAX_OVERLAY_BP, whatever the
    # rules: runs that may place overlays on the same programs take those programs' row
    # locks first, in one order (PostgreSQL; NO KEY UPDATE, so crediting's inserts naming
    # the program are not blocked; SQLite's write lock is the transaction's already), so a
    # concurrent run reads the overlays this one placed once it has committed.
    programs = sorted(
        {
            action.program_id
            for compiled in rules
            for action in compiled.actions
            if action.kind is ActionKind.RATE_OVERLAY and action.program_id is not None
        }
    )
    if programs:
        await session.exec(
            select(Program.id)
            .where(col(Program.id).in_(programs))
            .order_by(col(Program.id))
            .with_for_update(key_share=True)
        )
    if values is None:
        values = await values_at(
            session, vendor_id, day, list(partner_ids) if partner_ids else None
        )
    currency = await signal_currency(session, vendor_id)
    for compiled in rules:
        partners = await eligible(session, compiled, values, clock)
        if partners:
            await fire(
                session, clock, compiled, partners, values, day=day, trigger=trigger, out=out,
                signal_currency=currency,
            )  # fmt: skip
    return out
