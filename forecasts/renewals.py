"""Renewals due, as forecasts read them: the extension point the subscriptions domain fills.

The forecast pre-fill adds the renewals a partner has due in the quarter, weighted by their
renewal probability, to what its open deals suggest. Subscriptions live in another domain
(``subscriptions/``, a lower layer); the composition root passes its read function here as
``Services.renewals_due``. Until it is wired (None), the pre-fill reads deals only and says
so (``Draft.renewals_included``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession


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
