"""Plain-language explanations, generated from the ledger: why earnings rose or fell, why
the rate changed, what was taken back, what is held and what clears it, and what it takes
to reach the next tier. Everything here is partner-safe: no margins, flags or notes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from earnings.coverage import Gap
from earnings.models import (
    CreditedSource,
    EntryKind,
    PayoutHold,
    PayoutStatement,
    PayoutStatus,
    ProgramKind,
)
from earnings.payouts import hold_explanation, release_words
from earnings.programs import TierStatus
from earnings.rounding import format_bp
from infra.money import Money


class ExplanationKind(StrEnum):
    EARNINGS_ROSE = "EARNINGS_ROSE"
    EARNINGS_FELL = "EARNINGS_FELL"
    EARNINGS_UNCHANGED = "EARNINGS_UNCHANGED"
    PROGRAMS = "PROGRAMS"
    RATE_ROSE = "RATE_ROSE"
    RATE_FELL = "RATE_FELL"
    PROGRAM_CHANGED = "PROGRAM_CHANGED"
    PROGRAM_STARTED = "PROGRAM_STARTED"
    PROGRAM_NOW_APPLIES = "PROGRAM_NOW_APPLIES"
    PROGRAM_NO_LONGER_APPLIES = "PROGRAM_NO_LONGER_APPLIES"
    CLAWBACK = "CLAWBACK"
    SPIFF = "SPIFF"
    DEAL_BONUS = "DEAL_BONUS"
    ADJUSTMENT = "ADJUSTMENT"
    PRIZE = "PRIZE"
    HOLD = "HOLD"
    HOLD_RELEASED = "HOLD_RELEASED"
    NOT_COVERED = "NOT_COVERED"
    NEXT_TIER = "NEXT_TIER"
    RENEWALS = "RENEWALS"
    ESCALATOR = "ESCALATOR"
    EXPANSION_BONUS = "EXPANSION_BONUS"
    RETENTION_BONUS = "RETENTION_BONUS"
    SUBSCRIPTION_CLAWBACK = "SUBSCRIPTION_CLAWBACK"
    OVERLAY_WITHDRAWN = "OVERLAY_WITHDRAWN"


@dataclass(frozen=True)
class Explanation:
    kind: ExplanationKind
    text: str
    amount_minor: int | None = None


def _m(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def explain_total(current: int, previous: int, currency: str) -> Explanation:
    diff = current - previous
    if diff > 0:
        return Explanation(
            ExplanationKind.EARNINGS_ROSE,
            f"You earned {_m(current, currency)} in this period, {_m(diff, currency)} more than "
            f"in the previous period ({_m(previous, currency)}).",
            diff,
        )
    if diff < 0:
        return Explanation(
            ExplanationKind.EARNINGS_FELL,
            f"You earned {_m(current, currency)} in this period, {_m(-diff, currency)} less than "
            f"in the previous period ({_m(previous, currency)}).",
            diff,
        )
    return Explanation(
        ExplanationKind.EARNINGS_UNCHANGED,
        f"You earned {_m(current, currency)} in this period, the same as in the previous period.",
        0,
    )


def explain_programs(
    totals: Sequence[tuple[str, ProgramKind, int]], currency: str
) -> list[Explanation]:
    """Which programs the period's earnings came from, a bonus program said to be on top:
    "Your earnings came from Partner Rewards (base program): 80.00 USD; Pilot (bonus
    program, paid on top of your base program): 10.00 USD." """
    if not totals:
        return []
    parts = [
        f"{name} ("
        + ("bonus program, paid on top of your base program" if kind is ProgramKind.BONUS
           else "base program")
        + f"): {_m(total, currency)}"
        for name, kind, total in totals
    ]  # fmt: skip
    return [
        Explanation(
            ExplanationKind.PROGRAMS,
            f"Your earnings came from {'; '.join(parts)}.",
            sum(total for _, _, total in totals),
        )
    ]


def _level(status: TierStatus) -> str:
    rate = status.rate_bp
    if rate is not None:
        return format_bp(rate)
    return status.tier.name if status.tier else "no tier"


