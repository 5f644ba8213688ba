"""The events leaderboards record in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from infra.events import Event

CONTEST_CHANGED = "ContestChanged"


@dataclass(frozen=True)
class ContestChanged(Event):
    """A contest's settings or status changed: rebuild its boards (while it runs) and
    announce its version to every process's subscribers."""

    type: ClassVar[str] = CONTEST_CHANGED
    contest_id: uuid.UUID
    version: int

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(contest_id=uuid.UUID(payload["contest_id"]), version=int(payload["version"]))
