"""Incentive rule types. Rules, versions and firings are vendor-side; a partner reads only
``IncentiveExplanation`` and ``RuleRecommendation`` rows addressed to it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry import Info, relay

from incentives import repository
from incentives.actions import Action, ActionKind
from incentives.dry_run import DryRun
from incentives.explanations import explain
from incentives.models import (
    BudgetChangeStatus,
    IncentiveRule,
    IncentiveRuleBudgetChange,
    IncentiveRuleVersion,
    Period,
    RuleFiring,
    RuleRecommendation,
    RuleStatus,
    VersionStatus,
)
from incentives.templates import Template
from schema.context import Context
from schema.loaders import list_loader
from schema.money import MoneyType
from schema.relay import global_id, visible_nodes

RuleStatusEnum = strawberry.enum(RuleStatus, description="DRAFT until a version is approved.")
VersionStatusEnum = strawberry.enum(VersionStatus)
PeriodEnum = strawberry.enum(
    Period, name="RulePeriod", description="A rule fires at most once per partner and period."
)
ActionKindEnum = strawberry.enum(ActionKind, name="RuleActionKind")
BudgetChangeStatusEnum = strawberry.enum(
    BudgetChangeStatus, name="RuleBudgetChangeStatus", description="PENDING until a second "
    "vendor admin approves (APPLIED) or a vendor admin cancels it (CANCELLED); SUPERSEDED when "
    "a later request or budget of the rule replaced it."
)  # fmt: skip


def _cap(minor: int | None, currency: str) -> MoneyType | None:
    return MoneyType.of(minor, currency) if minor is not None else None


@strawberry.type(
    name="IncentiveRuleBudgetChange",
    description="A loosening of a rule's budget asked for by one vendor admin; the rule's "
    "budget is unchanged until another vendor admin approves it. Vendor staff only.",
)
class IncentiveRuleBudgetChangeType:
    id: strawberry.ID
    status: BudgetChangeStatus
    from_cap: MoneyType | None = strawberry.field(
        description="The rule's cap when it was asked for; null: no cap."
    )
    to_cap: MoneyType | None = strawberry.field(description="The cap asked for; null: no cap.")
    to_currency: str = strawberry.field(description="The rule's budget currency asked for.")
    reason: str
    requested_by_id: strawberry.ID | None = strawberry.field(
        description="The user who asked (for an API key, the user who made the key)."
    )
    requested_at: datetime
    decided_by_id: strawberry.ID | None = strawberry.field(
        description="The user who approved, cancelled or replaced it (for an API key, the "
        "user who made the key); null while pending."
    )
    decided_at: datetime | None = strawberry.field(
        description="When it was approved, cancelled or replaced; null while pending."
    )
    decision_reason: str | None = strawberry.field(
        description="The approval's or cancellation's reason, or the reason given with the "
        "budget that replaced it."
    )

    @classmethod
    def from_model(cls, change: IncentiveRuleBudgetChange) -> IncentiveRuleBudgetChangeType:
        def user(row_id: uuid.UUID | None) -> strawberry.ID | None:
            return global_id("User", row_id) if row_id else None

        return cls(
            id=global_id("IncentiveRuleBudgetChange", change.id), status=change.status,
            from_cap=_cap(change.from_cap_minor, change.from_currency),
            to_cap=_cap(change.to_cap_minor, change.to_currency),
            to_currency=change.to_currency, reason=change.reason,
            requested_by_id=user(change.requested_by_id), requested_at=change.requested_at,
            decided_by_id=user(change.decided_by_id), decided_at=change.decided_at,
            decision_reason=change.decision_reason or None,
        )  # fmt: skip


@strawberry.type(description="One action of a rule version.")
class RuleAction:
    kind: ActionKind
    days: int = strawberry.field(description="The window (or a recommendation's life).")
    group_id: strawberry.ID | None
    program_id: strawberry.ID | None
    delta_bp: int | None = strawberry.field(description="A rate overlay's change.")
    partner_reason: str | None = strawberry.field(description="What the partner reads (hold).")
    title: str | None
    text: str | None
    link: str | None
    code: str | None
    message: str | None = strawberry.field(description="For vendor staff (notify).")

    @classmethod
    def of(cls, action: Action) -> RuleAction:
        group, program = action.group_id, action.program_id
        return cls(
            kind=action.kind, days=action.days,
            group_id=global_id("PartnerGroup", group) if group else None,
            program_id=global_id("EarningProgram", program) if program else None,
            delta_bp=action.delta_bp or None, partner_reason=action.partner_reason or None,
            title=action.title or None, text=action.text or None, link=action.link,
            code=action.code, message=action.message or None,
        )  # fmt: skip


@strawberry.type(description="A signal value a rule read.")
class RuleSignalValue:
    name: str
    value: str | None = strawberry.field(description="As JSON (a number, true/false); null "
                                         "when the signal had no value.")  # fmt: skip


def signal_values(values: dict[str, Any]) -> list[RuleSignalValue]:
    return [
        RuleSignalValue(name=k, value=None if v is None else json.dumps(v))
        for k, v in sorted(values.items())
    ]


@strawberry.type(name="IncentiveRuleVersion")
class IncentiveRuleVersionType:
    id: strawberry.ID
    number: int
    condition: str = strawberry.field(description="A CEL expression over signals.")
    reads: list[str] = strawberry.field(description="The signals the condition reads.")
    actions: list[RuleAction]
    period: Period
    status: VersionStatus
    created_by_id: strawberry.ID | None
    created_at: datetime
    approved_by_id: strawberry.ID | None
    approved_at: datetime | None
    approval_reason: str | None

    @classmethod
    def from_model(cls, version: IncentiveRuleVersion) -> IncentiveRuleVersionType:
        return cls(
            id=global_id("IncentiveRuleVersion", version.id), number=version.number,
            condition=version.condition, reads=list(version.reads),
            actions=[RuleAction.of(Action.from_json(a)) for a in version.actions],
            period=version.period, status=version.status,
            created_by_id=global_id("User", version.created_by_id) if version.created_by_id
            else None,
            created_at=version.created_at,
            approved_by_id=global_id("User", version.approved_by_id) if version.approved_by_id
            else None,
            approved_at=version.approved_at, approval_reason=version.approval_reason or None,
        )  # fmt: skip


@strawberry.type(
    name="IncentiveRule",
    description="A rule: when its active version's condition holds for a partner, its "
    "actions fire. Vendor staff only.",
)
class IncentiveRuleType(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    status: RuleStatus
    template: str | None
    target_group_id: strawberry.ID | None = strawberry.field(
        description="Only partners in this group are evaluated (a pilot's treatment)."
    )
    budget_cap: MoneyType | None = strawberry.field(
        description="What its rate overlays and paid group windows may cost in total; null: no cap."
    )
    created_at: datetime
    updated_at: datetime
    active_version_id: strawberry.Private[uuid.UUID | None]

    resolve_nodes = visible_nodes(repository.rules_by_ids)

    @strawberry.field(description="The version evaluated while the rule is ACTIVE.")
    async def active_version(self, info: Info[Context, None]) -> IncentiveRuleVersionType | None:
        if self.active_version_id is None:
            return None
        ctx = info.context
        found = await list_loader(
            ctx, "incentives.versions_by_ids",
            lambda ids: repository.versions_by_ids(ctx.session, ctx.caller, ids),
        ).load(self.active_version_id)  # fmt: skip
        return IncentiveRuleVersionType.from_model(found[0]) if found else None

    @strawberry.field(
        description="A loosening of its budget waiting for a second vendor admin, if any."
    )
    async def pending_budget_change(
        self, info: Info[Context, None]
    ) -> IncentiveRuleBudgetChangeType | None:
        ctx = info.context
        found = await list_loader(
            ctx, "incentives.pending_budget_changes",
            lambda ids: repository.pending_budget_changes(ctx.session, ctx.caller, ids),
        ).load(uuid.UUID(self.id))  # fmt: skip
        return IncentiveRuleBudgetChangeType.from_model(found[0]) if found else None

    @strawberry.field(description="Every version, oldest first.")
    async def versions(self, info: Info[Context, None]) -> list[IncentiveRuleVersionType]:
        ctx = info.context
        rows = await list_loader(
            ctx, "incentives.versions_of",
            lambda ids: repository.versions_of(ctx.session, ctx.caller, ids),
        ).load(uuid.UUID(self.id))  # fmt: skip
        return [IncentiveRuleVersionType.from_model(v) for v in rows]

    @classmethod
    def from_model(cls, rule: IncentiveRule) -> IncentiveRuleType:
        return cls(
            id=str(rule.id), name=rule.name, description=rule.description, status=rule.status,
            template=rule.template,
            target_group_id=global_id("PartnerGroup", rule.target_group_id)
            if rule.target_group_id else None,
            budget_cap=_cap(rule.budget_cap_minor, rule.currency),
            active_version_id=rule.active_version_id, created_at=rule.created_at,
            updated_at=rule.updated_at,
        )  # fmt: skip


@strawberry.type(description="What one action of a firing did.")
class RuleActionOutcome:
    kind: ActionKind
    until: datetime
    skipped: str | None = strawberry.field(
        description="Why it was not applied, else null: BUDGET_REACHED; ALREADY_LIVE or "
        "CAP_REACHED (a rate overlay); GROUP_ARCHIVED or GROUP_MANAGED (a group window whose "
        "group was archived, or taken over by a pilot, after the rule was written)."
    )
    estimated_cost: MoneyType
    detail: str = strawberry.field(description="What it placed, as JSON (ids, group, program).")


@dataclass
class _PricedFiring:
    """A firing with its rule's currency (what ``node(id)`` builds a RuleFiring from)."""

    id: uuid.UUID
    firing: RuleFiring
    currency: str


