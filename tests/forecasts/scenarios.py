"""What forecast tests build: registered deals at a stage (with product lines), quarters
relative to the test clock, and the GraphQL documents they send."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from sqlmodel import select

from catalogue.models import Product
from deal_registration.registrations.models import (
    DealRegistration,
    DealRegistrationLine,
    DealStatus,
)
from forecasts.quarters import Quarter
from infra.clock import Clock
from infra.db import Database
from tests.factories import Tenant


def next_quarter(clock: Clock) -> Quarter:
    return Quarter.of(clock.now()).next()


async def add_deal(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    *,
    partner: int = 0,
    status: DealStatus = DealStatus.APPROVED,
    value: int = 100_000_00,
    closes: date | None = None,
    submitted_at: datetime | None = None,
    closed_at: datetime | None = None,
    lines: list[tuple[str, int]] | None = None,
    currency: str = "USD",
) -> DealRegistration:
    """A registration of ``tenant.partners[partner]`` at ``status`` (``lines``: SKUs of the
    tenant's catalogue and quantities)."""
    now = clock.now()
    n = uuid.uuid4().hex[:8]
    deal = DealRegistration(
        vendor_id=tenant.vendor.id, partner_id=tenant.partners[partner].id,
        status=status, customer_name=f"Customer {n}", customer_name_key=f"customer {n}",
        customer_domain=f"c{n}.example", customer_country="DE", estimated_value_minor=value,
        currency=currency, expected_close_date=closes or (now + timedelta(days=60)).date(),
        submitted_at=submitted_at or now, closed_at=closed_at,
        expires_at=now + timedelta(days=365) if status is DealStatus.APPROVED else None,
        created_at=now, updated_at=now,
    )  # fmt: skip
    async with db.transaction() as session:
        session.add(deal)
        await session.flush()
        for sku, quantity in lines or []:
            product = (
                await session.exec(
                    select(Product).where(Product.vendor_id == tenant.vendor.id, Product.sku == sku)
                )
            ).one()
            session.add(
                DealRegistrationLine(
                    registration_id=deal.id,
                    product_id=product.id,
                    sku=sku,
                    quantity=quantity,
                    unit_list_price_minor=product.list_price_minor,
                )  # fmt: skip
            )
    return deal


SUBMIT = """mutation($input: ForecastSubmitInput!) { forecastSubmit(input: $input) {
  forecast { id quarter revision commit { amountMinor currency } bestCase { amountMinor }
             lines { productLine commit { amountMinor } bestCase { amountMinor } }
             revisions { number commit { amountMinor } prefilled note } }
  userErrors { field code } } }"""


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def line(product_line: str, commit: str, best: str) -> dict[str, object]:
    return {"productLine": product_line, "commit": usd(commit), "bestCase": usd(best)}
