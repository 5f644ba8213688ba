"""The events subscriptions record in the outbox: one per change, the contract earnings
(recurring commissions) and leaderboards (the NEW_ARR metric) consume. Every change type
carries the same payload (``SubscriptionChanged``); ``arr_delta_minor`` is the change in
annual recurring revenue (``arr_of``): the whole ARR of a start, the increase of an
expansion, negative for a contraction or a cancellation, the difference for a renewal."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event, uuid_or_none
from infra.money import divide_rounded

SUBSCRIPTION_STARTED = "SubscriptionStarted"
SUBSCRIPTION_RENEWED = "SubscriptionRenewed"
SUBSCRIPTION_EXPANDED = "SubscriptionExpanded"
SUBSCRIPTION_CONTRACTED = "SubscriptionContracted"
SUBSCRIPTION_CANCELLED = "SubscriptionCancelled"
SUBSCRIPTION_REVERTED = "SubscriptionReverted"

SUBSCRIPTION_EVENT_TYPES = (
    SUBSCRIPTION_STARTED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_EXPANDED,
    SUBSCRIPTION_CONTRACTED,
    SUBSCRIPTION_CANCELLED,
    SUBSCRIPTION_REVERTED,
)


def arr_of(amount_minor: int, term_months: int) -> int:
    """Annual recurring revenue of ``amount_minor`` per term of ``term_months``, rounded by
    the ledger's one rule (half away from zero)."""
    return divide_rounded(amount_minor * 12, term_months)


@dataclass(frozen=True)
class SubscriptionChanged(Event):
    """A subscription changed (``kind``: STARTED, RENEWED, EXPANDED, CONTRACTED,
    CANCELLED); the outbox type is ``Subscription<Kind>``. ``change_id`` is the
    ``subscription_change`` row; ``term_start``/``term_end`` the term in force after it.
    ``source`` is who made the change: ``SALE`` or ``DEAL`` (the sale's own commission pays
    the term it adds, so earnings credits no recurring commission on it) or ``BILLING``."""

    type: ClassVar[str] = "SubscriptionChanged"
    change_id: uuid.UUID
    subscription_id: uuid.UUID
    account_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    kind: str
    sku: str
    region: str
    currency: str
    term_months: int
    amount_before_minor: int
    amount_after_minor: int
    arr_delta_minor: int
    renewal_number: int
    subscription_started_at: datetime
    term_start: datetime
    term_end: datetime
    effective_at: datetime
    source: str = "BILLING"

    def to_payload(self) -> dict[str, Any]:
        # Written out rather than through asdict: the CSV import builds a million of these.
        return {
            "change_id": str(self.change_id),
            "subscription_id": str(self.subscription_id),
            "account_id": str(self.account_id),
            "partner_id": str(self.partner_id),
            "rep_user_id": None if self.rep_user_id is None else str(self.rep_user_id),
            "kind": self.kind,
            "sku": self.sku,
            "region": self.region,
            "currency": self.currency,
            "term_months": self.term_months,
            "amount_before_minor": self.amount_before_minor,
            "amount_after_minor": self.amount_after_minor,
            "arr_delta_minor": self.arr_delta_minor,
            "renewal_number": self.renewal_number,
            "subscription_started_at": self.subscription_started_at.isoformat(),
            "term_start": self.term_start.isoformat(),
            "term_end": self.term_end.isoformat(),
            "effective_at": self.effective_at.isoformat(),
            "source": self.source,
        }

    def to_json(self) -> str:
        """``to_payload`` as JSON text, built directly (the bulk import's hot path)."""
        fixed = fixed_json(
            self.subscription_id, self.account_id, self.partner_id, self.rep_user_id, self.sku,
            self.region, self.currency, self.subscription_started_at,
        )  # fmt: skip
        return change_json(
            fixed, self.change_id, self.kind, self.term_months, self.amount_before_minor,
            self.amount_after_minor, self.arr_delta_minor, self.renewal_number,
            self.term_start, self.term_end, self.effective_at, self.source,
        )  # fmt: skip

    @property
    def event_type(self) -> str:
        return "Subscription" + self.kind.capitalize()

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            change_id=uuid.UUID(payload["change_id"]),
            subscription_id=uuid.UUID(payload["subscription_id"]),
            account_id=uuid.UUID(payload["account_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")),
            kind=payload["kind"],
            sku=payload["sku"],
            region=payload["region"],
            currency=payload["currency"],
            term_months=int(payload["term_months"]),
            amount_before_minor=int(payload["amount_before_minor"]),
            amount_after_minor=int(payload["amount_after_minor"]),
            arr_delta_minor=int(payload["arr_delta_minor"]),
            renewal_number=int(payload["renewal_number"]),
            subscription_started_at=datetime.fromisoformat(payload["subscription_started_at"]),
            term_start=datetime.fromisoformat(payload["term_start"]),
            term_end=datetime.fromisoformat(payload["term_end"]),
            effective_at=datetime.fromisoformat(payload["effective_at"]),
            source=payload.get("source", "BILLING"),
        )


def fixed_json(
    subscription_id: uuid.UUID,
    account_id: uuid.UUID,
    partner_id: uuid.UUID,
    rep_user_id: uuid.UUID | None,
    sku: str,
    region: str,
    currency: str,
    started_at: datetime,
) -> str:
    """The members of a ``SubscriptionChanged`` payload that are the subscription's own (the
    import builds them once per subscription)."""
    rep = "null" if rep_user_id is None else f'"{rep_user_id}"'
    return (
        f'"subscription_id": "{subscription_id}", "account_id": "{account_id}", '
        f'"partner_id": "{partner_id}", "rep_user_id": {rep}, "sku": {json.dumps(sku)}, '
        f'"region": {json.dumps(region)}, "currency": {json.dumps(currency)}, '
        f'"subscription_started_at": "{started_at.isoformat()}"'
    )


def change_json(
    fixed: str,
    change_id: uuid.UUID,
    kind: str,
    term_months: int,
    amount_before_minor: int,
    amount_after_minor: int,
    arr_delta_minor: int,
    renewal_number: int,
    term_start: datetime,
    term_end: datetime,
    effective_at: datetime,
    source: str = "BILLING",
) -> str:
    """A ``SubscriptionChanged`` payload as JSON text (``fixed`` from ``fixed_json``)."""
    return (
        f'{{"change_id": "{change_id}", {fixed}, "kind": "{kind}", '
        f'"term_months": {term_months}, "amount_before_minor": {amount_before_minor}, '
        f'"amount_after_minor": {amount_after_minor}, "arr_delta_minor": {arr_delta_minor}, '
        f'"renewal_number": {renewal_number}, "term_start": "{term_start.isoformat()}", '
        f'"term_end": "{term_end.isoformat()}", "effective_at": "{effective_at.isoformat()}", '
        f'"source": "{source}"}}'
    )
