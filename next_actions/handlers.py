"""Live next best actions: a notice per partner on the events that change what its
actions are built from (its earnings and holds, its claims, its deals, its sales, a rule's
recommendations appearing or withdrawn), published through the Hub so a subscriber on any
process re-reads its list."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from deal_registration.events import (
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
)
from earnings.events import EARNINGS_CHANGED
from earnings.models import Program, ProgramVersion
from incentives.events import RULE_EFFECTS_ENDED, RULE_FIRED
from infra.cache import TableEpochs
from infra.outbox import OutboxEvent, Registration, batch
from infra.pubsub import Hub, Listener

TRIGGERS = [
    EARNINGS_CHANGED,
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    RULE_FIRED,  # a rule's firing may recommend an action
    RULE_EFFECTS_ENDED,  # a rollback withdraws its recommendations
]


def channel(hub: Hub, partner_id: object) -> str:
    return hub.channel("next-actions", partner_id)


def handlers(hub: Hub, triggers: list[str] | None = None) -> list[Registration]:
    """``triggers`` adds other event types that carry a ``partner_id``."""

    async def publish(events: list[OutboxEvent]) -> None:
        # One notice per partner and run; a subscriber re-reads on any notice.
        last = {str(e.payload["partner_id"]): e for e in events if e.payload.get("partner_id")}
        for partner_id, event in last.items():
            await hub.publish(channel(hub, partner_id), str(event.id))

    return [batch([*TRIGGERS, *(triggers or [])], publish)]


# A program's new version or targets change every partner's next tier (its amount, what it
# adds) with no partner's event to say so: the live lists of this process re-read when
# those tables change in any process (programs change rarely; a list that did not change
# is not pushed again).
PROGRAM_TABLES = frozenset({Program.__tablename__, ProgramVersion.__tablename__})
_WAKES: weakref.WeakKeyDictionary[TableEpochs, ProgramWake] = weakref.WeakKeyDictionary()


class ProgramWake:
    """Offers a notice to each live list's listener when a program table changes (None,
    "re-read", when any table may have: a missed pub/sub notice)."""

    def __init__(self, epochs: TableEpochs) -> None:
        self._listening: set[Listener] = set()
        epochs.listen(self._changed)

    @classmethod
    def of(cls, epochs: TableEpochs) -> ProgramWake:
        """The one per process's table epochs (a listener cannot be removed from them)."""
        wake = _WAKES.get(epochs)
        if wake is None:
            wake = _WAKES[epochs] = cls(epochs)
        return wake

    @asynccontextmanager
    async def waking(self, listener: Listener) -> AsyncIterator[None]:
        self._listening.add(listener)
        try:
            yield
        finally:
            self._listening.discard(listener)

    def _changed(self, tables: frozenset[str] | None) -> None:
        if tables is None or tables & PROGRAM_TABLES:
            for listener in list(self._listening):
                listener.offer(b"programs")
