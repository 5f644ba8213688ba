"""The composition root: one set of services per process, handlers in their declared order."""

from __future__ import annotations

from api.composition import handlers
from deal_registration.events import (
    CLAIM_STATE_CHANGED,
    DEAL_STATUS_CHANGED,
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
)
from earnings.events import EARNINGS_CHANGED
from leaderboards.events import CONTEST_CHANGED
from schema.context import Services
from signals.events import SIGNALS_CHANGED
from signals.handlers import SIGNAL_SOURCE_TYPES


def test_handlers_are_registered_in_the_declared_order(services: Services) -> None:
    """Live notices and contest scoring run before earnings crediting in a run (they take a
    few ms; crediting takes milliseconds a sale and nothing live waits for it); the signal
    facts last, as they read what crediting wrote."""
    declared = [(r.event_types, r.batched) for r in handlers(services)]
    scored = (SALE_APPROVED, SALE_REVERSED, DEAL_WON)
    assert declared == [
        ((DEAL_STATUS_CHANGED,), True),
        ((CLAIM_STATE_CHANGED,), True),
        (scored, True),
        ((CONTEST_CHANGED,), False),
        (scored, True),  # earnings crediting
        ((EARNINGS_CHANGED,), True),
        (SIGNAL_SOURCE_TYPES, True),  # signals, after crediting (they read the ledger)
        ((SIGNALS_CHANGED,), True),  # incentive rules, after the snapshots they read
    ]


def test_the_schema_reads_the_runtime_the_dispatcher_pauses(services: Services) -> None:
    assert services.leaderboards.dispatcher is services.outbox
    assert services.fanout.runtime is services.leaderboards
