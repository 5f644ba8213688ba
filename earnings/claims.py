"""What earnings needs to know about sale claims, without importing the claims domain.

The sale-claim service owns risk flags and approval statistics. Earnings asks for them
through ``ClaimSignals``; the application wires the real implementation once at start-up
(``use_claim_signals(...)`` in ``api/app.py``). Until then ``NoClaimSignals`` answers "no
flags, share unknown": no risk holds are raised and approval-share gates do not block.
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


class NoClaimSignals:
    async def risk_flags(
        self, session: AsyncSession, vendor_id: uuid.UUID, claim_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[str]]:
        return {}

    async def approved_share_bp(
        self,
        session: AsyncSession,
        vendor_id: uuid.UUID,
        partner_id: uuid.UUID,
        since: datetime,
        until: datetime,
    ) -> int | None:
        return None


_signals: ClaimSignals = NoClaimSignals()


def use_claim_signals(signals: ClaimSignals | None) -> None:
    """Install the claim service's implementation (None restores the default)."""
    global _signals
    _signals = signals if signals is not None else NoClaimSignals()


def claim_signals() -> ClaimSignals:
    return _signals
