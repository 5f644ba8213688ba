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
from forecasts.events import CONCENTRATION_THRESHOLD_CHANGED
from incentives.events import RULE_ACTIVATED
from leaderboards.events import CONTEST_CHANGED, CONTEST_PRIZE_APPROVED
from next_actions.handlers import TRIGGERS as NEXT_ACTION_TRIGGERS
from schema.context import Services
from signals.events import SIGNALS_CHANGED
from signals.handlers import SIGNAL_SOURCE_TYPES
from subscriptions.events import (
    SUBSCRIPTION_CANCELLED,
    SUBSCRIPTION_EVENT_TYPES,
    SUBSCRIPTION_EXPANDED,
    SUBSCRIPTION_RENEWED,
    SUBSCRIPTION_STARTED,
)
from webhooks.deliveries import SOURCE_TYPES


def test_handlers_are_registered_in_the_declared_order(services: Services) -> None:
    """Live notices and contest scoring run before earnings crediting in a run (they take a
    few ms; crediting takes milliseconds a sale and nothing live waits for it); the
    concentration check (revenue and recurring revenue) runs after it, then
    the signal facts (they read what crediting wrote) and the rules that read them; then
    notifications, and webhook deliveries are made last (the sending happens in the delivery
    worker)."""
    declared = [(r.event_types, r.batched) for r in handlers(services)]
    scored = (SALE_APPROVED, SALE_REVERSED, DEAL_WON)
    assert declared == [
        ((DEAL_STATUS_CHANGED,), True),
        ((CLAIM_STATE_CHANGED,), True),
        (tuple(NEXT_ACTION_TRIGGERS), True),  # next best actions: live notices
        ((*scored, SUBSCRIPTION_STARTED, SUBSCRIPTION_EXPANDED), True),  # contest scoring
        ((CONTEST_CHANGED,), False),
        (
            (SALE_APPROVED, DEAL_WON, SALE_REVERSED),
            True,
        ),  # subscriptions started, extended or cancelled
        (scored, True),  # earnings crediting
        ((SUBSCRIPTION_RENEWED, SUBSCRIPTION_EXPANDED, SUBSCRIPTION_CANCELLED), True),
        ((EARNINGS_CHANGED,), True),
        ((CONTEST_PRIZE_APPROVED,), True),  # contest prizes credited (tv branch)
        # after crediting: concentration guardrails read the credited revenue
        ((EARNINGS_CHANGED, *SUBSCRIPTION_EVENT_TYPES, CONCENTRATION_THRESHOLD_CHANGED), True),
        (SIGNAL_SOURCE_TYPES, True),  # signals, after crediting (they read the ledger)
        ((SIGNALS_CHANGED,), True),  # incentive rules, after the snapshots they read
        ((RULE_ACTIVATED,), True),  # a rule approved, rolled back or resumed: evaluated at once
        (tuple(sorted(services.notifier.triggers)), True),  # notifications
        (SOURCE_TYPES, True),  # webhook deliveries, last
    ]


def test_the_schema_reads_the_runtime_the_dispatcher_pauses(services: Services) -> None:
    assert services.leaderboards.dispatcher is services.outbox
    assert services.fanout.runtime is services.leaderboards