async def _firings_by_ids(
    session: Any, principal: Any, ids: list[uuid.UUID]
) -> dict[uuid.UUID, _PricedFiring]:
    found = await repository.firings_by_ids(session, principal, ids)
    currencies = await repository.vendor_rule_currencies(session, principal)
    return {i: _PricedFiring(i, f, currencies.get(f.rule_id, "USD")) for i, f in found.items()}


@strawberry.type(
    name="RuleFiring",
    description="An immutable record of a rule firing for a partner: the version, the signal "
    "values read, what each action did, when. Vendor staff (a channel manager: its "
    "partners).",
)
class RuleFiringType(relay.Node):
    id: relay.NodeID[str]
    rule_id: strawberry.ID
    version_number: int
    partner_id: strawberry.ID
    period: str
    activation: int = strawberry.field(
        description="The rule's activation it fired in: each approval and each rollback "
        "starts a new one, in which the version active fires at most once per partner and "
        "period."
    )
    signal_day: date
    trigger: str = strawberry.field(
        description="SIGNALS (its signals changed), DAILY (the daily run) or ACTIVATION "
        "(evaluated as its version was approved, rolled back to or resumed)."
    )
    fired_at: datetime
    values: list[RuleSignalValue]
    outcomes: list[RuleActionOutcome]
    _values: strawberry.Private[dict[str, Any]]
    _outcomes: strawberry.Private[list[dict[str, Any]]]

    @strawberry.field(
        description="What the partner reads about it (null when nothing of it is visible "
        "to the partner), including what a later change of the rule ended of it."
    )
    async def explanation(self, info: Info[Context, None]) -> str | None:
        ctx = info.context
        firing_id = uuid.UUID(str(self.id))
        ends = await list_loader(
            ctx, "incentives.firing_ends", lambda ids: repository.ends_of(ctx.session, ids)
        ).load(firing_id)
        [reading] = await list_loader(
            ctx, "incentives.firing_readings", lambda ids: repository.readings_of(ctx.session, ids)
        ).load(firing_id)
        return explain(
            self._values, self._outcomes, reading.signal_currency, ends,
            now=ctx.services.clock.now(), window_ends=reading.window_ends,
        )  # fmt: skip

    resolve_nodes = visible_nodes(
        lambda session, principal, ids: _firings_by_ids(session, principal, ids),
        lambda cls, priced, _ctx: cls.from_model(priced.firing, priced.currency),
    )

    @classmethod
    def from_model(cls, firing: RuleFiring, currency: str) -> RuleFiringType:
        """``currency``: the rule's, which its actions' estimated costs are in."""
        return cls(
            id=str(firing.id), rule_id=global_id("IncentiveRule", firing.rule_id),
            version_number=firing.version_number,
            partner_id=global_id("Partner", firing.partner_id), period=firing.period_key,
            activation=firing.activation, signal_day=date.fromisoformat(firing.signal_day),
            trigger=firing.trigger,
            fired_at=firing.fired_at, values=signal_values(firing.values),
            outcomes=[
                RuleActionOutcome(
                    kind=ActionKind(o["kind"]), until=datetime.fromisoformat(o["until"]),
                    skipped=o.get("skipped"),
                    estimated_cost=MoneyType.of(int(o.get("estimated_cost_minor", 0)), currency),
                    detail=json.dumps(
                        {k: v for k, v in o.items()
                         if k not in {"kind", "until", "skipped", "estimated_cost_minor"}},
                        sort_keys=True,
                    ),
                )
                for o in firing.outcomes
            ],
            _values=firing.values, _outcomes=firing.outcomes,
        )  # fmt: skip


