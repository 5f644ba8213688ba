"""The rules of a billing change, as pure functions over a subscription's state: shared by
the GraphQL mutations (``service.report_change``) and the CSV import (``imports``), so a
change is accepted or refused the same way whichever way it arrives.

- a renewal opens the next term, from the current end, of the subscription's term (or the
  one given), at the amount given (the current one when none is);
- an expansion raises and a contraction lowers the amount of the current term;
- a cancellation ends the subscription at its instant;
- refused: a negative amount, a currency unlike the subscription's, any change before
  the subscription started or after it was cancelled, an "expansion" that does not raise
  the amount and a "contraction" that does not lower it."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime

from infra import limits
from subscriptions.errors import SubscriptionErrorCode
from subscriptions.models import ChangeKind

MAX_AMOUNT_MINOR = limits.MAX_SUBSCRIPTION_AMOUNT_MINOR  # infra.limits: the score bounds


def add_months(instant: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the last day of a shorter month)."""
    index = instant.month - 1 + months
    year, month = instant.year + index // 12, index % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class State:
    currency: str
    amount_minor: int
    term_months: int
    starts_at: datetime
    term_start: datetime
    ends_at: datetime
    renewals: int
    cancelled_at: datetime | None


@dataclass(frozen=True)
class Refusal(Exception):
    code: SubscriptionErrorCode
    message: str
    field: str


def apply(
    state: State,
    kind: ChangeKind,
    *,
    effective_at: datetime,
    amount_minor: int | None,
    currency: str | None,
    term_months: int | None = None,
) -> State:
    """The state after the change, or ``Refusal``."""
    code = SubscriptionErrorCode
    if amount_minor is not None and amount_minor < 0:
        raise Refusal(code.NEGATIVE_AMOUNT, "An amount cannot be negative.", "amount.amount")
    if amount_minor is not None and amount_minor > MAX_AMOUNT_MINOR:
        raise Refusal(code.INVALID_AMOUNT, "The amount is too large.", "amount.amount")
    if currency is not None and currency != state.currency:
        raise Refusal(
            code.CURRENCY_MISMATCH,
            f"This subscription is billed in {state.currency}, not {currency}.",
            "amount.currency",
        )
    if term_months is not None and not 1 <= term_months <= 120:
        raise Refusal(code.INVALID_TERM, "A term is 1 to 120 months.", "term_months")
    if state.cancelled_at is not None:
        raise Refusal(code.ALREADY_CANCELLED, "This subscription was cancelled.", "id")
    if effective_at < state.starts_at:
        raise Refusal(
            code.BEFORE_START,
            f"The subscription starts on {state.starts_at:%Y-%m-%d}; a change cannot be "
            "effective before that.",
            "effective_at",
        )
    match kind:
        case ChangeKind.RENEWED:
            months = term_months or state.term_months
            # Built directly rather than with dataclasses.replace: the bulk import's hot path.
            return State(
                state.currency,
                state.amount_minor if amount_minor is None else amount_minor,
                months, state.starts_at, state.ends_at, add_months(state.ends_at, months),
                state.renewals + 1, None,
            )  # fmt: skip
        case ChangeKind.EXPANDED | ChangeKind.CONTRACTED:
            if amount_minor is None:
                raise Refusal(code.REQUIRED, "Give the new recurring amount.", "amount")
            if kind is ChangeKind.EXPANDED and amount_minor <= state.amount_minor:
                raise Refusal(
                    code.NOT_AN_EXPANSION,
                    "An expansion raises the recurring amount; report a lower one as a "
                    "contraction.",
                    "amount.amount",
                )
            if kind is ChangeKind.CONTRACTED and amount_minor >= state.amount_minor:
                raise Refusal(
                    code.NOT_A_CONTRACTION,
                    "A contraction lowers the recurring amount; report a higher one as an "
                    "expansion.",
                    "amount.amount",
                )
            return State(
                state.currency, amount_minor, state.term_months, state.starts_at,
                state.term_start, state.ends_at, state.renewals, None,
            )  # fmt: skip
        case ChangeKind.CANCELLED:
            return replace(state, cancelled_at=effective_at)
        case ChangeKind.STARTED | ChangeKind.REVERTED:  # pragma: no cover - from sales
            raise ValueError("starts and reverted terms come from sales, not billing")
