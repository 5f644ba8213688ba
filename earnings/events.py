"""The events earnings records in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from infra.events import Event

EARNINGS_CHANGED = "EarningsChanged"


@dataclass(frozen=True)
class EarningsChanged(Event):
    """A partner's earnings changed: its subscribers re-read their summaries."""

    type: ClassVar[str] = EARNINGS_CHANGED
    partner_id: uuid.UUID

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(partner_id=uuid.UUID(payload["partner_id"]))


TIER_CHANGED = "TierChanged"


@dataclass(frozen=True)
class TierChanged(Event):
    """A credit moved a partner across a tier of a program: a sale reached a higher tier,
    or a reversal (or a quality gate) dropped it to a lower one (or to the base rate).
    Partner-safe figures only: the tiers, the qualified revenue and the threshold."""

    type: ClassVar[str] = TIER_CHANGED
    partner_id: uuid.UUID
    program_id: uuid.UUID
    program_name: str
    reached: bool  # True: a higher tier than before; False: a lower one
    from_tier: str | None
    to_tier: str | None
    threshold_minor: int  # the threshold of the tier reached (or of the tier lost)
    qualified_revenue_minor: int
    window_days: int
    currency: str
    source_event_id: uuid.UUID  # the credited event that moved it

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            partner_id=uuid.UUID(payload["partner_id"]),
            program_id=uuid.UUID(payload["program_id"]),
            program_name=payload["program_name"],
            reached=bool(payload["reached"]),
            from_tier=payload.get("from_tier"),
            to_tier=payload.get("to_tier"),
            threshold_minor=int(payload["threshold_minor"]),
            qualified_revenue_minor=int(payload["qualified_revenue_minor"]),
            window_days=int(payload["window_days"]),
            currency=payload["currency"],
            source_event_id=uuid.UUID(payload["source_event_id"]),
        )