def explain_rate(previous: TierStatus | None, current: TierStatus | None) -> list[Explanation]:
    if previous is None or current is None:
        return []
    cur = current.currency
    out: list[Explanation] = []
    before, after = _level(previous), _level(current)
    prev_uplift = previous.tier.uplift_bp if previous.tier else 0
    cur_uplift = current.tier.uplift_bp if current.tier else 0
    revenue = _m(current.qualified_revenue_minor, cur)
    window = f"{current.window_days}-day qualified revenue"
    if cur_uplift > prev_uplift and current.tier is not None:
        out.append(
            Explanation(
                ExplanationKind.RATE_ROSE,
                f"Your rate rose from {before} to {after} because your {window} reached "
                f"{revenue}, above the {current.tier.name} threshold of "
                f"{_m(current.tier.threshold_minor, cur)}.",
            )
        )
    elif cur_uplift < prev_uplift and previous.tier is not None:
        lost = previous.tier
        if current.reached is not None and current.reached.threshold_minor >= lost.threshold_minor:
            why = (
                f"{'; '.join(current.gate_failures)}, although your {window} of {revenue} "
                f"reaches the {lost.name} threshold"
            )
        else:
            why = (
                f"your {window} fell to {revenue}, below the {lost.name} threshold of "
                f"{_m(lost.threshold_minor, cur)}"
            )
        out.append(
            Explanation(
                ExplanationKind.RATE_FELL, f"Your rate fell from {before} to {after} because {why}."
            )
        )
    # A new version's changes (any field) are explained by earnings.changes.
    return out


def explain_entries(
    sums: Mapping[EntryKind, int],
    currency: str,
    *,
    clawbacks: Sequence[tuple[uuid.UUID, Mapping[str, Any]]] = (),
    spiff_skus: set[str] | None = None,
    subscription_clawbacks: Sequence[tuple[uuid.UUID, Mapping[str, Any], int]] = (),
) -> list[Explanation]:
    """From the period's sums per kind, its clawbacks of reversed sales (source event,
    inputs: for the reversals and their reasons), those of cancelled subscriptions (source
    event, inputs, amount) and the SKUs its spiffs were paid on."""
    reasons = {str(inputs.get("reason", "")) for _, inputs in clawbacks}
    reversed_sales = {event_id for event_id, _ in clawbacks}
    spiff_skus = spiff_skus or set()
    out = []
    recurring_taken = sum(amount for _, _, amount in subscription_clawbacks)
    sale_taken = sums.get(EntryKind.CLAWBACK, 0) - recurring_taken
    if sale_taken:
        n = len(reversed_sales)
        why = ", ".join(sorted(r for r in reasons if r))
        out.append(
            Explanation(
                ExplanationKind.CLAWBACK,
                f"{_m(-sale_taken, currency)} was taken back because {n} "
                f"sale{'s were' if n > 1 else ' was'} reversed" + (f" ({why})." if why else "."),
                sale_taken,
            )
        )
    if recurring_taken:
        cancelled = {str(inputs.get("subscription_id")) for _, inputs, _ in subscription_clawbacks}
        windows = sorted(
            {int(inputs.get("clawback_days", 0)) for _, inputs, _ in subscription_clawbacks}
        )
        n = len(cancelled)
        out.append(
            Explanation(
                ExplanationKind.SUBSCRIPTION_CLAWBACK,
                f"{_m(-recurring_taken, currency)} was taken back because {n} "
                f"subscription{'s were' if n > 1 else ' was'} cancelled within the clawback "
                f"window ({', '.join(f'{d} days' for d in windows)} of the term's start): "
                "what that term's renewal and expansions earned.",
                recurring_taken,
            )
        )
    recurring = (
        (EntryKind.RENEWAL_COMMISSION, ExplanationKind.RENEWALS,
         "Renewals of your customers' subscriptions added {}."),
        (EntryKind.ESCALATOR, ExplanationKind.ESCALATOR,
         "Multi-year escalators on renewed multi-year terms added {}."),
        (EntryKind.EXPANSION_BONUS, ExplanationKind.EXPANSION_BONUS,
         "Expansion bonuses on your customers' net increases added {}."),
        (EntryKind.RETENTION_BONUS, ExplanationKind.RETENTION_BONUS,
         "Retention bonuses for customers still active after the program's months added {}."),
    )  # fmt: skip
    for entry_kind, kind, text in recurring:
        if sums.get(entry_kind):
            out.append(
                Explanation(kind, text.format(_m(sums[entry_kind], currency)), sums[entry_kind])
            )
    if sums.get(EntryKind.SPIFF):
        out.append(
            Explanation(
                ExplanationKind.SPIFF,
                f"Spiffs added {_m(sums[EntryKind.SPIFF], currency)} "
                f"({', '.join(sorted(spiff_skus))}).",
                sums[EntryKind.SPIFF],
            )
        )
    if sums.get(EntryKind.DEAL_BONUS):
        out.append(
            Explanation(
                ExplanationKind.DEAL_BONUS,
                f"Won registered deals added {_m(sums[EntryKind.DEAL_BONUS], currency)}.",
                sums[EntryKind.DEAL_BONUS],
            )
        )
    # Adjustments are explained one by one, with their note: earnings.changes.
    if sums.get(EntryKind.PRIZE):
        out.append(
            Explanation(
                ExplanationKind.PRIZE,
                f"Contest prizes you won added {_m(sums[EntryKind.PRIZE], currency)}.",
                sums[EntryKind.PRIZE],
            )
        )
    return out


