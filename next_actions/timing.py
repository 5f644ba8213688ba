"""When time alone changes a partner's next actions, with no event to say so: a listed
action's due time passes (a protected deal's protection ends, a recommendation expires, a
contest ends), a sale leaves the tier's trailing window (the amount to the next tier
grows) or a decided claim does (the approved share a tier's gate reads), a deal's "ends
in N days" counts down a day, a protected deal comes within the warning period, a
contest with prizes starts, a program version dated later takes effect, a timed group
membership (an incentive rule's window) ends (the BASE program its next tier reads). The live list
(``nextActionsChanged``) re-reads at the next such instant, as the contest feeds do at
their boundaries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus
from deal_registration.registrations.repository import readable_registrations
from earnings.models import ProgramVersion
from leaderboards.models import Contest, ContestStatus
from leaderboards.repository import readable_contests
from next_actions.actions import ActionKind, NextAction, Viewpoint
from next_actions.sources import PROTECTION_WARNING
from partners.group_models import PartnerGroupMembership

DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)


def listed_change(actions: Iterable[NextAction], now: datetime) -> datetime | None:
    """The next instant after ``now`` at which time alone changes one of these listed
    actions: its due time (it leaves the list then), its own ``changes_at`` (the next tier's
    amount as a sale leaves the trailing window), and for a deal's protection the instant
    its "ends in N days" becomes N - 1 (``(expires_at - now).days`` drops just after
    ``expires_at - N days``)."""
    found: list[datetime] = []
    for action in actions:
        if action.changes_at is not None and action.changes_at > now:
            found.append(action.changes_at)
        if action.due_at is None or action.due_at <= now:
            continue
        found.append(action.due_at)
        if action.kind is ActionKind.DEAL_PROTECTION_EXPIRING:
            days = (action.due_at - now) // DAY
            if days > 0:
                found.append(action.due_at - days * DAY + TICK)
    return min(found, default=None)


async def coming(session: AsyncSession, view: Viewpoint) -> datetime | None:
    """The next instant after ``now`` at which time alone changes the list beyond its
    listed actions: a protected deal of the reader's coming within the warning period, a
    readable contest with prizes starting (whether its participant is then within reach
    is read at that instant), a program version or the partner's groups changing (its
    next tier)."""
    deal = (
        await session.exec(
            readable_registrations(view.principal)
            .where(
                DealRegistration.partner_id == view.partner_id,
                DealRegistration.status == DealStatus.APPROVED,
                col(DealRegistration.is_protected).is_(True),
                col(DealRegistration.expires_at) > view.now + PROTECTION_WARNING,
            )
            .order_by(col(DealRegistration.expires_at))
            .limit(1)
        )
    ).first()
    contest = (
        await session.exec(
            readable_contests(view.principal)
            .where(Contest.status == ContestStatus.SCHEDULED, col(Contest.starts_at) > view.now)
            .order_by(col(Contest.starts_at))
            .limit(1)
        )
    ).first()
    # A program version dated later takes effect then (the next tier's amount and uplift).
    version_starts = await session.scalar(
        select(func.min(ProgramVersion.effective_from)).where(
            ProgramVersion.vendor_id == view.vendor_id, ProgramVersion.effective_from > view.now
        )
    )
    # A timed membership of the partner's ends then: its groups, so its BASE program.
    window_ends = await session.scalar(
        select(func.min(PartnerGroupMembership.left_at)).where(
            PartnerGroupMembership.vendor_id == view.vendor_id,
            PartnerGroupMembership.partner_id == view.partner_id,
            col(PartnerGroupMembership.left_at) > view.now,
        )
    )
    warn = deal.expires_at if deal is not None else None
    starts = contest.starts_at if contest is not None else None
    found = [
        at
        for at in (warn - PROTECTION_WARNING if warn else None, starts, version_starts, window_ends)
        if at
    ]
    return min(found, default=None)


async def next_change(
    session: AsyncSession, view: Viewpoint, actions: Iterable[NextAction]
) -> datetime | None:
    """The next instant at which the list read at ``view.now`` may change with no event."""
    found = [at for at in (listed_change(actions, view.now), await coming(session, view)) if at]
    return min(found, default=None)
