"""Deal protection expiring: a clock-driven trigger (no event marks the moment a deal's
protection comes within ``WINDOW`` of its end). The notifier's periodic pass finds approved,
protected deals whose protection ends within the window and tells the rep who registered
each and the partner's admins, once per deal and expiry (an extension that moves the
expiry notifies again when the new end comes near)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deal_registration.registrations.models import DealRegistration, DealStatus
from infra import passes
from infra.clock import Clock
from infra.db import Database
from notifications.delivery import Notice, deliver, partner_admins
from notifications.models import Category, FiredTrigger, Notification

WINDOW = timedelta(days=7)


def trigger_key(deal: DealRegistration) -> str:
    assert deal.expires_at is not None
    return f"deal-expiring:{deal.id}:{deal.expires_at.isoformat()}"


async def notify_expiring(db: Database, clock: Clock, *, email: bool) -> list[Notification]:
    """One pass; returns the notifications made (publish them). Idempotent: a deal whose
    trigger fired is skipped, and two processes racing for one deal write its trigger row
    once (the loser's transaction rolls back)."""
    now = clock.now()
    # Read first: the check runs every second, and a write transaction each time would
    # hold SQLite's write lock for nothing.
    async with db.session() as session:
        deals = list(
            await session.exec(
                select(DealRegistration).where(
                    DealRegistration.status == DealStatus.APPROVED,
                    col(DealRegistration.is_protected).is_(True),
                    col(DealRegistration.expires_at) > now,
                    col(DealRegistration.expires_at) <= now + WINDOW,
                )
            )
        )
        keys = {trigger_key(d): d for d in deals}
        fired = (
            set(
                await session.exec(
                    select(FiredTrigger.key).where(col(FiredTrigger.key).in_(list(keys)))
                )
            )
            if keys
            else set()
        )
    due = {key: deal for key, deal in keys.items() if key not in fired}
    if not due:
        return []
    made: list[Notification] = []

    async def fire(key: str) -> int:
        deal = due[key]
        async with db.transaction() as session:
            session.add(FiredTrigger(key=key, vendor_id=deal.vendor_id, fired_at=now))
            params = {"customer": deal.customer_name, "protected_until": deal.expires_at}
            admins = await partner_admins(session, deal.partner_id)
            recipients = dict.fromkeys(r for r in (deal.registered_by_id, *admins) if r is not None)
            notices = [
                Notice(
                    user_id=user_id,
                    category=Category.DEAL,
                    kind="deal_expiring",
                    dedupe_key=key,
                    params=params,
                    subject_id=deal.id,
                )  # fmt: skip
                for user_id in recipients
            ]
            await session.flush()  # the trigger row first: a racing process fails here
            delivered = await deliver(session, clock, notices, email=email)
        made.extend(delivered)  # committed
        return len(delivered)

    # A deal at a time: one that cannot be notified does not hold back the others.
    # IntegrityError: another process fired it first.
    await passes.each(
        "deal expiry notice", due, fire, expected=(IntegrityError,),
        key=lambda k: f"{k} (vendor {due[k].vendor_id})",
    )  # fmt: skip
    return made
