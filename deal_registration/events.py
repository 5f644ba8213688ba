"""The events partner submissions publish through the outbox (infra.outbox).

This is the contract earnings, leaderboards and the live feeds consume: event type names
and payload shapes (``infra.events.Event``). Payloads are JSON objects; ids are UUID
strings, instants ISO 8601 UTC, money is integer minor units with a currency. Producers
build payloads only through these classes; consumers parse them only through ``parse``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event, uuid_or_none

SALE_APPROVED = "SaleApproved"
SALE_REVERSED = "SaleReversed"
DEAL_APPROVED = "DealApproved"
DEAL_WON = "DealWon"
DEAL_STATUS_CHANGED = "DealStatusChanged"
DEAL_PROTECTION_CHANGED = "DealProtectionChanged"
CLAIM_STATE_CHANGED = "SaleClaimStateChanged"


@dataclass(frozen=True)
class Line:
    sku: str
    units: int
    amount_minor: int  # this line's share of the sale amount


@dataclass(frozen=True)
class SaleApproved(Event):
    """A sale claim was approved (manually or automatically): credit it."""

    type: ClassVar[str] = SALE_APPROVED
    claim_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    region: str
    currency: str
    amount_minor: int
    lines: list[Line] = field(default_factory=list)
    sold_at: datetime | None = None
    approved_at: datetime | None = None
    # The claim's customer, as the partner named it (subscriptions key accounts by it).
    customer_name: str = ""

    @property
    def units(self) -> int:
        return sum(line.units for line in self.lines)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            claim_id=uuid.UUID(payload["claim_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")),
            region=payload["region"],
            currency=payload["currency"],
            amount_minor=int(payload["amount_minor"]),
            lines=[Line(**line) for line in payload.get("lines", [])],
            sold_at=datetime.fromisoformat(payload["sold_at"]) if payload.get("sold_at") else None,
            approved_at=datetime.fromisoformat(payload["approved_at"])
            if payload.get("approved_at")
            else None,
            customer_name=payload.get("customer_name", ""),
        )


@dataclass(frozen=True)
class SaleReversed(Event):
    """An approved sale was refunded or returned: take back what it credited.
    ``reverses_event_id`` is the SaleApproved outbox event it undoes."""

    type: ClassVar[str] = SALE_REVERSED
    claim_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    region: str
    currency: str
    amount_minor: int
    reverses_event_id: uuid.UUID
    reason: str
    lines: list[Line] = field(default_factory=list)
    sold_at: datetime | None = None
    reversed_at: datetime | None = None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            claim_id=uuid.UUID(payload["claim_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")),
            region=payload["region"],
            currency=payload["currency"],
            amount_minor=int(payload["amount_minor"]),
            reverses_event_id=uuid.UUID(payload["reverses_event_id"]),
            reason=payload["reason"],
            lines=[Line(**line) for line in payload.get("lines", [])],
            sold_at=datetime.fromisoformat(payload["sold_at"]) if payload.get("sold_at") else None,
            reversed_at=datetime.fromisoformat(payload["reversed_at"])
            if payload.get("reversed_at")
            else None,
        )


@dataclass(frozen=True)
class DealApproved(Event):
    type: ClassVar[str] = DEAL_APPROVED
    registration_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    customer_domain: str
    approved_at: datetime
    protected_until: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            registration_id=uuid.UUID(payload["registration_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")),
            customer_domain=payload["customer_domain"],
            approved_at=datetime.fromisoformat(payload["approved_at"]),
            protected_until=datetime.fromisoformat(payload["protected_until"]),
        )


@dataclass(frozen=True)
class DealWon(Event):
    """A registered (approved) deal was won: earnings may pay a deal bonus, contests may
    count it."""

    type: ClassVar[str] = DEAL_WON
    registration_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    region: str
    currency: str
    amount_minor: int
    won_at: datetime
    lines: list[Line] = field(default_factory=list)
    # The registration's customer (subscriptions key accounts by it).
    customer_name: str = ""
    customer_domain: str = ""

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            registration_id=uuid.UUID(payload["registration_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")),
            region=payload["region"],
            currency=payload["currency"],
            amount_minor=int(payload["amount_minor"]),
            won_at=datetime.fromisoformat(payload["won_at"]),
            lines=[Line(**line) for line in payload.get("lines", [])],
            customer_name=payload.get("customer_name", ""),
            customer_domain=payload.get("customer_domain", ""),
        )


@dataclass(frozen=True)
class DealStatusChanged(Event):
    """A registration changed status: live notices to the vendor's and the partner's
    subscribers, who re-read it through their own visibility."""

    type: ClassVar[str] = DEAL_STATUS_CHANGED
    registration_id: uuid.UUID
    partner_id: uuid.UUID
    from_status: str | None
    to_status: str
    at: datetime


@dataclass(frozen=True)
class DealProtectionChanged(Event):
    """An approved registration's protection moved to end at ``protected_until`` (from
    ``previous_until``) with no change of status (an extension granted): what reads the
    end (next actions' expiring deals, integrations) hears it. Approval starts the window
    (``DealApproved``) and a status change ends it (``DealStatusChanged``)."""

    type: ClassVar[str] = DEAL_PROTECTION_CHANGED
    registration_id: uuid.UUID
    partner_id: uuid.UUID
    previous_until: datetime
    protected_until: datetime
    action: str  # the DealAction that moved it (GRANT_EXTENSION)
    at: datetime

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            registration_id=uuid.UUID(payload["registration_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            previous_until=datetime.fromisoformat(payload["previous_until"]),
            protected_until=datetime.fromisoformat(payload["protected_until"]),
            action=payload["action"],
            at=datetime.fromisoformat(payload["at"]),
        )


@dataclass(frozen=True)
class SaleClaimStateChanged(Event):
    """A sale claim changed state: a live notice to the partner's subscribers."""

    type: ClassVar[str] = CLAIM_STATE_CHANGED
    claim_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    state: str
    # The same transaction recorded the claim's SaleApproved or SaleReversed: its credit's
    # EarningsChanged follows (``source_at`` = this change's instant), so consumers that
    # only count the claim's day (signals) may leave the change to that event.
    credit_follows: bool = False
