"""Subscriptions started or extended by approved sales and won deals (the outbox handler's
work).

For every line of a subscription product (``Product.subscription_term_months``):

- the customer account is found by the normalised customer name the claim or deal
  carries (created when new; a deal's domain is kept on it);
- an account with a live (not cancelled) subscription of that SKU in that currency gets
  its next term: a RENEWED change from the sale, at the sale's line amount;
- otherwise a new subscription starts at the sale (or win), attributed to its partner.

Attribution (docs/recurring.md): a subscription stays with the partner whose sale started
it; billing changes never move it. It moves only when another partner's approved sale or
won deal extends it, from that term on (the partner who sold the term owns it).

Each line is applied once: its change is keyed ``sale:<event id>:<line>`` (or ``deal:``),
unique per vendor, so a re-run of the handler changes nothing. A reversal of the sale
cancels the subscriptions it started and takes back the terms it added
(``cancel_reversed``). The term a sale adds is paid by the sale's own commission: its
RENEWED change carries ``source`` SALE (or DEAL), which earnings does not credit again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from deal_registration.events import (
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    DealWon,
    Line,
    SaleApproved,
    SaleReversed,
)
from deal_registration.registrations.conflicts import normalise_name
from infra.clock import Clock
from infra.db import Database, begin_write, for_change
from infra.outbox import OutboxEvent
from subscriptions import service
from subscriptions.models import (
    ChangeKind,
    ChangeSource,
    CustomerAccount,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from subscriptions.repository import subscription_to_change

ORIGIN_TYPES = (SALE_APPROVED, DEAL_WON, SALE_REVERSED)


@dataclass(frozen=True)
class Origin:
    """What a sale or a won deal says about the subscriptions it sells."""

    vendor_id: uuid.UUID
    prefix: str  # "sale" or "deal"
    event_id: uuid.UUID
    source: ChangeSource
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    region: str
    currency: str
    customer_name: str
    customer_domain: str
    subject_id: uuid.UUID  # the claim or registration
    at: datetime
    lines: list[Line]

    @classmethod
    def of(cls, event: OutboxEvent) -> Origin:
        if event.type == SALE_APPROVED:
            sale = SaleApproved.parse(event.payload)
            return cls(
                event.vendor_id, "sale", event.id, ChangeSource.SALE, sale.partner_id,
                sale.rep_user_id, sale.region, sale.currency, sale.customer_name, "",
                sale.claim_id, sale.sold_at or sale.approved_at or event.occurred_at,
                sale.lines,
            )  # fmt: skip
        deal = DealWon.parse(event.payload)
        return cls(
            event.vendor_id, "deal", event.id, ChangeSource.DEAL, deal.partner_id,
            deal.rep_user_id, deal.region, deal.currency, deal.customer_name,
            deal.customer_domain, deal.registration_id, deal.won_at, deal.lines,
        )  # fmt: skip


async def apply_many(db: Database, clock: Clock, events: list[OutboxEvent]) -> None:
    async with db.transaction() as session:
        await begin_write(session)
        for event in events:
            if event.type == SALE_REVERSED:
                await cancel_reversed(session, clock, event)
            else:
                await apply_origin(session, clock, Origin.of(event))


async def cancel_reversed(session: AsyncSession, clock: Clock, event: OutboxEvent) -> int:
    """A sale that started subscriptions was reversed (refunded, returned): each one it
    started that is still live is cancelled at the reversal (a CANCELLED change keyed
    ``reversal:<event>:<line>``, so earnings claws back as for any cancellation). A term it
    added to an existing subscription is taken back (``_revert_term``)."""
    reversal = SaleReversed.parse(event.payload)
    started = await session.exec(
        select(SubscriptionChange).where(
            SubscriptionChange.vendor_id == event.vendor_id,
            col(SubscriptionChange.external_id).startswith(f"sale:{reversal.reverses_event_id}:"),
            col(SubscriptionChange.kind).in_([ChangeKind.STARTED, ChangeKind.RENEWED]),
        )
    )
    written = 0
    for change in list(started):
        if change.kind is ChangeKind.RENEWED:
            written += await _revert_term(session, clock, event, reversal, change)
            continue
        external_id = f"reversal:{event.id}:{change.external_id.rsplit(':', 1)[1]}"
        if await service.change_by_external_id(session, event.vendor_id, external_id):
            continue
        subscription = await subscription_to_change(session, change.subscription_id)
        if subscription is None or subscription.status is SubscriptionStatus.CANCELLED:
            continue
        when = max(reversal.reversed_at or event.occurred_at, subscription.starts_at)
        before = service.state_of(subscription)
        after = replace(before, cancelled_at=when)
        await service.record(
            session, clock, subscription, before, after, kind=ChangeKind.CANCELLED,
            source=ChangeSource.SALE, external_id=external_id, effective_at=when,
        )  # fmt: skip
        written += 1
    return written


async def _revert_term(
    session: AsyncSession,
    clock: Clock,
    event: OutboxEvent,
    reversal: SaleReversed,
    change: SubscriptionChange,
) -> int:
    """Take back the term a reversed sale added: the subscription returns to the state before
    the sale (its term, amount, renewals and attribution), as a REVERTED change keyed
    ``reversal:<event>:<line>``. Only while the sale's term is still the subscription's last
    change; once billing changed it since, the billing system corrects it."""
    external_id = f"reversal:{event.id}:{change.external_id.rsplit(':', 1)[1]}"
    if await service.change_by_external_id(session, event.vendor_id, external_id):
        return 0
    subscription = await subscription_to_change(session, change.subscription_id)
    if subscription is None or subscription.status is SubscriptionStatus.CANCELLED:
        return 0
    history = list(
        await session.exec(
            select(SubscriptionChange)
            .where(SubscriptionChange.subscription_id == subscription.id)
            .order_by(col(SubscriptionChange.recorded_at).desc(), col(SubscriptionChange.id).desc())
        )
    )
    if history[0].id != change.id:
        return 0
    previous = history[1]
    before = service.state_of(subscription)
    after = replace(
        before, amount_minor=change.amount_before_minor, term_start=previous.term_start,
        ends_at=previous.term_end, renewals=previous.renewal_number,
    )  # fmt: skip
    if previous.partner_id != subscription.partner_id:
        # Attribution goes back to the partner whose sale or deal set it before.
        subscription.partner_id = previous.partner_id
        subscription.rep_user_id, subscription.region = await _attribution_before(
            session, history[1:]
        )
    when = max(reversal.reversed_at or event.occurred_at, subscription.starts_at)
    await service.record(
        session, clock, subscription, before, after, kind=ChangeKind.REVERTED,
        source=ChangeSource.SALE, external_id=external_id, effective_at=when,
    )  # fmt: skip
    return 1


async def _attribution_before(
    session: AsyncSession, history: list[SubscriptionChange]
) -> tuple[uuid.UUID | None, str]:
    """The rep and region of the last sale or deal that set the attribution (billing changes
    never move it), read from that sale's or deal's event."""
    for change in history:
        if change.source is ChangeSource.BILLING or change.kind is ChangeKind.REVERTED:
            continue
        event = await session.get(OutboxEvent, uuid.UUID(change.external_id.split(":")[1]))
        if event is not None:
            origin = Origin.of(event)
            return origin.rep_user_id, origin.region[:32]
        break
    return None, ""


async def _account(session: AsyncSession, origin: Origin) -> CustomerAccount:
    name = origin.customer_name.strip()[:200]
    # A sale without a customer name (older claims) is an account of its own.
    key = normalise_name(name)[:200] if name else f"{origin.prefix}:{origin.subject_id}"
    found = (
        await session.exec(
            select(CustomerAccount).where(
                CustomerAccount.vendor_id == origin.vendor_id, CustomerAccount.name_key == key
            )
        )
    ).first()
    if found is not None:
        if origin.customer_domain and not found.domain:
            found.domain = origin.customer_domain[:253]
            session.add(found)
        return found
    account = CustomerAccount(
        vendor_id=origin.vendor_id, name=name or f"Customer of {origin.prefix} {origin.subject_id}",
        name_key=key, domain=origin.customer_domain[:253], created_at=origin.at,
    )  # fmt: skip
    session.add(account)
    await session.flush()
    return account


async def apply_origin(session: AsyncSession, clock: Clock, origin: Origin) -> int:
    """Start or extend the subscriptions the sale or deal sells; returns how many changes
    it wrote (0 on a re-run)."""
    skus = {line.sku for line in origin.lines if line.sku}
    if not skus:
        return 0
    products = {
        p.sku: p
        for p in await session.exec(
            select(Product).where(
                Product.vendor_id == origin.vendor_id,
                col(Product.sku).in_(skus),
                col(Product.subscription_term_months).is_not(None),
            )
        )
    }
    written = 0
    for i, line in enumerate(origin.lines):
        product = products.get(line.sku)
        if product is None or product.subscription_term_months is None:
            continue
        external_id = f"{origin.prefix}:{origin.event_id}:{i}"
        if await service.change_by_external_id(session, origin.vendor_id, external_id):
            continue
        account = await _account(session, origin)
        # Locked: a billing report that cancels it at the same moment goes first or after,
        # never under this extension (FOR UPDATE re-checks the status once it is granted).
        live = (
            await session.exec(
                for_change(
                    select(Subscription)
                    .where(
                        Subscription.account_id == account.id,
                        Subscription.sku == line.sku,
                        Subscription.currency == origin.currency,
                        Subscription.status == SubscriptionStatus.ACTIVE,
                    )
                    .order_by(col(Subscription.ends_at).desc()),
                    Subscription,
                )
            )
        ).first()
        now = clock.now()
        if live is not None and origin.at >= live.starts_at:
            before = service.state_of(live)
            after = service.extended_state(before, amount_minor=line.amount_minor, at=origin.at)
            # The partner who sold this term owns the subscription from now on.
            live.partner_id, live.rep_user_id = origin.partner_id, origin.rep_user_id
            live.region = origin.region[:32]
            await service.record(
                session, clock, live, before, after, kind=ChangeKind.RENEWED,
                source=origin.source, external_id=external_id, effective_at=origin.at,
            )  # fmt: skip
        else:
            after = service.started_state(
                amount_minor=line.amount_minor, currency=origin.currency,
                term_months=product.subscription_term_months, at=origin.at,
            )  # fmt: skip
            subscription = Subscription(
                vendor_id=origin.vendor_id, partner_id=origin.partner_id,
                rep_user_id=origin.rep_user_id, account_id=account.id, sku=line.sku,
                region=origin.region[:32], term_months=after.term_months,
                amount_minor=after.amount_minor, currency=origin.currency,
                status=SubscriptionStatus.ACTIVE, starts_at=after.starts_at,
                term_start=after.term_start, ends_at=after.ends_at, created_at=now,
                updated_at=now,
            )  # fmt: skip
            session.add(subscription)
            await session.flush()
            await service.record(
                session, clock, subscription, None, after, kind=ChangeKind.STARTED,
                source=origin.source, external_id=external_id, effective_at=origin.at,
            )  # fmt: skip
        written += 1
    return written
