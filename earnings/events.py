"""The events earnings records in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event

EARNINGS_CHANGED = "EarningsChanged"
PAYOUT_STATEMENT_STATUS_CHANGED = "PayoutStatementStatusChanged"


@dataclass(frozen=True)
class EntryCreated:
    """One ledger entry a change wrote: its kind, amount and the plain-language rule the
    partner reads (``EarningEntry.rule``)."""

    entry_id: uuid.UUID
    kind: str
    amount_minor: int
    currency: str
    explanation: str
    program_id: uuid.UUID | None
    rep_user_id: uuid.UUID | None
    source_event_id: uuid.UUID
    effective_at: datetime
    booked_at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        program_id, rep = payload.get("program_id"), payload.get("rep_user_id")
        return cls(
            entry_id=uuid.UUID(payload["entry_id"]),
            kind=payload["kind"],
            amount_minor=int(payload["amount_minor"]),
            currency=payload["currency"],
            explanation=payload["explanation"],
            program_id=uuid.UUID(program_id) if program_id else None,
            rep_user_id=uuid.UUID(rep) if rep else None,
            source_event_id=uuid.UUID(payload["source_event_id"]),
            effective_at=datetime.fromisoformat(payload["effective_at"]),
            booked_at=datetime.fromisoformat(payload["booked_at"]),
        )


@dataclass(frozen=True)
class EarningsChanged(Event):
    """A partner's earnings changed: its subscribers re-read their summaries. ``entries``
    lists the ledger entries the change wrote (a credit, a clawback, an adjustment; none
    for a payout decision), so consumers that want one notice per entry (webhooks,
    notifications) derive it from this event: no second outbox row per credit."""

    type: ClassVar[str] = EARNINGS_CHANGED
    partner_id: uuid.UUID
    entries: list[EntryCreated] = field(default_factory=list)
    # A credit of a sale claim's approval or reversal: when that claim decision happened
    # (its SaleApproved / SaleReversed event's instant). Signals count the decision with
    # the credit (the claim's notice says ``credit_follows`` and is left to this event).
    source_at: datetime | None = None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        at = payload.get("source_at")
        return cls(
            partner_id=uuid.UUID(payload["partner_id"]),
            entries=[EntryCreated.parse(e) for e in payload.get("entries", [])],
            source_at=datetime.fromisoformat(at) if at else None,
        )


@dataclass(frozen=True)
class PayoutStatementStatusChanged(Event):
    """A payout statement was generated or changed status (PENDING, HELD, APPROVED, PAID).
    ``from_status`` is None when it was generated; ``reason`` is the hold reason
    (``HoldReason``) of a hold placed or released, never the internal note."""

    type: ClassVar[str] = PAYOUT_STATEMENT_STATUS_CHANGED
    statement_id: uuid.UUID
    partner_id: uuid.UUID
    from_status: str | None
    to_status: str
    reason: str | None
    currency: str
    total_minor: int
    entry_count: int
    period_start: datetime
    period_end: datetime
    at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            statement_id=uuid.UUID(payload["statement_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            from_status=payload.get("from_status"),
            to_status=payload["to_status"],
            reason=payload.get("reason"),
            currency=payload["currency"],
            total_minor=int(payload["total_minor"]),
            entry_count=int(payload["entry_count"]),
            period_start=datetime.fromisoformat(payload["period_start"]),
            period_end=datetime.fromisoformat(payload["period_end"]),
            at=datetime.fromisoformat(payload["at"]),
        )


PROGRAM_CHANGED = "ProgramChanged"


@dataclass(frozen=True)
class ProgramChanged(Event):
    """A program was created or got a new version (``version_number``, in force from
    ``effective_from``): every partner it may apply to has new terms, with no event of its
    own (live next actions re-read: the next tier's amount and uplift)."""

    type: ClassVar[str] = PROGRAM_CHANGED
    program_id: uuid.UUID
    version_number: int
    effective_from: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            program_id=uuid.UUID(payload["program_id"]),
            version_number=int(payload["version_number"]),
            effective_from=datetime.fromisoformat(payload["effective_from"]),
        )


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
