"""Product lines as forecasts read them (``catalogue.product_lines``: a product's line is its
catalogue category, ``OTHER`` without one): the vendor's lines, and how a registered deal's
value splits across them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from catalogue.product_lines import OTHER, line_of
from deal_registration.registrations.models import DealRegistrationLine
from earnings.rounding import divide_rounded

__all__ = ["OTHER", "deal_line_weights", "line_of", "split", "vendor_product_lines"]


async def vendor_product_lines(session: AsyncSession, vendor_id: uuid.UUID) -> list[str]:
    """The vendor's product lines (its catalogue's categories, and ``OTHER``), sorted."""
    rows = await session.exec(
        select(Product.category).where(Product.vendor_id == vendor_id).distinct()
    )
    return sorted({line_of(c) for c in rows} | {OTHER})


async def deal_line_weights(
    session: AsyncSession, deal_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Per deal, the list value of its registered lines by product line (the weights its
    estimated value is split by); deals without lines are absent."""
    weights: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    ids = list(deal_ids)
    for start in range(0, len(ids), 500):
        rows = await session.exec(
            select(
                DealRegistrationLine.registration_id,
                Product.category,
                DealRegistrationLine.quantity,
                DealRegistrationLine.unit_list_price_minor,
            )
            .join(Product, col(Product.id) == col(DealRegistrationLine.product_id))
            .where(col(DealRegistrationLine.registration_id).in_(ids[start : start + 500]))
        )
        for deal_id, category, quantity, unit in rows:
            weights[deal_id][line_of(category)] += quantity * unit
    return weights


def split(amount_minor: int, weights: dict[str, int] | None) -> dict[str, int]:
    """``amount_minor`` split across product lines in proportion to ``weights``, each share
    rounded by the ledger's rule and the rounding difference given to the largest line, so
    the shares add up to the amount exactly. No weights: all of it is ``OTHER``."""
    total = sum(weights.values()) if weights else 0
    if not weights or total <= 0:
        return {OTHER: amount_minor}
    shares = {line: divide_rounded(amount_minor * w, total) for line, w in weights.items()}
    largest = max(sorted(weights), key=lambda line: weights[line])
    shares[largest] += amount_minor - sum(shares.values())
    return shares