@strawberry.type(description="What a rule did that affects you, in plain language.")
class IncentiveExplanation:
    fired_at: datetime
    text: str


@strawberry.type(description="An action recommended to you.")
class RuleRecommendationType:
    title: str
    text: str
    link: str | None
    code: str | None
    expires_at: datetime

    @classmethod
    def from_model(cls, row: RuleRecommendation) -> RuleRecommendationType:
        return cls(
            title=row.title, text=row.text, link=row.link, code=row.code,
            expires_at=row.expires_at,
        )  # fmt: skip


@strawberry.type(
    description="An action a partner would get, with its estimated cost, against what "
    "already runs for the partner."
)
class RuleDryRunAction:
    kind: ActionKind
    estimated_cost: MoneyType
    skipped: str | None = strawberry.field(
        description="Why it would not be applied, as a firing would say (BUDGET_REACHED, "
        "ALREADY_LIVE: this rule's overlay already runs as long, CAP_REACHED: with the "
        "overlays already running on the partner's program it would pass the cap, "
        "GROUP_ARCHIVED, GROUP_MANAGED: the window's group was archived or a pilot took it "
        "over); else null."
    )
    running_delta_bp: int | None = strawberry.field(
        description="A rate overlay: the basis points other rules' overlays already run on "
        "the partner's program now (they stack with it, within the cap)."
    )
    note: str | None = strawberry.field(
        description="What already runs and what it changes, in words (extended, stacked, "
        "not placed)."
    )


