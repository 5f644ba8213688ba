"""The events signals records in the outbox (``infra.events.Event``): the contract the
incentive rules consume."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Self

from infra.events import Event

SIGNALS_CHANGED = "SignalsChanged"


@dataclass(frozen=True)
class SignalsChanged(Event):
    """A partner's snapshot of ``day`` changed: ``names`` are the signals whose values
    differ from what the snapshot held before (all of them for a first snapshot). Recorded
    in the transaction that wrote the snapshot; rules that read one of the names re-run."""

    type: ClassVar[str] = SIGNALS_CHANGED
    vendor_id: uuid.UUID
    partner_id: uuid.UUID
    day: date
    names: list[str] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        return {
            "vendor_id": str(self.vendor_id),
            "partner_id": str(self.partner_id),
            "day": self.day.isoformat(),
            "names": list(self.names),
        }

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            vendor_id=uuid.UUID(payload["vendor_id"]),
            partner_id=uuid.UUID(payload["partner_id"]),
            day=date.fromisoformat(payload["day"]),
            names=[str(n) for n in payload.get("names", [])],
        )
