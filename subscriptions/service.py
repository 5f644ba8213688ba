"""Billing changes reported through GraphQL (renewals, expansions, contractions,
cancellations), and the one place that writes a change: the history row and its outbox
event, in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.db import begin_write
from infra.errors import DomainError
from infra.money import is_currency
from infra.outbox import record_event
from infra.text import identifier_problem
from partners.roles import Principal
from subscriptions import changes
from subscriptions.errors import SubscriptionErrorCode
from subscriptions.events import SubscriptionChanged, arr_of
from subscriptions.models import (
    ChangeKind,
    ChangeSource,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.policy import REPORT_OPS, SUBSCRIPTIONS
from subscriptions.repository import get_readable_subscription

BILLING_KINDS = (
    ChangeKind.RENEWED,
    ChangeKind.EXPANDED,
    ChangeKind.CONTRACTED,
    ChangeKind.CANCELLED,
)


def state_of(subscription: Subscription) -> changes.State:
    return changes.State(
        currency=subscription.currency,
        amount_minor=subscription.amount_minor,
        term_months=subscription.term_months,
        starts_at=subscription.starts_at,
        term_start=subscription.term_start,
        ends_at=subscription.ends_at,
        renewals=subscription.renewals,
        cancelled_at=subscription.cancelled_at,
    )


def change_row(
    subscription: Subscription,
    before: changes.State | None,
    after: changes.State,
    *,
    kind: ChangeKind,
    source: ChangeSource,
    external_id: str,
    effective_at: datetime,
    now: datetime,
    change_id: uuid.UUID | None = None,
) -> tuple[SubscriptionChange, SubscriptionChanged]:
    """The history row and the event of one change (``before`` None for a start)."""
    amount_after = 0 if kind is ChangeKind.CANCELLED else after.amount_minor
    amount_before = before.amount_minor if before is not None else 0
    arr_before = arr_of(amount_before, before.term_months) if before is not None else 0
    row = SubscriptionChange(
        vendor_id=subscription.vendor_id,
        subscription_id=subscription.id,
        partner_id=subscription.partner_id,
        kind=kind,
        source=source,
        external_id=external_id,
        effective_at=effective_at,
        amount_before_minor=amount_before,
        amount_after_minor=amount_after,
        currency=subscription.currency,
        term_months=after.term_months,
        term_start=after.term_start,
        term_end=after.ends_at,
        renewal_number=after.renewals,
        recorded_at=now,
    )
    if change_id is not None:
        row.id = change_id
    event = SubscriptionChanged(
        change_id=row.id,
        subscription_id=subscription.id,
        account_id=subscription.account_id,
        partner_id=subscription.partner_id,
        rep_user_id=subscription.rep_user_id,
        kind=kind.value,
        sku=subscription.sku,
        region=subscription.region,
        currency=subscription.currency,
        term_months=after.term_months,
        amount_before_minor=amount_before,
        amount_after_minor=amount_after,
        arr_delta_minor=arr_of(amount_after, after.term_months) - arr_before,
        renewal_number=after.renewals,
        subscription_started_at=subscription.starts_at,
        term_start=after.term_start,
        term_end=after.ends_at,
        effective_at=effective_at,
        source=source.value,
    )
    return row, event


def set_state(subscription: Subscription, state: changes.State, now: datetime) -> None:
    subscription.amount_minor = state.amount_minor
    subscription.term_months = state.term_months
    subscription.term_start = state.term_start
    subscription.ends_at = state.ends_at
    subscription.renewals = state.renewals
    subscription.cancelled_at = state.cancelled_at
    if state.cancelled_at is not None:
        subscription.status = SubscriptionStatus.CANCELLED
    subscription.updated_at = now


async def record(
    session: AsyncSession,
    clock: Clock,
    subscription: Subscription,
    before: changes.State | None,
    after: changes.State,
    *,
    kind: ChangeKind,
    source: ChangeSource,
    external_id: str,
    effective_at: datetime,
) -> SubscriptionChange:
    """Apply ``after`` to the subscription and write the change and its event."""
    now = clock.now()
    set_state(subscription, after, now)
    session.add(subscription)
    row, event = change_row(
        subscription, before, after, kind=kind, source=source, external_id=external_id,
        effective_at=effective_at, now=now,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    await record_event(
        session, clock, vendor_id=subscription.vendor_id, type=event.event_type,
        aggregate_id=subscription.id, payload=event.to_payload(), occurred_at=effective_at,
    )  # fmt: skip
    return row


async def change_by_external_id(
    session: AsyncSession, vendor_id: uuid.UUID, external_id: str
) -> SubscriptionChange | None:
    rows = await session.exec(
        select(SubscriptionChange).where(
            SubscriptionChange.vendor_id == vendor_id,
            SubscriptionChange.external_id == external_id,
        )
    )
    return rows.first()


async def report_change(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    subscription_id: uuid.UUID,
    kind: ChangeKind,
    external_id: str,
    effective_at: datetime | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
    term_months: int | None = None,
) -> Subscription:
    """The billing system reports a renewal, expansion, contraction or cancellation.
    Idempotent by ``external_id`` (the billing system's id of the change): the same change
    reported again answers the subscription and changes nothing."""
    assert kind in BILLING_KINDS
    SUBSCRIPTIONS.require(principal, REPORT_OPS[kind.value])
    external_id = external_id.strip()
    if not external_id or len(external_id) > 100:
        raise DomainError(
            SubscriptionErrorCode.REQUIRED,
            "Give the billing system's id of this change (1-100 characters).",
            "external_id",
        )
    if problem := identifier_problem(external_id):
        raise DomainError(SubscriptionErrorCode.INVALID_CHARACTERS, problem, "external_id")
    if currency is not None and not is_currency(currency):
        raise DomainError(
            SubscriptionErrorCode.INVALID_CURRENCY, "Use an ISO 4217 code like USD.",
            "amount.currency",
        )  # fmt: skip
    await begin_write(session)
    # Locked before the billing id is looked up: two reports at once (a retry, or two
    # changes) take turns, so the second finds the first's change (its billing id, the
    # state it left) instead of failing on the unique billing id or applying to a stale
    # state.
    subscription = await get_readable_subscription(session, principal, subscription_id, lock=True)
    if subscription is None:
        raise DomainError(SubscriptionErrorCode.NOT_FOUND, "No such subscription.", "id")
    done = await change_by_external_id(session, principal.vendor_id, external_id)
    if done is not None:
        if done.subscription_id == subscription.id and done.kind is kind:
            return subscription
        raise DomainError(
            SubscriptionErrorCode.EXTERNAL_ID_REUSED,
            "This billing id was already used for another change.",
            "external_id",
        )
    when = effective_at or clock.now()
    before = state_of(subscription)
    try:
        after = changes.apply(
            before, kind, effective_at=when, amount_minor=amount_minor, currency=currency,
            term_months=term_months,
        )  # fmt: skip
    except changes.Refusal as refusal:
        raise DomainError(refusal.code, refusal.message, refusal.field) from None
    await record(
        session, clock, subscription, before, after, kind=kind, source=ChangeSource.BILLING,
        external_id=external_id, effective_at=when,
    )  # fmt: skip
    return subscription


def started_state(
    *, amount_minor: int, currency: str, term_months: int, at: datetime
) -> changes.State:
    end = changes.add_months(at, term_months)
    return changes.State(
        currency=currency, amount_minor=amount_minor, term_months=term_months, starts_at=at,
        term_start=at, ends_at=end, renewals=0, cancelled_at=None,
    )  # fmt: skip


def extended_state(before: changes.State, *, amount_minor: int, at: datetime) -> changes.State:
    """A sale of the product to an account with a live subscription: the next term, from
    the current end (or from the sale, when the subscription had lapsed)."""
    start = max(before.ends_at, at)
    return replace(
        before, amount_minor=amount_minor, term_start=start,
        ends_at=changes.add_months(start, before.term_months), renewals=before.renewals + 1,
    )  # fmt: skip
