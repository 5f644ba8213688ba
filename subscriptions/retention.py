"""Net revenue retention of a partner's (or the vendor's) accounts
(docs/recurring.md#net-revenue-retention):

    cohort    the subscriptions live at the start of the window (now - 12 months)
    starting  their annual recurring revenue then (ARR of the amount in force)
    ending    the same subscriptions' ARR now (0 once cancelled or past their end)
    NRR       ending / starting, in basis points (rounded half away from zero)

split as ending = starting + expansion - contraction - churn, per subscription: churn is
the starting ARR of one now at 0, expansion the increase of one now higher, contraction
the decrease of one now lower. New subscriptions of the window are not in the cohort.
One figure per currency: amounts in different currencies are never added."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.money import divide_rounded
from partners.roles import Principal
from subscriptions.changes import add_months
from subscriptions.events import arr_of
from subscriptions.models import ChangeKind, Subscription, SubscriptionChange
from subscriptions.policy import SUBSCRIPTIONS, SubscriptionOp
from subscriptions.repository import readable_subscriptions

WINDOW_MONTHS = 12


@dataclass
class Retention:
    currency: str
    window_start: datetime
    window_end: datetime
    accounts: int = 0
    subscriptions: int = 0
    starting_arr_minor: int = 0
    expansion_minor: int = 0
    contraction_minor: int = 0
    churn_minor: int = 0

    @property
    def ending_arr_minor(self) -> int:
        return (
            self.starting_arr_minor + self.expansion_minor - self.contraction_minor
            - self.churn_minor
        )  # fmt: skip

    @property
    def nrr_bp(self) -> int | None:
        if self.starting_arr_minor <= 0:
            return None
        return divide_rounded(self.ending_arr_minor * 10_000, self.starting_arr_minor)


def _arr_at(changes: list[SubscriptionChange], at: datetime) -> int:
    """ARR in force at ``at``: the last change at or before it, 0 when none or cancelled."""
    current = 0
    for change in changes:
        if change.effective_at > at:
            break
        current = (
            0 if change.kind is ChangeKind.CANCELLED
            else arr_of(change.amount_after_minor, change.term_months)
        )  # fmt: skip
    return current


async def net_revenue_retention(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID | None = None,
) -> list[Retention]:
    SUBSCRIPTIONS.require(principal, SubscriptionOp.RETENTION_READ)
    now = clock.now()
    start = add_months(now, -WINDOW_MONTHS)
    stmt = readable_subscriptions(principal).where(
        col(Subscription.starts_at) <= start,
        col(Subscription.ends_at) > start,
        or_(col(Subscription.cancelled_at).is_(None), col(Subscription.cancelled_at) > start),
    )
    if partner_id is not None:
        stmt = stmt.where(Subscription.partner_id == partner_id)
    cohort = list(await session.exec(stmt))
    if not cohort:
        return []
    history: dict[uuid.UUID, list[SubscriptionChange]] = defaultdict(list)
    for change in await session.exec(
        select(SubscriptionChange)
        .where(col(SubscriptionChange.subscription_id).in_([s.id for s in cohort]))
        .order_by(col(SubscriptionChange.effective_at), col(SubscriptionChange.id))
    ):
        history[change.subscription_id].append(change)
    out: dict[str, Retention] = {}
    accounts: dict[str, set[uuid.UUID]] = defaultdict(set)
    for sub in cohort:
        r = out.setdefault(sub.currency, Retention(sub.currency, start, now))
        before = _arr_at(history[sub.id], start)
        after = 0 if sub.ends_at < now else _arr_at(history[sub.id], now)
        r.subscriptions += 1
        accounts[sub.currency].add(sub.account_id)
        r.starting_arr_minor += before
        if after == 0:
            r.churn_minor += before
        elif after > before:
            r.expansion_minor += after - before
        else:
            r.contraction_minor += before - after
    for currency, r in out.items():
        r.accounts = len(accounts[currency])
    return [out[c] for c in sorted(out)]
