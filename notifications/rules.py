"""Incentive rule firings (``incentives.events.RuleFired``) and the next best actions they
add, as notifications.

- A rule whose action is "notify vendor staff" tells the vendor's admins and the channel
  managers who look after the partner (the staff message, the rule and the partner).
- A firing the partner sees the effect of (a group window, a rate overlay, a payout hold, a
  recommendation) tells the partner's admins, in the words ``incentiveExplanations`` shows
  them (``incentives.explanations.explain``): partner-visible signals only, never the
  rule's target group (a pilot's treatment, so never who is in a pilot's control group),
  never a staff message or a skipped action.
- A new next best action of a notifying kind (``NOTIFY_KINDS``) tells every user of the
  partner once per action (``dedupe_key`` ``next_action:<action key>``): built from the
  partner's ranked list as its admin reads it (``next_actions.service``), as of the event.
- A loosening of a rule's budget asked for (``BudgetChangeRequested``) tells the vendor's
  other admins, who may approve it (four eyes): which rule, its cap then and the one asked
  for, who asked and why. Its approval or cancellation (``BudgetChangeDecided``) tells the
  admins who were told of the request but did not decide it (the one who asked among
  them), so nobody goes on to act on a decided request, and the one who asked learns the
  outcome. A tightening applied at once that replaces the pending loosening
  (``BudgetChangeDecided``, SUPERSEDED) tells them too, with the cap the rule has now.
  Vendor admins only: never a channel manager, finance or a partner user.
- A draft version written (``VersionDrafted``: a new rule's first, or a new version)
  tells the vendor's other admins, who may approve it (four eyes): which rule, the version
  number, its condition (its CEL source, as the version shows it), how often it may fire
  and its actions (in the words of the partner's explanation: ``drafted_action``), who
  wrote it, and that another vendor admin must approve it. Its approval or its discarding
  (a newer draft replaced it: ``VersionDecided``) tells the vendor's admins but the one
  who decided (so its author learns it was approved, or replaced by someone else).
  Vendor admins only, as for budgets.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.claims import ClaimSignals
from incentives.actions import ActionKind as RuleActionKind
from incentives.events import (
    BudgetChangeDecided,
    BudgetChangeRequested,
    RuleFired,
    VersionDecided,
    VersionDrafted,
)
from incentives.explanations import drafted_action, explain, parts
from incentives.models import BudgetChangeStatus, IncentiveRule, RuleFiring, VersionStatus
from incentives.repository import readable_rules, readings
from infra.outbox import OutboxEvent
from leaderboards.runtime import Leaderboards
from next_actions.actions import ActionKind, Source, Viewpoint
from next_actions.service import next_actions
from notifications.delivery import Notice, Trigger, partner_admins, to_each, vendor_admins
from notifications.models import Category
from partners.models import ManagerAssignment, Partner, User
from partners.roles import Principal, Role

# The next best actions that notify when they appear. The other kinds each have a
# notification of their own when they come about (payout_held says what clears a hold,
# claim_proof_requested, deal_expiring, prize_within_reach, tier_reached), so listing them
# here would tell the partner twice.
NOTIFY_KINDS = frozenset({ActionKind.RECOMMENDATION})


async def partner_managers(session: AsyncSession, partner_id: uuid.UUID) -> list[uuid.UUID]:
    """The active channel managers assigned to the partner."""
    rows = await session.exec(
        select(User.id)
        .join(ManagerAssignment, col(ManagerAssignment.manager_id) == col(User.id))
        .where(
            ManagerAssignment.partner_id == partner_id,
            User.role == Role.CHANNEL_MANAGER,
            col(User.active).is_(True),
        )  # fmt: skip
    )
    return list(rows)


async def rule_fired(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    fired = RuleFired.parse(event.payload)
    notices: list[Notice] = []
    if fired.notify_staff and RuleActionKind.NOTIFY_STAFF.value in fired.actions:
        partner = await session.get(Partner, fired.partner_id)
        staff = await vendor_admins(session, event.vendor_id)
        # The partner's channel managers, if their role may read the rule (a rule aimed at a
        # pilot's treatment arm is not theirs: it would tell them the partner is in the arm).
        managers = Principal(vendor_id=event.vendor_id, role=Role.CHANNEL_MANAGER)
        readable = readable_rules(managers).where(IncentiveRule.id == fired.rule_id)
        if (await session.exec(readable)).first() is not None:
            staff = [*staff, *await partner_managers(session, fired.partner_id)]
        params = {
            "rule": fired.rule_name, "version": fired.version_number,
            "partner": partner.name if partner else str(fired.partner_id),
            "message": fired.message or None, "actions": list(fired.actions),
            "cost_minor": fired.estimated_cost_minor, "currency": fired.currency,
        }  # fmt: skip
        notices += to_each(
            list(staff), event, Category.INCENTIVE, "rule_staff", params, fired.firing_id
        )
    firing = await session.get(RuleFiring, fired.firing_id)
    if firing is not None:
        # The signals' money is in their currency (recorded with the firing), not the rule's.
        [reading] = (await readings(session, [firing])).values()
        text = explain(firing.values, firing.outcomes, reading.signal_currency)
        if text is not None:
            admins = await partner_admins(session, fired.partner_id)
            # The English sentence incentiveExplanations shows, and its parts for the
            # other languages (the messages file of each builds its own sentence).
            params = {"explanation": text, "currency": reading.signal_currency,
                      **(parts(firing.values, firing.outcomes) or {})}  # fmt: skip
            notices += to_each(
                list(admins), event, Category.INCENTIVE, "rule_applied", params,
                fired.firing_id,
            )  # fmt: skip
    return notices


def next_action_trigger(
    sources: Sequence[Source], signals: ClaimSignals, leaderboards: Leaderboards
) -> Trigger:
    """The trigger for events that can add a next best action of a notifying kind (a rule's
    recommendation: ``RuleFired``), over the composed list's sources."""

    async def trigger(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
        partner_id = uuid.UUID(str(event.payload["partner_id"]))
        reader = Principal(vendor_id=event.vendor_id, role=Role.PARTNER_ADMIN,
                           partner_id=partner_id)  # fmt: skip
        view = Viewpoint(
            principal=reader, partner_id=partner_id, vendor_id=event.vendor_id,
            now=event.occurred_at, signals=signals, leaderboards=leaderboards,
        )  # fmt: skip
        found = [a for a in await next_actions(session, view, sources) if a.kind in NOTIFY_KINDS]
        if not found:
            return []
        users = list(
            await session.exec(
                select(User.id).where(User.partner_id == partner_id, col(User.active).is_(True))
            )
        )
        return [
            Notice(
                user_id=user_id,
                category=Category.NEXT_ACTION,
                kind=f"next_action_{action.kind.value.lower()}",
                dedupe_key=f"next_action:{action.key}",
                params={
                    "title": action.title,
                    "why": action.why,
                    "due_at": action.due_at,
                    "link": action.link,
                    "code": action.code,
                },
                subject_id=action.subject_id,
            )  # fmt: skip
            for action in found
            for user_id in users
        ]

    return trigger


async def _person(session: AsyncSession, user_id: uuid.UUID | None) -> str | None:
    """How a message names a vendor admin: the display name and e-mail address (None: an
    API key with no known maker)."""
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None:
        return None
    return f"{user.display_name} <{user.email}>" if user.display_name else user.email


def _caps(change: BudgetChangeRequested | BudgetChangeDecided) -> dict[str, object]:
    return {
        "rule": change.rule_name,
        "from_minor": change.from_cap_minor, "from_currency": change.from_currency,
        "to_minor": change.to_cap_minor, "to_currency": change.to_currency,
    }  # fmt: skip


async def _other_admins(
    session: AsyncSession, vendor_id: uuid.UUID, but: uuid.UUID | None
) -> list[uuid.UUID]:
    return [a for a in await vendor_admins(session, vendor_id) if a != but]


async def budget_change_requested(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A budget loosening asked for: to the vendor's admins but the one who asked."""
    asked = BudgetChangeRequested.parse(event.payload)
    params = _caps(asked) | {
        "requester": await _person(session, asked.requested_by_id), "reason": asked.reason,
        "replaces": asked.superseded_id is not None,
    }  # fmt: skip
    admins = await _other_admins(session, event.vendor_id, asked.requested_by_id)
    return to_each(
        admins, event, Category.RULE_GOVERNANCE, "rule_budget_change_requested", params,
        asked.change_id,
    )  # fmt: skip


async def budget_change_decided(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A budget loosening approved, cancelled, or replaced by a tightening applied at once:
    to the vendor's admins but the one who decided (the one who asked is told, unless they
    withdrew or replaced it themselves)."""
    decided = BudgetChangeDecided.parse(event.payload)
    kinds = {
        BudgetChangeStatus.APPLIED.value: "rule_budget_change_approved",
        BudgetChangeStatus.CANCELLED.value: "rule_budget_change_cancelled",
        BudgetChangeStatus.SUPERSEDED.value: "rule_budget_change_superseded",
    }
    kind = kinds.get(decided.status)
    if kind is None:
        return []
    params = _caps(decided) | {
        "requester": await _person(session, decided.requested_by_id),
        "decider": await _person(session, decided.decided_by_id),
        "withdrawn": decided.decided_by_id is not None
        and decided.decided_by_id == decided.requested_by_id,
        "reason": decided.decision_reason,
        "now_minor": decided.now_cap_minor, "now_currency": decided.now_currency,
    }  # fmt: skip
    admins = await _other_admins(session, event.vendor_id, decided.decided_by_id)
    return to_each(admins, event, Category.RULE_GOVERNANCE, kind, params, decided.change_id)


async def version_drafted(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A draft version waiting for approval: to the vendor's admins but its author."""
    drafted = VersionDrafted.parse(event.payload)
    params = {
        "rule": drafted.rule_name, "version": drafted.version_number,
        "author": await _person(session, drafted.author_id),
        "condition": drafted.condition, "period": drafted.period,
        # The English words (incentives.explanations) and their parts, for the other
        # languages' messages files to word.
        "summary": [drafted_action(a) for a in drafted.actions],
        "actions": [
            {k: a[k] for k in ("kind", "days", "group_name", "program_name", "delta_bp",
                               "partner_reason", "title", "message") if k in a}
            for a in drafted.actions
        ],
        "replaces": drafted.replaced_number,
    }  # fmt: skip
    admins = await _other_admins(session, event.vendor_id, drafted.author_id)
    return to_each(
        admins, event, Category.RULE_GOVERNANCE, "rule_version_drafted", params,
        drafted.version_id,
    )  # fmt: skip


async def version_decided(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
    """A draft version approved or discarded: to the vendor's admins but the one who
    decided (its author is told, unless they replaced it themselves)."""
    decided = VersionDecided.parse(event.payload)
    kinds = {
        VersionStatus.APPROVED.value: "rule_version_approved",
        VersionStatus.DISCARDED.value: "rule_version_discarded",
    }
    kind = kinds.get(decided.status)
    if kind is None:
        return []
    params = {
        "rule": decided.rule_name, "version": decided.version_number,
        "author": await _person(session, decided.author_id),
        "decider": await _person(session, decided.decided_by_id),
        "own": decided.author_id is not None and decided.author_id == decided.decided_by_id,
        "reason": decided.reason, "replaced_by": decided.replaced_by_number,
        "paused": decided.paused,
    }  # fmt: skip
    admins = await _other_admins(session, event.vendor_id, decided.decided_by_id)
    return to_each(admins, event, Category.RULE_GOVERNANCE, kind, params, decided.version_id)
