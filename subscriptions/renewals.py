"""Renewals due: live subscriptions whose current term ends within a window, each with
its renewal probability (``probability``). ``renewals_due`` is the read other domains use
(forecasts pre-fill from it); ``visible_renewals_due`` is the caller's view of it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.errors import DomainError
from infra.money import divide_rounded
from partners.roles import Principal
from subscriptions import probability
from subscriptions.errors import SubscriptionErrorCode
from subscriptions.models import (
    ChangeKind,
    CustomerAccount,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.policy import SUBSCRIPTIONS, SubscriptionOp
from subscriptions.repository import readable_subscriptions

WINDOWS = (30, 60, 90)


@dataclass(frozen=True)
class RenewalDue:
    subscription: Subscription
    account: CustomerAccount
    estimate: probability.Estimate

    @property
    def expected_amount_minor(self) -> int:
        """The term amount weighted by the probability (rounded half away from zero)."""
        amount = self.subscription.amount_minor
        return divide_rounded(amount * self.estimate.probability_bp, 10_000)


async def history(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID | None, now: datetime
) -> probability.History:
    """Renewals decided so far: renewed (renewal changes, less those a reversed sale took
    back) and not (cancelled, or past the end of the term without a renewal)."""
    renewed_q = select(
        func.coalesce(
            func.sum(case((col(SubscriptionChange.kind) == ChangeKind.RENEWED, 1), else_=-1)), 0
        )
    ).where(
        SubscriptionChange.vendor_id == vendor_id,
        col(SubscriptionChange.kind).in_([ChangeKind.RENEWED, ChangeKind.REVERTED]),
    )
    ended_q = select(func.count()).where(
        Subscription.vendor_id == vendor_id,
        or_(
            col(Subscription.status) == SubscriptionStatus.CANCELLED,
            col(Subscription.ends_at) < now,
        ),
    )
    if partner_id is not None:
        renewed_q = renewed_q.where(SubscriptionChange.partner_id == partner_id)
        ended_q = ended_q.where(Subscription.partner_id == partner_id)
    renewed = (await session.exec(renewed_q)).one()
    ended = (await session.exec(ended_q)).one()
    return probability.History(renewed=int(renewed), not_renewed=int(ended))


async def _estimates(
    session: AsyncSession, due: list[Subscription], now: datetime
) -> list[RenewalDue]:
    if not due:
        return []
    ids = [s.id for s in due]
    kinds: dict[uuid.UUID, set[ChangeKind]] = defaultdict(set)
    for sub_id, kind in await session.exec(
        select(SubscriptionChange.subscription_id, SubscriptionChange.kind)
        .where(col(SubscriptionChange.subscription_id).in_(ids))
        .where(col(SubscriptionChange.kind).in_([ChangeKind.CONTRACTED, ChangeKind.EXPANDED]))
        .distinct()
    ):
        kinds[sub_id].add(ChangeKind(kind))
    accounts = {
        a.id: a
        for a in await session.exec(
            select(CustomerAccount).where(col(CustomerAccount.id).in_({s.account_id for s in due}))
        )
    }
    vendors: dict[uuid.UUID, probability.History] = {}
    partners: dict[uuid.UUID, probability.History] = {}
    out = []
    for sub in due:
        if sub.vendor_id not in vendors:
            vendors[sub.vendor_id] = await history(session, sub.vendor_id, None, now)
        if sub.partner_id not in partners:
            partners[sub.partner_id] = await history(session, sub.vendor_id, sub.partner_id, now)
        estimate = probability.estimate(
            vendors[sub.vendor_id], partners[sub.partner_id],
            contracted=ChangeKind.CONTRACTED in kinds[sub.id],
            expanded=ChangeKind.EXPANDED in kinds[sub.id],
            term_months=sub.term_months, renewals=sub.renewals,
        )  # fmt: skip
        out.append(RenewalDue(sub, accounts[sub.account_id], estimate))
    return out


async def renewals_due(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    until: datetime,
    *,
    since: datetime | None = None,
) -> list[RenewalDue]:
    """Live subscriptions of the vendor (of one partner, when given) whose term ends in
    [since, until] (by ``until`` when ``since`` is None), soonest first, with their renewal
    probability (its history as of ``since``, else ``until``). No access check: for
    services that have decided what the caller may see (forecasts)."""
    stmt = select(Subscription).where(
        Subscription.vendor_id == vendor_id,
        Subscription.status == SubscriptionStatus.ACTIVE,
        col(Subscription.ends_at) <= until,
    )
    if since is not None:
        stmt = stmt.where(col(Subscription.ends_at) >= since)
    if partner_id is not None:
        stmt = stmt.where(Subscription.partner_id == partner_id)
    due = list(await session.exec(stmt.order_by(col(Subscription.ends_at), col(Subscription.id))))
    return await _estimates(session, due, since or until)


async def visible_renewals_due(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    within_days: int,
    partner_id: uuid.UUID | None = None,
) -> list[RenewalDue]:
    """The caller's renewals due within 30, 60 or 90 days: partner users their partner's
    (a rep those of its own sales), vendor staff every partner they may see (or one)."""
    SUBSCRIPTIONS.require(principal, SubscriptionOp.RENEWALS_READ)
    if within_days not in WINDOWS:
        raise DomainError(
            SubscriptionErrorCode.INVALID_WINDOW, "Ask for 30, 60 or 90 days.", "within_days"
        )
    now = clock.now()
    stmt = readable_subscriptions(principal).where(
        Subscription.status == SubscriptionStatus.ACTIVE,
        col(Subscription.ends_at) >= now,
        col(Subscription.ends_at) <= now + timedelta(days=within_days),
    )
    if partner_id is not None:
        stmt = stmt.where(Subscription.partner_id == partner_id)
    due = list(await session.exec(stmt.order_by(col(Subscription.ends_at), col(Subscription.id))))
    return await _estimates(session, due, now)
