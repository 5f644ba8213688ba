"""Rule governance: create (a first draft), draft a new version, dry run, approve (four
eyes), pause, resume, roll back, budget (loosening a rule's budget is four eyes too:
``set_budget`` asks, ``approve_budget_change`` applies). Every change is audited; only
vendor admins act.

A version's condition and actions are checked when drafted; it becomes the rule's active
version only when a second vendor admin approves it with a reason. Rolling back makes an
earlier approved version active again and ends what the replaced version's firings placed
and is still running (group windows, overlays, payout reviews, recommendations); holds
already placed on statements stay for finance to release.

Each approval and rollback starts a new activation of the rule (``IncentiveRule.activation``):
the version made active fires anew in it, once per partner and period, even one that fired
this period before it was replaced. What a change ends of a firing is recorded per firing
(``RuleFiringEnd``) for the partner's explanation, and a ``RuleActivated`` event has the
rule evaluated at once (``incentives.handlers``), so the partner's state matches the
version now active without waiting for a signal to change or for the daily run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import withdrawals
from earnings.models import Program
from earnings.service import default_currency
from incentives import actions as act
from incentives.actions import Action
from incentives.errors import RuleErrorCode
from incentives.events import (
    RULE_EFFECTS_ENDED,
    BudgetChangeDecided,
    BudgetChangeRequested,
    RuleActivated,
    VersionDecided,
    VersionDrafted,
)
from incentives.expressions import compile_condition
from incentives.models import (
    BudgetChangeStatus,
    EndCause,
    IncentiveRule,
    IncentiveRuleBudgetChange,
    IncentiveRuleVersion,
    Period,
    RuleFiring,
    RuleFiringEnd,
    RuleStatus,
    VersionStatus,
)
from incentives.policy import RULES, RuleOp
from incentives.repository import readable_budget_changes, readable_rules, readable_versions
from incentives.templates import BY_KEY
from infra.clock import Clock
from infra.db import begin_write
from infra.errors import DomainError, DomainErrors
from infra.ids import new_id
from infra.money import is_currency
from infra.outbox import record_events
from infra.text import free_text_problem, name_problem
from partners.audit_log import AuditEntity, log_change
from partners.group_models import PartnerGroup
from partners.roles import Principal
from partners.service import person_behind
from signals.definitions import DEFINITIONS

MAX_BUDGET_MINOR = 10**12


def snapshot(rule: IncentiveRule) -> dict[str, Any]:
    return {
        "name": rule.name, "status": rule.status.value,
        "active_version_id": rule.active_version_id, "target_group_id": rule.target_group_id,
        "budget_cap_minor": rule.budget_cap_minor, "currency": rule.currency,
        "activation": rule.activation,
    }  # fmt: skip


def version_snapshot(version: IncentiveRuleVersion) -> dict[str, Any]:
    return {
        "number": version.number, "condition": version.condition, "actions": version.actions,
        "period": version.period.value, "status": version.status.value,
    }  # fmt: skip


async def _rule(
    session: AsyncSession,
    principal: Principal,
    rule_id: uuid.UUID,
    field: str = "id",
    *,
    to_change: bool = True,
) -> IncentiveRule:
    """The rule, locked when it is ``to_change`` (PostgreSQL; SQLite's write lock is the
    transaction's): an evaluation re-checks the rule under the same lock before it fires,
    so a version replaced, rolled back or paused here fires nothing after its effects were
    ended, and two changes of one rule go one after the other."""
    statement = readable_rules(principal).where(IncentiveRule.id == rule_id)
    if to_change:
        statement = statement.with_for_update(key_share=True).execution_options(
            populate_existing=True
        )
    found = (await session.exec(statement)).first()
    if found is None:
        raise DomainError(RuleErrorCode.NOT_FOUND, "No such rule.", field)
    return found


async def _version(
    session: AsyncSession,
    principal: Principal,
    version_id: uuid.UUID,
    field: str = "version_id",
    *,
    fresh: bool = False,
) -> IncentiveRuleVersion:
    """The version; ``fresh``: as the database has it now (read again, not the object the
    session already holds)."""
    statement = readable_versions(principal).where(IncentiveRuleVersion.id == version_id)
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    found = (await session.exec(statement)).first()
    if found is None:
        raise DomainError(RuleErrorCode.NOT_FOUND, "No such rule version.", field)
    return found


async def _rule_currency(
    session: AsyncSession, vendor_id: uuid.UUID, actions: Sequence[Action]
) -> str:
    """A rule created without a budget is in the currency its overlays' program pays in
    (an overlay must be), else the vendor's first program's: never a fixed USD that would
    refuse an overlay on a EUR program for a budget nobody set."""
    for action in actions:
        if action.kind in act.RATE_ACTIONS and action.program_id is not None:
            program = await session.get(Program, action.program_id)
            if program is not None and program.vendor_id == vendor_id:
                return program.currency
    return await default_currency(session, vendor_id)


def _budget(cap: int | None, currency: str, errors: list[DomainError]) -> None:
    if cap is not None and cap < 0:
        errors.append(DomainError(
            RuleErrorCode.NEGATIVE_CAP, "A budget cap is zero or more.", "budget_cap.amount"
        ))  # fmt: skip
    elif cap is not None and cap > MAX_BUDGET_MINOR:
        errors.append(DomainError(
            RuleErrorCode.INVALID_ACTION, "That budget cap is too large.", "budget_cap.amount"
        ))  # fmt: skip
    if not is_currency(currency):
        errors.append(DomainError(
            RuleErrorCode.INVALID_CURRENCY, "Use an ISO 4217 currency code like USD.",
            "budget_cap.currency",
        ))  # fmt: skip


async def _checked(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    condition: str,
    actions: Sequence[Action],
    currency: str,
    errors: list[DomainError],
) -> tuple[str, list[str], list[Action]]:
    reads: list[str] = []
    if problem := free_text_problem(condition):
        # Code people read: a bidi override in a string literal is "Trojan Source". Checked
        # where a condition comes in, not in compile_condition (stored ones are run as kept).
        errors.append(DomainError(RuleErrorCode.INVALID_CHARACTERS, problem, "condition"))
    else:
        try:
            compiled = compile_condition(condition, DEFINITIONS)
            condition, reads = compiled.source, list(compiled.reads)
        except DomainError as bad:
            errors.append(bad)
    checked: list[Action] = []
    try:
        checked = await act.validate(session, vendor_id, actions, currency)
    except DomainErrors as bad:
        errors.extend(bad.errors)
    except DomainError as bad:
        errors.append(bad)
    return condition, reads, checked


async def create_rule(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    description: str = "",
    condition: str,
    actions: Sequence[Action],
    period: Period = Period.WEEK,
    target_group_id: uuid.UUID | None = None,
    budget_cap_minor: int | None = None,
    currency: str | None = None,
    template: str | None = None,
) -> IncentiveRule:
    """A new rule with its first version as a draft (nothing is evaluated until a second
    vendor admin approves it). ``currency``: its budget's (None: see ``_rule_currency``)."""
    RULES.require(principal, RuleOp.CREATE)
    await begin_write(session)
    if currency is None:
        currency = await _rule_currency(session, principal.vendor_id, actions)
    errors: list[DomainError] = []
    name = name.strip()
    if not name:
        errors.append(DomainError(RuleErrorCode.REQUIRED, "Give the rule a name.", "name"))
    elif len(name) > 200:
        errors.append(DomainError(RuleErrorCode.TOO_LONG, "At most 200 characters.", "name"))
    elif problem := name_problem(name):
        errors.append(DomainError(RuleErrorCode.INVALID_CHARACTERS, problem, "name"))
    if len(description) > 2000:
        errors.append(
            DomainError(RuleErrorCode.TOO_LONG, "At most 2000 characters.", "description")
        )
    elif problem := free_text_problem(description):
        errors.append(DomainError(RuleErrorCode.INVALID_CHARACTERS, problem, "description"))
    _budget(budget_cap_minor, currency, errors)
    if target_group_id is not None:
        group = await session.get(PartnerGroup, target_group_id)
        if group is None or group.vendor_id != principal.vendor_id or group.archived_at:
            errors.append(DomainError(RuleErrorCode.NOT_FOUND, "No such group.", "target_group_id"))
    condition, reads, checked = await _checked(
        session, principal.vendor_id, condition, actions, currency, errors
    )
    if errors:
        raise DomainErrors(errors)
    taken = await session.exec(
        select(IncentiveRule.id).where(
            IncentiveRule.vendor_id == principal.vendor_id, IncentiveRule.name == name
        )
    )
    if taken.first() is not None:
        raise DomainError(RuleErrorCode.DUPLICATE_NAME, "A rule with this name exists.", "name")
    now = clock.now()
    author = await _asker(session, principal)
    rule = IncentiveRule(
        vendor_id=principal.vendor_id, name=name, description=description,
        status=RuleStatus.DRAFT, target_group_id=target_group_id,
        budget_cap_minor=budget_cap_minor, currency=currency, template=template,
        created_by_id=author, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(rule)
    await session.flush()
    version = _new_version(rule, 1, condition, reads, checked, period, author, now)
    session.add(version)
    await session.flush()
    await log_change(
        session, principal, clock, action="incentive_rule.created",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=None,
        after=snapshot(rule) | {"draft": version_snapshot(version)},
    )  # fmt: skip
    await _drafted(session, clock, rule, version, replaced=[])
    return rule


def _new_version(
    rule: IncentiveRule,
    number: int,
    condition: str,
    reads: list[str],
    actions: list[Action],
    period: Period,
    author: uuid.UUID | None,
    now: Any,
) -> IncentiveRuleVersion:
    return IncentiveRuleVersion(
        vendor_id=rule.vendor_id, rule_id=rule.id, number=number, condition=condition,
        reads=reads, actions=[a.to_json() for a in actions], period=period,
        status=VersionStatus.DRAFT, created_by_id=author, created_at=now,
    )  # fmt: skip


async def _asker(session: AsyncSession, principal: Principal) -> uuid.UUID:
    """The person asking for what a second vendor admin approves (a draft, a loosening):
    refused (PERSON_REQUIRED) when there is none to tell apart from the approver, as for an
    API key made with a key before keys recorded their maker's maker, which its admin
    could otherwise approve herself."""
    person = await person_behind(session, principal)
    if person is None:
        raise DomainError(
            RuleErrorCode.PERSON_REQUIRED,
            "This API key has no known maker, so no second admin can be told apart from "
            "them: ask as a signed-in vendor admin, or with a key one makes now.",
        )
    return person


async def draft_version(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    rule_id: uuid.UUID,
    condition: str,
    actions: Sequence[Action],
    period: Period = Period.WEEK,
) -> IncentiveRuleVersion:
    """A new draft version of the rule (an earlier unapproved draft is discarded)."""
    RULES.require(principal, RuleOp.DRAFT)
    await begin_write(session)
    rule = await _rule(session, principal, rule_id, "rule_id")
    errors: list[DomainError] = []
    condition, reads, checked = await _checked(
        session, rule.vendor_id, condition, actions, rule.currency, errors
    )
    if errors:
        raise DomainErrors(errors)
    versions = list(
        await session.exec(
            select(IncentiveRuleVersion).where(IncentiveRuleVersion.rule_id == rule.id)
        )
    )
    discarded = [old for old in versions if old.status is VersionStatus.DRAFT]
    for old in discarded:
        old.status = VersionStatus.DISCARDED
        session.add(old)
    number = max((v.number for v in versions), default=0) + 1
    author = await _asker(session, principal)
    version = _new_version(rule, number, condition, reads, checked, period, author, clock.now())
    session.add(version)
    rule.updated_at = clock.now()
    session.add(rule)
    await session.flush()
    await log_change(
        session, principal, clock, action="incentive_rule.drafted",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=None,
        after={"draft": version_snapshot(version)},
    )  # fmt: skip
    await _drafted(session, clock, rule, version, replaced=discarded)
    return version


async def _drafted(
    session: AsyncSession,
    clock: Clock,
    rule: IncentiveRule,
    version: IncentiveRuleVersion,
    *,
    replaced: Sequence[IncentiveRuleVersion],
) -> None:
    """Record, in the outbox and the transaction of the draft, that it waits for a second
    vendor admin (``VersionDrafted``: the vendor's other admins are told after commit,
    ``notifications.rules``), and that the drafts it replaced were discarded
    (``VersionDecided``, DISCARDED: those told of them learn there is nothing left to
    approve of them)."""
    assert version.created_by_id is not None  # ``_asker``: a person drafts
    actions: list[dict[str, Any]] = []
    for data in version.actions:
        named = dict(data)
        if data.get("group_id"):
            group = await session.get(PartnerGroup, uuid.UUID(str(data["group_id"])))
            named["group_name"] = group.name if group else ""
        if data.get("program_id"):
            program = await session.get(Program, uuid.UUID(str(data["program_id"])))
            named["program_name"] = program.name if program else ""
        actions.append(named)
    events: list[VersionDrafted | VersionDecided] = [
        VersionDecided(
            version_id=old.id,
            rule_id=rule.id,
            rule_name=rule.name,
            version_number=old.number,
            status=old.status.value,
            author_id=old.created_by_id,
            decided_by_id=version.created_by_id,
            reason="",
            decided_at=version.created_at,
            replaced_by_number=version.number,
            paused=rule.status is RuleStatus.PAUSED,
        )  # fmt: skip
        for old in replaced
    ]
    events.append(VersionDrafted(
        version_id=version.id, rule_id=rule.id, rule_name=rule.name,
        version_number=version.number, condition=version.condition,
        period=version.period.value, actions=actions, author_id=version.created_by_id,
        drafted_at=version.created_at,
        replaced_number=max((old.number for old in replaced), default=None),
    ))  # fmt: skip
    await record_events(
        session, clock, [(rule.vendor_id, e.type, rule.id, e.to_payload()) for e in events]
    )


def _refuse_approval_without_person(principal: Principal) -> None:
    """Four eyes are a second person's, signed in: an API key (or an operator's command)
    approves nothing, whoever made it. Told so (PERSON_REQUIRED), not that it is the
    author (SELF_APPROVAL), which its maker may well not be."""
    if principal.user_id is None:
        raise DomainError(
            RuleErrorCode.PERSON_REQUIRED,
            "A signed-in vendor admin approves, not an API key.",
        )


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise DomainError(RuleErrorCode.REQUIRED, "Give a reason.", "reason")
    if len(reason) > 2000:
        raise DomainError(RuleErrorCode.TOO_LONG, "At most 2000 characters.", "reason")
    if problem := free_text_problem(reason):
        raise DomainError(RuleErrorCode.INVALID_CHARACTERS, problem, "reason")
    return reason


async def approve(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    version_id: uuid.UUID,
    reason: str,
) -> IncentiveRule:
    """Four eyes: a vendor admin other than the draft's author approves it with a reason;
    it becomes the rule's active version (a paused rule stays paused)."""
    RULES.require(principal, RuleOp.APPROVE)
    await begin_write(session)
    reason = _reason(reason)
    # The rule locked first, the version read after: a draft its author replaced, or
    # another admin approved, meanwhile (both lock the rule) is seen as it now is, not
    # approved as it was read (PostgreSQL; SQLite's write lock is the transaction's).
    rule_id = (await _version(session, principal, version_id)).rule_id
    rule = await _rule(session, principal, rule_id)
    version = await _version(session, principal, version_id, fresh=True)
    if version.status is not VersionStatus.DRAFT:
        raise DomainError(RuleErrorCode.NOT_A_DRAFT, "Only a draft is approved.", "version_id")
    _refuse_approval_without_person(principal)
    if version.created_by_id == principal.user_id:
        raise DomainError(
            RuleErrorCode.SELF_APPROVAL,
            "Another vendor admin approves a draft, not its author.",
            "version_id",
        )
    before = snapshot(rule)
    now = clock.now()
    # What the replaced version placed ends, as on a rollback: the new version's firings
    # (a new version fires anew) would otherwise run beside it.
    ended, _ = await _end_effects(
        session, clock, rule, rule.active_version_id, EndCause.NEW_VERSION
    )
    version.status = VersionStatus.APPROVED
    version.approved_by_id = principal.user_id
    version.approved_at = now
    version.approval_reason = reason
    rule.active_version_id = version.id
    if rule.status is RuleStatus.DRAFT:
        rule.status = RuleStatus.ACTIVE
    rule.activation += 1
    rule.updated_at = now
    session.add(version)
    session.add(rule)
    await session.flush()
    await _activated(session, clock, rule, version)
    await log_change(
        session, principal, clock, action="incentive_rule.approved",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=before,
        after=snapshot(rule) | {"approved_version": version.number, "effects_ended": ended},
        reason=reason,
    )  # fmt: skip
    # The admins told of the draft (its author too) learn it is decided.
    decided = VersionDecided(
        version_id=version.id, rule_id=rule.id, rule_name=rule.name,
        version_number=version.number, status=version.status.value,
        author_id=version.created_by_id, decided_by_id=principal.user_id, reason=reason,
        decided_at=now, replaced_by_number=None, paused=rule.status is RuleStatus.PAUSED,
    )  # fmt: skip
    await record_events(
        session, clock, [(rule.vendor_id, decided.type, rule.id, decided.to_payload())]
    )
    return rule


async def set_status(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    rule_id: uuid.UUID,
    pause: bool,
    reason: str,
) -> IncentiveRule:
    """Pause (no evaluation; what it placed runs on) or resume an approved rule."""
    RULES.require(principal, RuleOp.PAUSE if pause else RuleOp.RESUME)
    await begin_write(session)
    rule = await _rule(session, principal, rule_id)
    reason = _reason(reason)
    wanted_from = RuleStatus.ACTIVE if pause else RuleStatus.PAUSED
    if rule.status is not wanted_from:
        raise DomainError(
            RuleErrorCode.INVALID_STATUS,
            f"The rule is {rule.status.value}; only an {wanted_from.value} rule is "
            f"{'paused' if pause else 'resumed'}.",
            "id",
        )
    before = snapshot(rule)
    rule.status = RuleStatus.PAUSED if pause else RuleStatus.ACTIVE
    rule.updated_at = clock.now()
    session.add(rule)
    await session.flush()
    if not pause:
        active = await session.get(IncentiveRuleVersion, rule.active_version_id)
        assert active is not None  # a paused rule had an approved version
        await _activated(session, clock, rule, active)
    await log_change(
        session, principal, clock,
        action="incentive_rule.paused" if pause else "incentive_rule.resumed",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=before,
        after=snapshot(rule), reason=reason,
    )  # fmt: skip
    return rule


async def roll_back(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    rule_id: uuid.UUID,
    to_version: int,
    reason: str,
    reverse_earnings: bool = False,
) -> IncentiveRule:
    """Make an earlier approved version active again, and end what the replaced version's
    firings placed that still runs. With ``reverse_earnings``, what the replaced version's
    overlays paid is taken back too (``earnings.withdrawals``): reversed when booked this
    month (no statement has it yet), clawed back in this month's statement when an earlier
    month's statement pays it."""
    RULES.require(principal, RuleOp.ROLL_BACK)
    await begin_write(session)
    rule = await _rule(session, principal, rule_id)
    reason = _reason(reason)
    current = (
        await session.get(IncentiveRuleVersion, rule.active_version_id)
        if rule.active_version_id
        else None
    )
    target = (
        await session.exec(
            select(IncentiveRuleVersion).where(
                IncentiveRuleVersion.rule_id == rule.id, IncentiveRuleVersion.number == to_version
            )
        )
    ).first()
    if (
        current is None
        or target is None
        or target.status is not VersionStatus.APPROVED
        or target.number >= current.number
    ):
        raise DomainError(
            RuleErrorCode.NOT_AN_EARLIER_VERSION,
            "Roll back to an approved version older than the active one.",
            "to_version",
        )
    before = snapshot(rule)
    ended, outcomes = await _end_effects(
        session, clock, rule, current.id, EndCause.ROLLED_BACK, restore_extended=True
    )
    money: dict[str, Any] = {}
    if reverse_earnings:
        windows = act.overlay_windows(outcomes)
        withdrawn = await withdrawals.withdraw_overlay_earnings(
            session, clock, overlay_ids=list(windows), why="the promotion was withdrawn",
            since={o: since for o, since in windows.items() if since is not None},
        )  # fmt: skip
        money = {
            "earnings_reversed_minor": withdrawn.reversed_minor,
            "earnings_clawed_back_minor": withdrawn.clawed_back_minor,
            "earning_entries": len(withdrawn.entries),
        }
    rule.active_version_id = target.id
    rule.activation += 1
    rule.updated_at = clock.now()
    session.add(rule)
    await session.flush()
    await _activated(session, clock, rule, target)
    await log_change(
        session, principal, clock, action="incentive_rule.rolled_back",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id,
        before=before | {"version": current.number},
        after=snapshot(rule) | {"version": target.number, "effects_ended": ended,
                                "reverse_earnings": reverse_earnings} | money,
        reason=reason,
    )  # fmt: skip
    return rule


async def _end_effects(
    session: AsyncSession,
    clock: Clock,
    rule: IncentiveRule,
    version_id: uuid.UUID | None,
    cause: EndCause,
    *,
    restore_extended: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """End what the version's firings placed that still runs (``act.undo``), and record
    per firing what ended and when (``RuleFiringEnd``: the partner's explanation of the
    firing says so). How many effects ended, and every outcome of the version's firings."""
    if version_id is None:
        return 0, []
    firings = list(
        await session.exec(
            select(RuleFiring)
            .where(RuleFiring.version_id == version_id)
            .order_by(col(RuleFiring.fired_at), col(RuleFiring.id))
        )
    )
    outcomes = [outcome for firing in firings for outcome in firing.outcomes]
    ended = await act.undo(session, clock, outcomes, restore_extended=restore_extended)
    if not ended:
        return 0, outcomes
    now = clock.now()
    changed = {str(effect): until.isoformat() for effect, until in ended.items()}
    rows: list[dict[str, Any]] = []
    partners: set[uuid.UUID] = set()
    for firing in firings:
        effects = {
            effect: changed[effect]
            for outcome in firing.outcomes
            if (effect := act.effect_id(outcome)) is not None and effect in changed
        }
        if effects:
            partners.add(firing.partner_id)
            rows.append({
                "id": new_id(), "vendor_id": rule.vendor_id, "rule_id": rule.id,
                "firing_id": firing.id, "partner_id": firing.partner_id, "cause": cause,
                "ended_at": now, "effects": effects,
            })  # fmt: skip
    if rows:
        await session.execute(insert(RuleFiringEnd), rows)
    await _tell_partners(session, clock, rule, version_id, partners)
    return len(ended), outcomes


async def _tell_partners(
    session: AsyncSession,
    clock: Clock,
    rule: IncentiveRule,
    version_id: uuid.UUID,
    partners: set[uuid.UUID],
) -> None:
    """A ``RuleEffectsEnded`` per partner whose effects of the version ended: a live list
    of next actions drops the withdrawn recommendations at once."""
    payload = {"rule_id": str(rule.id), "version_id": str(version_id)}
    await record_events(session, clock, [
        (rule.vendor_id, RULE_EFFECTS_ENDED, p, payload | {"partner_id": str(p)})
        for p in sorted(partners)
    ])  # fmt: skip


async def _activated(
    session: AsyncSession, clock: Clock, rule: IncentiveRule, version: IncentiveRuleVersion
) -> None:
    """Have the rule evaluated at once for its partners (``RuleActivated``, handled after
    commit), when it is active: its version fires in the new activation now rather than at
    the next signal change or daily run. A paused rule is evaluated when resumed."""
    if rule.status is not RuleStatus.ACTIVE:
        return
    event = RuleActivated(
        rule_id=rule.id, version_id=version.id, version_number=version.number,
        activation=rule.activation,
    )  # fmt: skip
    await record_events(session, clock, [(rule.vendor_id, event.type, rule.id, event.to_payload())])


@dataclass(frozen=True)
class BudgetOutcome:
    """What a budget call did: ``applied``, the rule's budget is now the one asked for;
    else ``change`` waits for a second vendor admin (or was just cancelled). ``change``: the
    budget change row concerned, None for a budget set at once."""

    rule: IncentiveRule
    change: IncentiveRuleBudgetChange | None
    applied: bool


def loosens(rule: IncentiveRule, cap: int | None, currency: str) -> bool:
    """Whether this budget lets the rule spend more than its own does: a higher cap, no cap
    where it has one, or another currency (what it committed counts in its currency; a cap
    set where there was none, in another currency, is a move of currency too)."""
    if currency != rule.currency:
        return True
    if rule.budget_cap_minor is None:
        return False
    return cap is None or cap > rule.budget_cap_minor


def _id_text(row_id: uuid.UUID | None) -> str | None:
    return str(row_id) if row_id else None


def change_snapshot(change: IncentiveRuleBudgetChange) -> dict[str, Any]:
    return {
        "budget_change_id": str(change.id), "status": change.status.value,
        "from_cap_minor": change.from_cap_minor, "from_currency": change.from_currency,
        "to_cap_minor": change.to_cap_minor, "to_currency": change.to_currency,
        "requested_by_id": _id_text(change.requested_by_id),
    }  # fmt: skip


async def _tell(
    session: AsyncSession,
    clock: Clock,
    rule: IncentiveRule,
    event: BudgetChangeRequested | BudgetChangeDecided,
) -> None:
    """Record a budget change's event in the outbox, in the transaction of the change: the
    vendor's other admins are told after commit (``notifications.rules``), and a process
    that dies after the commit leaves the event for the next dispatcher run."""
    await record_events(session, clock, [(rule.vendor_id, event.type, rule.id, event.to_payload())])


def _decided_event(rule: IncentiveRule, change: IncentiveRuleBudgetChange) -> BudgetChangeDecided:
    """The change's decision as an event, the rule's budget after it as ``now_*``."""
    assert change.decided_at is not None
    return BudgetChangeDecided(
        change_id=change.id, rule_id=rule.id, rule_name=rule.name, status=change.status.value,
        from_cap_minor=change.from_cap_minor, from_currency=change.from_currency,
        to_cap_minor=change.to_cap_minor, to_currency=change.to_currency,
        requested_by_id=change.requested_by_id, decided_by_id=change.decided_by_id,
        decision_reason=change.decision_reason,
        decided_at=change.decided_at, now_cap_minor=rule.budget_cap_minor,
        now_currency=rule.currency,
    )  # fmt: skip


async def _budget_errors(
    session: AsyncSession, rule: IncentiveRule, cap: int | None, currency: str, field: str
) -> list[DomainError]:
    """What is wrong with this budget for the rule (its bounds; in another currency, the
    rule's draft and approved versions' overlays must pay in it), at ``field``."""
    errors: list[DomainError] = []
    _budget(cap, currency, errors)
    if not errors and currency != rule.currency:
        # The rule's overlays must pay in its (new) currency.
        for version in await session.exec(
            select(IncentiveRuleVersion).where(
                IncentiveRuleVersion.rule_id == rule.id,
                col(IncentiveRuleVersion.status).in_([VersionStatus.DRAFT, VersionStatus.APPROVED]),
            )
        ):
            try:
                await act.validate(
                    session, rule.vendor_id, [Action.from_json(a) for a in version.actions],
                    currency,
                )  # fmt: skip
            except (DomainError, DomainErrors) as bad:
                errors.extend(
                    _stored_action_error(version, e, f"{field}.currency")
                    for e in (bad.errors if isinstance(bad, DomainErrors) else [bad])
                    if e.code is RuleErrorCode.CURRENCY_MISMATCH
                )
    return errors


async def _supersede(
    session: AsyncSession,
    clock: Clock,
    rule: IncentiveRule,
    *,
    by: uuid.UUID | None,
    reason: str = "",
) -> IncentiveRuleBudgetChange | None:
    """The rule's pending budget change, marked replaced (a new request, or a budget set
    meanwhile, takes its place), decided ``by`` the person who replaced it (an API key's
    maker for a key), now, for ``reason`` (a budget set's, if it gave one)."""
    pending = (
        await session.exec(
            select(IncentiveRuleBudgetChange).where(
                IncentiveRuleBudgetChange.rule_id == rule.id,
                IncentiveRuleBudgetChange.status == BudgetChangeStatus.PENDING,
            )
        )
    ).first()
    if pending is None:
        return None
    _decide(pending, BudgetChangeStatus.SUPERSEDED, by, clock.now(), reason)
    session.add(pending)
    await session.flush()  # before a new pending change: one pending per rule
    return pending


async def set_budget(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    rule_id: uuid.UUID,
    budget_cap_minor: int | None,
    currency: str | None = None,
    reason: str = "",
) -> BudgetOutcome:
    """Set (None: remove) the cap on what the rule's rate overlays may pay; ``currency``
    None keeps the rule's (removing a cap never changes the currency).

    A tightening (a cap where there was none, a lower cap) applies at once. Loosening
    (``loosens``) needs a reason and is only asked for: a pending change, replacing an
    earlier pending one, that a second vendor admin approves (``approve_budget_change``).
    A rule not yet approved too: a version's approver approves the budget they see, and a
    cap removed the moment before would otherwise go live unseen. A budget applied at once
    replaces a pending change too."""
    RULES.require(principal, RuleOp.SET_BUDGET)
    await begin_write(session)
    rule = await _rule(session, principal, rule_id)
    currency = rule.currency if currency is None else currency
    errors = await _budget_errors(session, rule, budget_cap_minor, currency, "budget_cap")
    if errors:
        raise DomainErrors(errors)
    if loosens(rule, budget_cap_minor, currency):
        reason = _reason(reason)
        requester = await _asker(session, principal)
        replaced = await _supersede(session, clock, rule, by=requester, reason=reason)
        change = IncentiveRuleBudgetChange(
            vendor_id=rule.vendor_id, rule_id=rule.id, status=BudgetChangeStatus.PENDING,
            from_cap_minor=rule.budget_cap_minor, from_currency=rule.currency,
            to_cap_minor=budget_cap_minor, to_currency=currency, reason=reason,
            requested_by_id=requester, requested_at=clock.now(),
        )  # fmt: skip
        session.add(change)
        await session.flush()
        await log_change(
            session, principal, clock, action="incentive_rule.budget_change_requested",
            entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=None,
            after=change_snapshot(change)
            | {"superseded": str(replaced.id) if replaced else None},
            reason=reason,
        )  # fmt: skip
        await _tell(session, clock, rule, BudgetChangeRequested(
            change_id=change.id, rule_id=rule.id, rule_name=rule.name,
            from_cap_minor=change.from_cap_minor, from_currency=change.from_currency,
            to_cap_minor=change.to_cap_minor, to_currency=change.to_currency, reason=reason,
            requested_by_id=requester, requested_at=change.requested_at,
            superseded_id=replaced.id if replaced else None,
        ))  # fmt: skip
        return BudgetOutcome(rule, change, applied=False)
    given = _reason(reason) if reason.strip() else None
    replaced = None
    if (budget_cap_minor, currency) != (rule.budget_cap_minor, rule.currency):
        who = await person_behind(session, principal)
        replaced = await _supersede(session, clock, rule, by=who, reason=given or "")
    before = snapshot(rule)
    rule.budget_cap_minor = budget_cap_minor
    rule.currency = currency
    rule.updated_at = clock.now()
    session.add(rule)
    await session.flush()
    await log_change(
        session, principal, clock, action="incentive_rule.budget_set",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id,
        before=before | {"superseded": None},
        after=snapshot(rule) | {"superseded": str(replaced.id) if replaced else None},
        reason=given,
    )  # fmt: skip
    if replaced is not None:
        # The admins asked to approve the replaced loosening learn it is gone, and the
        # budget the rule has instead.
        await _tell(session, clock, rule, _decided_event(rule, replaced))
    return BudgetOutcome(rule, None, applied=True)


async def _budget_change(
    session: AsyncSession,
    principal: Principal,
    change_id: uuid.UUID,
    *,
    fresh: bool = False,
) -> IncentiveRuleBudgetChange:
    statement = readable_budget_changes(principal).where(IncentiveRuleBudgetChange.id == change_id)
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    found = (await session.exec(statement)).first()
    if found is None:
        raise DomainError(RuleErrorCode.NOT_FOUND, "No such budget change.", "id")
    return found


def _must_be_pending(change: IncentiveRuleBudgetChange, done: str) -> None:
    if change.status is not BudgetChangeStatus.PENDING:
        raise DomainError(
            RuleErrorCode.NOT_PENDING,
            f"This budget change is {change.status.value.lower()}; only a pending one is {done}.",
            "id",
        )


def _decide(
    change: IncentiveRuleBudgetChange,
    status: BudgetChangeStatus,
    by: uuid.UUID | None,
    at: datetime,
    reason: str,
) -> None:
    change.status = status
    change.decided_by_id, change.decided_at, change.decision_reason = by, at, reason


async def _decided(
    session: AsyncSession, principal: Principal, change_id: uuid.UUID
) -> tuple[IncentiveRule, IncentiveRuleBudgetChange]:
    """The change's rule, locked first, then the change as it is now: an approval or a
    cancellation meanwhile (both lock the rule) is seen, not decided again."""
    rule_id = (await _budget_change(session, principal, change_id)).rule_id
    rule = await _rule(session, principal, rule_id)
    return rule, await _budget_change(session, principal, change_id, fresh=True)


async def approve_budget_change(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    change_id: uuid.UUID,
    reason: str,
) -> BudgetOutcome:
    """Four eyes on a loosening: a vendor admin other than the one who asked approves the
    pending change with a reason, and the rule's budget becomes the change's. Refused
    (BUDGET_CHANGED) when the rule's budget is no longer the one it was asked from."""
    RULES.require(principal, RuleOp.APPROVE_BUDGET_CHANGE)
    await begin_write(session)
    reason = _reason(reason)
    rule, change = await _decided(session, principal, change_id)
    live = change.status in (BudgetChangeStatus.PENDING, BudgetChangeStatus.SUPERSEDED)
    if live and (rule.budget_cap_minor, rule.currency) != (
        change.from_cap_minor,
        change.from_currency,
    ):
        raise DomainError(
            RuleErrorCode.BUDGET_CHANGED,
            "The rule's budget changed since this change was asked for; ask again.",
            "id",
        )
    _must_be_pending(change, "approved")
    _refuse_approval_without_person(principal)
    if change.requested_by_id == principal.user_id:
        raise DomainError(
            RuleErrorCode.SELF_APPROVAL,
            "Another vendor admin approves a budget change, not the one who asked for it.",
            "id",
        )
    errors = await _budget_errors(session, rule, change.to_cap_minor, change.to_currency, "id")
    if errors:  # a version drafted since, paying in the old currency
        raise DomainErrors([DomainError(e.code, e.message, "id") for e in errors])
    before = snapshot(rule)
    now = clock.now()
    rule.budget_cap_minor = change.to_cap_minor
    rule.currency = change.to_currency
    rule.updated_at = now
    _decide(change, BudgetChangeStatus.APPLIED, principal.user_id, now, reason)
    session.add(rule)
    session.add(change)
    await session.flush()
    await log_change(
        session, principal, clock, action="incentive_rule.budget_change_approved",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id,
        before=before | {"budget_change_id": None},
        after=snapshot(rule) | {"budget_change_id": str(change.id),
                                "requested_by_id": _id_text(change.requested_by_id),
                                "request_reason": change.reason},
        reason=reason,
    )  # fmt: skip
    await _tell(session, clock, rule, _decided_event(rule, change))
    return BudgetOutcome(rule, change, applied=True)


async def cancel_budget_change(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    change_id: uuid.UUID,
    reason: str,
) -> BudgetOutcome:
    """Withdraw or reject a pending budget change (any vendor admin, the one who asked
    too), with a reason; the rule's budget stays as it is."""
    RULES.require(principal, RuleOp.CANCEL_BUDGET_CHANGE)
    await begin_write(session)
    reason = _reason(reason)
    rule, change = await _decided(session, principal, change_id)
    _must_be_pending(change, "cancelled")
    who = await person_behind(session, principal)
    _decide(change, BudgetChangeStatus.CANCELLED, who, clock.now(), reason)
    session.add(change)
    await session.flush()
    await log_change(
        session, principal, clock, action="incentive_rule.budget_change_cancelled",
        entity_type=AuditEntity.INCENTIVE_RULE, entity_id=rule.id, before=None,
        after=change_snapshot(change), reason=reason,
    )  # fmt: skip
    await _tell(session, clock, rule, _decided_event(rule, change))
    return BudgetOutcome(rule, change, applied=False)


def _stored_action_error(
    version: IncentiveRuleVersion, error: DomainError, field: str
) -> DomainError:
    """An error about a stored version's action (its path ``actions.<i>.…`` names no input
    field of the request) at the request's ``field``, the version and action named in the
    message."""
    index = int((error.field or "actions.0").split(".")[1])
    return DomainError(
        error.code, f"Version {version.number}, action {index + 1}: {error.message}", field
    )


def _template_field(error: DomainError) -> DomainError:
    """A template's actions are fixed but for the group and the program the caller fills
    in: an error at ``actions.<i>.group_id`` is the input's ``group_id`` (and so for
    ``program_id``)."""
    last = (error.field or "").rsplit(".", 1)[-1]
    if (error.field or "").startswith("actions.") and last in ("group_id", "program_id"):
        return DomainError(error.code, error.message, last)
    return error


async def create_from_template(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    key: str,
    name: str | None = None,
    group_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    target_group_id: uuid.UUID | None = None,
    budget_cap_minor: int | None = None,
    currency: str | None = None,
) -> IncentiveRule:
    """A rule (a draft) from a shipped template, its blanks filled in."""
    RULES.require(principal, RuleOp.CREATE_FROM_TEMPLATE)
    template = BY_KEY.get(key)
    if template is None:
        raise DomainError(
            RuleErrorCode.UNKNOWN_TEMPLATE,
            f"No such template; the templates are: {', '.join(sorted(BY_KEY))}.",
            "template",
        )
    filled = [
        Action(**{**a.__dict__, "group_id": group_id if a.kind is act.ActionKind.GROUP_WINDOW
                  else a.group_id,
                  "program_id": program_id if a.kind is act.ActionKind.RATE_OVERLAY
                  else a.program_id})
        for a in template.actions
    ]  # fmt: skip
    try:
        return await create_rule(
            session, principal, clock, name=name or template.name,
            description=template.description, condition=template.condition, actions=filled,
            period=template.period, target_group_id=target_group_id,
            budget_cap_minor=budget_cap_minor, currency=currency, template=template.key,
        )  # fmt: skip
    except DomainErrors as bad:
        raise DomainErrors([_template_field(e) for e in bad.errors]) from None
    except DomainError as bad:
        raise _template_field(bad) from None


def parse_day(raw: str | None, today: date) -> date:
    if raw is None:
        return today
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise DomainError(RuleErrorCode.INVALID_DATE, "A date like 2026-12-05.", "date") from None
    if day > today:
        raise DomainError(RuleErrorCode.INVALID_DATE, "Today or a past date.", "date")
    return day