@strawberry.type(description="A partner the version would fire for.")
class RuleDryRunPartner:
    partner_id: strawberry.ID
    partner_name: str
    values: list[RuleSignalValue]
    actions: list[RuleDryRunAction]


@strawberry.type(description="What a version would do on a day's signals; nothing is written.")
class RuleDryRun:
    version_number: int
    day: date
    evaluated: int = strawberry.field(description="Partners with signals that day.")
    firing: int = strawberry.field(description="Partners it would fire for.")
    estimated_cost: MoneyType = strawberry.field(
        description="The estimated incentive cost over the actions' windows (rate overlays "
        "and group programs on the trailing 30 days' revenue pace)."
    )
    partners: list[RuleDryRunPartner] = strawberry.field(description="At most 500 listed.")

    @classmethod
    def of(cls, run: DryRun) -> RuleDryRun:
        return cls(
            version_number=run.version_number, day=run.day, evaluated=run.evaluated,
            firing=run.firing, estimated_cost=MoneyType.of(run.estimated_cost_minor, run.currency),
            partners=[
                RuleDryRunPartner(
                    partner_id=global_id("Partner", p.partner_id), partner_name=p.partner_name,
                    values=signal_values(p.values),
                    actions=[
                        RuleDryRunAction(
                            kind=ActionKind(a.kind),
                            estimated_cost=MoneyType.of(a.cost_minor, run.currency),
                            skipped=a.skipped, running_delta_bp=a.running_bp, note=a.note,
                        )
                        for a in p.actions
                    ],
                )
                for p in run.partners
            ],
        )  # fmt: skip


@strawberry.type(description="A rule template shipped with the product.")
class RuleTemplate:
    key: str
    name: str
    description: str
    condition: str
    period: Period
    actions: list[RuleAction]
    needs_group: bool = strawberry.field(description="Give a group (the promotion tier).")
    needs_program: bool = strawberry.field(description="Give a program (the overlay's).")

    @classmethod
    def of(cls, t: Template) -> RuleTemplate:
        return cls(
            key=t.key, name=t.name, description=t.description, condition=t.condition,
            period=t.period, actions=[RuleAction.of(a) for a in t.actions],
            needs_group=t.needs_group, needs_program=t.needs_program,
        )  # fmt: skip
