"""What earnings needs to know about sale claims, without importing the claims domain.

The sale-claim service owns risk flags and approval statistics. Earnings asks for them
through ``ClaimSignals``, which every function that needs them takes as a required
argument: the composition root (``api/composition.py``) builds the real implementation
once and passes it down, so there is no default that would silently raise no risk holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession


class ClaimSignals(Protocol):
    async def risk_flags(
        self, session: AsyncSession, vendor_id: uuid.UUID, claim_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        """Open risk flags per claim (claims without flags may be left out)."""
        ...

    async def approved_share_bp(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> int | None:
        """Approved claims / decided claims of the partner in [since, until), in basis
        points; None when unknown."""
        ...

    async def oldest_decided_claim(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> datetime | None:
        """When the oldest of the claims ``approved_share_bp`` counts over [since, until)
        was made (None: none, or unknown): the first to leave a trailing window, which
        moves the share with no decision."""
        ...
