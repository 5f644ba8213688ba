"""Which incentive rows a caller may read: rules, versions and firings are vendor-side
(vendor staff of the rule's vendor; a channel manager only the firings of its assigned
partners); partner users read only the firings and recommendations addressed to their own
partner, as explanations (``explanations``) — never the rule, its condition or values.
A firing is an organisation-level record (it read the organisation's signals and may hold
its payouts): a partner admin reads its partner's, a partner rep none (``RepAccess.NONE``,
as earnings' statements and holds). Recommendations are advice to the organisation's
people, without figures: reps read them too.

A rule aimed at a partner group the caller may not read (``partners.groups.readable_groups``:
a pilot's treatment arm, read by vendor admins and finance only) is not readable at all,
nor are its versions, budget changes and firings: its target and the partners it fired for
would tell a channel manager who is in the arm. It is answered as a rule that does not
exist."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from incentives.models import (
    BudgetChangeStatus,
    IncentiveRule,
    IncentiveRuleBudgetChange,
    IncentiveRuleVersion,
    RuleFiring,
    RuleFiringEnd,
)
from incentives.policy import RULES, RuleOp
from partners.access import RepAccess, scope
from partners.group_models import PartnerGroup, PartnerGroupMembership
from partners.groups import readable_groups
from partners.roles import Principal
from signals.maintenance import signal_currency


def readable_rules(principal: Principal) -> SelectOfScalar[IncentiveRule]:
    if not RULES.allows(principal, RuleOp.READ):
        return select(IncentiveRule).where(false())
    return select(IncentiveRule).where(
        IncentiveRule.vendor_id == principal.vendor_id,
        or_(
            col(IncentiveRule.target_group_id).is_(None),
            col(IncentiveRule.target_group_id).in_(
                readable_groups(principal).with_only_columns(col(PartnerGroup.id))
            ),
        ),
    )


def _of_readable_rules(principal: Principal, column: object) -> ColumnElement[bool]:
    return col(column).in_(readable_rules(principal).with_only_columns(col(IncentiveRule.id)))


def readable_versions(principal: Principal) -> SelectOfScalar[IncentiveRuleVersion]:
    if not RULES.allows(principal, RuleOp.READ):
        return select(IncentiveRuleVersion).where(false())
    return select(IncentiveRuleVersion).where(
        IncentiveRuleVersion.vendor_id == principal.vendor_id,
        _of_readable_rules(principal, IncentiveRuleVersion.rule_id),
    )


def readable_budget_changes(principal: Principal) -> SelectOfScalar[IncentiveRuleBudgetChange]:
    """Vendor staff of the rule's vendor, as the rule itself."""
    if not RULES.allows(principal, RuleOp.READ):
        return select(IncentiveRuleBudgetChange).where(false())
    return select(IncentiveRuleBudgetChange).where(
        IncentiveRuleBudgetChange.vendor_id == principal.vendor_id,
        _of_readable_rules(principal, IncentiveRuleBudgetChange.rule_id),
    )


async def pending_budget_changes(
    session: AsyncSession, principal: Principal, rule_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[IncentiveRuleBudgetChange]]:
    """The pending budget change of each of these rules that has one (at most one a rule),
    in one query (a loader's fetch: ``IncentiveRule.pendingBudgetChange`` on a page of
    rules)."""
    if not rule_ids:
        return {}
    rows = await session.exec(
        readable_budget_changes(principal).where(
            col(IncentiveRuleBudgetChange.rule_id).in_(list(rule_ids)),
            IncentiveRuleBudgetChange.status == BudgetChangeStatus.PENDING,
        )
    )
    return {row.rule_id: [row] for row in rows}


def readable_firings(principal: Principal) -> SelectOfScalar[RuleFiring]:
    """Vendor staff: the firings of partners they may read, of rules they may read."""
    if not RULES.allows(principal, RuleOp.READ_FIRINGS):
        return select(RuleFiring).where(false())
    return select(RuleFiring).where(
        scope(principal, RuleFiring.vendor_id, RuleFiring.partner_id),
        _of_readable_rules(principal, RuleFiring.rule_id),
    )


def partner_firings(principal: Principal) -> SelectOfScalar[RuleFiring]:
    """Partner admins: their own partner's firings (to explain; never the rule itself).
    Partner reps: none, the firings are the organisation's."""
    if not principal.is_partner or principal.partner_id is None:
        return select(RuleFiring).where(false())
    return select(RuleFiring).where(
        scope(principal, RuleFiring.vendor_id, RuleFiring.partner_id, RepAccess.NONE)
    )


async def rules_by_ids(
    session: AsyncSession, principal: Principal, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, IncentiveRule]:
    rows = await session.exec(readable_rules(principal).where(col(IncentiveRule.id).in_(ids)))
    return {r.id: r for r in rows}


