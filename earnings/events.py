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
