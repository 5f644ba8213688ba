"""What the subscription tests share: a catalogue with a yearly subscription product, and a
first sale of it that starts a subscription."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from schema.context import Services
from subscriptions.models import CustomerAccount, Subscription
from tests.factories import (
    CATALOGUE,
    Product,
    Tenant,
    add_products,
    approve_sale,
    dispatch,
)

__all__ = ["add_products"]

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CLOUD = Product("NW-CLOUD-1Y", 120_000, subscription_term_months=12)
CLOUD_3Y = Product("NW-CLOUD-3Y", 300_000, subscription_term_months=36)


async def seed(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (*CATALOGUE, CLOUD, CLOUD_3Y))


async def first_sale(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
    *,
    partner: int = 0,
    amount: int = 120_000,
    customer: str = "Initech GmbH",
    sku: str = CLOUD.sku,
    currency: str = "USD",
) -> tuple[OutboxEvent, Subscription]:
    """An approved sale of a subscription product, dispatched: the subscription it started."""
    event = await approve_sale(
        db, clock, tenant, partner=partner, amount=amount, sku=sku, customer=customer,
        currency=currency,
    )  # fmt: skip
    await dispatch(services)
    async with db.session() as session:
        found = (
            await session.exec(
                select(Subscription)
                .join(CustomerAccount, CustomerAccount.id == Subscription.account_id)  # type: ignore[arg-type]
                .where(
                    Subscription.partner_id == tenant.partners[partner].id,
                    CustomerAccount.name == customer,
                    Subscription.sku == sku,
                )
            )
        ).first()
    assert found is not None
    return event, found


async def settle(services: Services) -> None:
    """Dispatch until nothing is pending: a sale's handler records subscription events,
    whose handlers then credit earnings and contests."""
    while await dispatch(services):
        pass


SUBSCRIPTIONS = """query($partnerId: ID) {
subscriptions(partnerId: $partnerId) { totalCount edges { node {
  id sku status renewals endsAt termStart amount { amountMinor currency }
  annualRecurringRevenue { amountMinor } account { name }
  history { kind source externalId amountBefore { amountMinor } amountAfter { amountMinor }
            renewalNumber }
} } } }"""

_CHANGE = """mutation($input: {input}!) {{ {name}(input: $input) {{
  subscription {{ id status renewals endsAt amount {{ amountMinor }} }}
  userErrors {{ field code message }} }} }}"""
RENEW = _CHANGE.format(input="SubscriptionRenewInput", name="subscriptionRenew")
EXPAND = _CHANGE.format(input="SubscriptionAmountChangeInput", name="subscriptionExpand")
CONTRACT = _CHANGE.format(input="SubscriptionAmountChangeInput", name="subscriptionContract")
CANCEL = _CHANGE.format(input="SubscriptionCancelInput", name="subscriptionCancel")

RENEWALS_DUE = """query($days: Int!, $partnerId: ID) {
renewalsDue(withinDays: $days, partnerId: $partnerId) {
  subscription { id sku } account { name } probabilityBp baseProbabilityBp
  expectedAmount { amountMinor } factors { code effect explanation } } }"""

NRR = """query($partnerId: ID) { netRevenueRetention(partnerId: $partnerId) {
  currency accounts subscriptions startingArr { amountMinor } expansion { amountMinor }
  contraction { amountMinor } churn { amountMinor } endingArr { amountMinor } nrrBp explanation
} }"""
