"""Which subscriptions a caller may read: one statement per table, composing the access
predicate (vendor staff their vendor's, a channel manager its assigned partners', partner
users their partner's, a rep those of its own sales)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.db import for_change
from partners.access import scope
from partners.roles import Principal
from subscriptions.models import CustomerAccount, Subscription, SubscriptionChange


def readable_subscriptions(principal: Principal) -> SelectOfScalar[Subscription]:
    return select(Subscription).where(
        scope(principal, Subscription.vendor_id, Subscription.partner_id, Subscription.rep_user_id)
    )


def readable_changes(principal: Principal) -> SelectOfScalar[SubscriptionChange]:
    visible = select(Subscription.id).where(
        scope(principal, Subscription.vendor_id, Subscription.partner_id, Subscription.rep_user_id)
    )
    return select(SubscriptionChange).where(col(SubscriptionChange.subscription_id).in_(visible))


def subscriptions_matching(
    principal: Principal,
    *,
    partner_id: uuid.UUID | None = None,
    active_only: bool = False,
) -> SelectOfScalar[Subscription]:
    stmt = readable_subscriptions(principal)
    if partner_id is not None:
        stmt = stmt.where(Subscription.partner_id == partner_id)
    if active_only:
        stmt = stmt.where(Subscription.cancelled_at == None)  # noqa: E711
    return stmt.order_by(col(Subscription.ends_at), col(Subscription.id))


async def subscriptions_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Subscription]:
    if not ids:
        return {}
    rows = await session.exec(
        readable_subscriptions(principal).where(col(Subscription.id).in_(ids))
    )
    return {s.id: s for s in rows}


async def get_readable_subscription(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, *, lock: bool = False
) -> Subscription | None:
    """The subscription if the caller may see it; with ``lock``, locked to change it
    (``infra.db.for_change``)."""
    if not lock:
        found = await subscriptions_by_ids(session, principal, [subscription_id])
        return found.get(subscription_id)
    statement = readable_subscriptions(principal).where(Subscription.id == subscription_id)
    return (await session.exec(for_change(statement, Subscription))).first()


async def subscription_to_change(
    session: AsyncSession, subscription_id: uuid.UUID
) -> Subscription | None:
    """The subscription locked to change it, for the outbox's handlers (no caller to scope
    to): a sale's reversal and a billing report at once take turns, and the second sees
    the state the first left (``infra.db.for_change``)."""
    statement = select(Subscription).where(Subscription.id == subscription_id)
    return (await session.exec(for_change(statement, Subscription))).first()


async def accounts_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CustomerAccount]:
    """Accounts of subscriptions the caller has already been allowed to read."""
    if not ids:
        return {}
    rows = await session.exec(select(CustomerAccount).where(col(CustomerAccount.id).in_(ids)))
    return {a.id: a for a in rows}


async def history_of(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID
) -> list[SubscriptionChange]:
    rows = await session.exec(
        readable_changes(principal)
        .where(SubscriptionChange.subscription_id == subscription_id)
        .order_by(col(SubscriptionChange.effective_at), col(SubscriptionChange.id))
    )
    return list(rows)
