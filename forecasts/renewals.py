"""Renewals due, as forecasts read them.

The forecast pre-fill adds the renewals a partner has due in the quarter, weighted by their
renewal probability, to what its open deals suggest. The composition root passes
``subscription_renewals`` (over ``subscriptions.renewals.renewals_due``) to the schema as
``Services.renewals_due``; without one (None) the pre-fill reads deals only and says so
(``Draft.renewals_included``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from catalogue.product_lines import line_of
from subscriptions.renewals import renewals_due


@dataclass(frozen=True)
class DueRenewal:
    product_line: str
    amount_minor: int  # the recurring amount up for renewal in the period
    currency: str
    probability_bp: int  # the renewal-probability model's estimate


class RenewalsDue(Protocol):
    async def __call__(
        self,
        session: AsyncSession,
        *,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        start: datetime,
        end: datetime,
    ) -> list[DueRenewal]: ...


async def subscription_renewals(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    start: datetime,
    end: datetime,
) -> list[DueRenewal]:
    """The partner's live subscriptions whose term ends in ``[start, end)``: the term's
    amount, the product line of its SKU, and the subscriptions domain's renewal probability."""
    due = [
        r
        for r in await renewals_due(session, vendor_id, partner_id, end, since=start)
        if r.subscription.ends_at < end
    ]
    if not due:
        return []
    skus = {r.subscription.sku for r in due}
    categories = dict(
        (
            await session.exec(
                select(Product.sku, Product.category).where(
                    Product.vendor_id == vendor_id, col(Product.sku).in_(skus)
                )
            )
        ).all()
    )
    return [
        DueRenewal(
            product_line=line_of(categories.get(r.subscription.sku, "")),
            amount_minor=r.subscription.amount_minor,
            currency=r.subscription.currency,
            probability_bp=r.estimate.probability_bp,
        )
        for r in due
    ]