async def versions_of(
    session: AsyncSession, principal: Principal, rule_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[IncentiveRuleVersion]]:
    """Every version of each of these rules, oldest first, in one query (a loader's fetch:
    ``IncentiveRule.versions`` on a page of rules)."""
    if not rule_ids:
        return {}
    rows = await session.exec(
        readable_versions(principal)
        .where(col(IncentiveRuleVersion.rule_id).in_(list(rule_ids)))
        .order_by(col(IncentiveRuleVersion.rule_id), col(IncentiveRuleVersion.number))
    )
    found: dict[uuid.UUID, list[IncentiveRuleVersion]] = {}
    for row in rows:
        found.setdefault(row.rule_id, []).append(row)
    return found


async def versions_by_ids(
    session: AsyncSession, principal: Principal, version_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[IncentiveRuleVersion]]:
    """These versions (those the caller may read), in one query (a loader's fetch:
    ``IncentiveRule.activeVersion`` on a page of rules)."""
    if not version_ids:
        return {}
    rows = await session.exec(
        readable_versions(principal).where(col(IncentiveRuleVersion.id).in_(list(version_ids)))
    )
    return {row.id: [row] for row in rows}


@dataclass(frozen=True)
class Reading:
    """What a firing's explanation reads besides the firing and its ends: the currency of
    its signal values, and when each group window it opened closed (its membership's
    ``left_at``: the window's end, or earlier when the group was archived or the partner
    taken out of it)."""

    signal_currency: str
    window_ends: dict[str, datetime]


async def readings(
    session: AsyncSession, firings: Sequence[RuleFiring]
) -> dict[uuid.UUID, Reading]:
    """The reading of each of these firings (already read through a readable statement).
    A firing recorded before firings kept their signal currency reads the vendor's signal
    currency now."""
    if not firings:
        return {}
    currencies = {
        vendor_id: await signal_currency(session, vendor_id)
        for vendor_id in sorted({f.vendor_id for f in firings if f.signal_currency is None})
    }
    windows = {
        uuid.UUID(str(o["membership_id"]))
        for f in firings
        for o in f.outcomes
        if o.get("membership_id")
    }
    left: dict[str, datetime] = {}
    if windows:
        rows = await session.exec(
            select(PartnerGroupMembership.id, PartnerGroupMembership.left_at).where(
                col(PartnerGroupMembership.id).in_(sorted(windows))
            )
        )
        left = {str(i): at for i, at in rows if at is not None}
    return {
        f.id: Reading(
            signal_currency=f.signal_currency or currencies[f.vendor_id],
            window_ends={
                str(o["membership_id"]): left[str(o["membership_id"])]
                for o in f.outcomes
                if str(o.get("membership_id")) in left
            },
        )
        for f in firings
    }


async def readings_of(
    session: AsyncSession, firing_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Reading]]:
    """``readings`` by the ids of firings already read through a readable statement (a
    loader's fetch: one reading a firing)."""
    if not firing_ids:
        return {}
    firings = list(
        await session.exec(select(RuleFiring).where(col(RuleFiring.id).in_(list(firing_ids))))
    )
    return {i: [r] for i, r in (await readings(session, firings)).items()}


async def ends_of(
    session: AsyncSession, firing_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[RuleFiringEnd]]:
    """What rule changes ended of each of these firings (already read through a readable
    statement), oldest first."""
    if not firing_ids:
        return {}
    rows = await session.exec(
        select(RuleFiringEnd)
        .where(col(RuleFiringEnd.firing_id).in_(list(firing_ids)))
        .order_by(col(RuleFiringEnd.ended_at), col(RuleFiringEnd.id))
    )
    found: dict[uuid.UUID, list[RuleFiringEnd]] = {}
    for row in rows:
        found.setdefault(row.firing_id, []).append(row)
    return found


async def firings_by_ids(
    session: AsyncSession, principal: Principal, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, RuleFiring]:
    rows = await session.exec(readable_firings(principal).where(col(RuleFiring.id).in_(ids)))
    return {f.id: f for f in rows}


async def vendor_rule_currencies(
    session: AsyncSession, principal: Principal
) -> dict[uuid.UUID, str]:
    rows = await session.exec(
        select(IncentiveRule.id, IncentiveRule.currency).where(
            IncentiveRule.vendor_id == principal.vendor_id
        )
    )
    return dict(rows.all())


async def partner_firings_newest_first(
    session: AsyncSession, principal: Principal, batch: int
) -> AsyncIterator[list[RuleFiring]]:
    """The partner's firings newest first, a batch at a time (keyset pages): the caller
    drops those it may not show and stops once it has enough, so that hidden firings never
    push visible ones out of a limit."""
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        stmt = partner_firings(principal)
        if after is not None:
            at, last = after
            stmt = stmt.where(
                or_(
                    col(RuleFiring.fired_at) < at,
                    and_(col(RuleFiring.fired_at) == at, col(RuleFiring.id) < last),
                )
            )
        rows = list(
            await session.exec(
                stmt.order_by(col(RuleFiring.fired_at).desc(), col(RuleFiring.id).desc()).limit(
                    batch
                )
            )
        )
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = (rows[-1].fired_at, rows[-1].id)