def explain_hold(hold: PayoutHold, statement: PayoutStatement) -> Explanation:
    why, clears = hold_explanation(hold)
    month = f"{statement.period_start:%B %Y}"
    return Explanation(
        ExplanationKind.HOLD,
        f"Your payout for {month} ({_m(statement.total_minor, statement.currency)}) is held. "
        f"{why} {clears}",
        statement.total_minor,
    )


def explain_release(hold: PayoutHold, statement: PayoutStatement) -> Explanation:
    month = f"{statement.period_start:%B %Y}"
    still = (
        " It is still held for another reason."
        if statement.status is PayoutStatus.HELD
        else " It now goes through the usual approval before it is paid."
        if statement.status is PayoutStatus.PENDING
        else ""
    )
    return Explanation(
        ExplanationKind.HOLD_RELEASED,
        f"The hold on your payout for {month} ({_m(statement.total_minor, statement.currency)})"
        f" was {release_words(hold)}{still}",
        statement.total_minor,
    )


def explain_uncovered(
    sales: Sequence[tuple[CreditedSource, Gap]], currency: str
) -> list[Explanation]:
    """Approved sales that earned nothing, grouped by why: "Your approved sale of 400.00 EUR
    earned nothing: no program pays on sales in EUR." The amount is the sales' revenue when
    they are in the summary's currency."""
    groups: dict[tuple[str, str], list[int]] = {}
    for source, gap in sales:
        groups.setdefault((source.currency, gap.reason()), []).append(source.revenue_minor)
    out = []
    for (in_currency, reason), amounts in groups.items():
        total = _m(sum(amounts), in_currency)
        what = (
            f"Your approved sale of {total}"
            if len(amounts) == 1
            else f"Your {len(amounts)} approved sales ({total})"
        )
        out.append(
            Explanation(
                ExplanationKind.NOT_COVERED,
                f"{what} earned nothing: {reason}. Ask your channel manager which programs "
                "apply to you.",
                sum(amounts) if in_currency == currency else None,
            )
        )
    return out


def explain_next_tier(status: TierStatus | None) -> list[Explanation]:
    if status is None or status.next_tier is None or status.amount_to_next_minor is None:
        return []
    nxt = status.next_tier
    current_uplift = status.tier.uplift_bp if status.tier else 0
    gain = nxt.uplift_bp - current_uplift
    return [
        Explanation(
            ExplanationKind.NEXT_TIER,
            f"Another {_m(status.amount_to_next_minor, status.currency)} of qualified revenue "
            f"within {status.window_days} days moves you to {nxt.name}"
            + (f" (+{format_bp(gain)} on every sale)." if gain > 0 else "."),
            status.amount_to_next_minor,
        )
    ]


def period_label(start: datetime, end: datetime) -> str:
    return f"{start:%d %b %Y} - {end:%d %b %Y}"


def explain_withdrawn(
    withdrawn: Sequence[tuple[Mapping[str, Any], int]], currency: str
) -> list[Explanation]:
    """What withdrawn incentive overlays took back or gave back in the period
    (``earnings.withdrawals``; inputs and amount of each entry): one sentence."""
    if not withdrawn:
        return []

    def total(kind: str) -> int:
        return sum(amount for inputs, amount in withdrawn if _withdrawn_kind(inputs) == kind)

    unpaid, paid, pending = total("this"), total("paid"), total("pending")
    parts = []
    if unpaid:
        parts.append(
            f"{_m(abs(unpaid), currency)} of incentive overlay earnings not yet paid out was "
            + ("reversed" if unpaid < 0 else "given back")
        )
    if paid:
        parts.append(
            f"{_m(abs(paid), currency)} already paid was "
            + ("clawed back from your next payout" if paid < 0 else "paid back to you")
        )
    if pending:
        parts.append(
            f"{_m(abs(pending), currency)} on an earlier statement not yet paid out was "
            + ("taken back" if pending < 0 else "paid back")
            + " in this period's statement (the earlier statement still pays it)"
        )
    text = "An incentive promotion was withdrawn: " + " and ".join(parts) + "."
    return [Explanation(ExplanationKind.OVERLAY_WITHDRAWN, text, unpaid + paid + pending)]


def _withdrawn_kind(inputs: Mapping[str, Any]) -> str:
    """Where a withdrawal lands: "this" (reversed in the original's own statement), "paid"
    (the original's statement was paid) or "pending" (an earlier statement not yet paid)."""
    if inputs.get("paid"):
        return "paid"
    # Entries written before ``later_statement`` was recorded: not paid was reversed.
    return "pending" if inputs.get("later_statement") else "this"
