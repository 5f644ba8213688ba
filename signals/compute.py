"""A snapshot's values from the facts: pure arithmetic over the trailing windows, so the
handlers, the daily job and the rebuild all compute a day the same way."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, timedelta

from signals.snapshots import Values

# The longest look-back any windowed signal needs (month over month: 60 days; 90-day rates).
LOOKBACK_DAYS = 90


@dataclass(frozen=True)
class Fact:
    """One day's facts, as the window sums read them (``signals.facts.COUNTERS``)."""

    day: date
    counts: dict[str, int]
    response_seconds: tuple[int, ...] = ()


@dataclass(frozen=True)
class History:
    """What a snapshot reads beyond the 90-day window: all history up to the day."""

    pipeline_minor: int = 0  # running sum of pipeline deltas
    first_sale: date | None = None
    last_sale: date | None = None
    active_users_7d: int = 0
    active_users_30d: int = 0
    forecast_accuracy: float | None = None  # the last closed quarter's, by the day's end
    concentration_alert_open: bool = False  # named by an alert of the day's quarter


def _sum(facts: list[Fact], day: date, days: int, name: str, offset: int = 0) -> int:
    """Sum of ``name`` over the ``days`` days ending ``offset`` days before ``day``."""
    last = day - timedelta(days=offset)
    first = last - timedelta(days=days - 1)
    return sum(f.counts[name] for f in facts if first <= f.day <= last)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def _growth(now: int, before: int) -> float | None:
    return None if before <= 0 else (now - before) / before


def values(day: date, facts: list[Fact], history: History) -> Values:
    """The signal values as of ``day`` from the facts of the days up to it (older than the
    look-back or later than ``day`` are ignored) and the history."""

    def revenue(days: int, offset: int = 0) -> int:
        return _sum(facts, day, days, "sales_minor", offset) - _sum(
            facts, day, days, "reversed_minor", offset
        )

    r7, r30 = revenue(7), revenue(30)
    margin30 = _sum(facts, day, 30, "margin_minor")
    earnings30 = _sum(facts, day, 30, "earnings_minor")
    won, lost = _sum(facts, day, 90, "deals_won"), _sum(facts, day, 90, "deals_lost")
    approved = _sum(facts, day, 90, "claims_approved")
    rejected = _sum(facts, day, 90, "claims_rejected")
    first = day - timedelta(days=89)
    responses = [s for f in facts if first <= f.day <= day for s in f.response_seconds]
    last_sale = history.last_sale if history.last_sale and history.last_sale <= day else None
    first_sale = history.first_sale if history.first_sale and history.first_sale <= day else None
    return {
        "revenue_7d": r7,
        "revenue_30d": r30,
        "revenue_90d": revenue(90),
        "revenue_growth_wow": _growth(r7, revenue(7, 7)),
        "revenue_growth_mom": _growth(r30, revenue(30, 30)),
        "earnings_7d": _sum(facts, day, 7, "earnings_minor"),
        "earnings_30d": earnings30,
        "gross_margin": _ratio(margin30, r30),
        "contribution_margin": _ratio(margin30 - earnings30, r30),
        "payout_ratio": _ratio(earnings30, r30),
        "refund_rate": _ratio(
            _sum(facts, day, 90, "reversed_minor"), _sum(facts, day, 90, "sales_minor")
        ),
        "approved_claim_share": _ratio(approved, approved + rejected),
        "risk_flags_30d": _sum(facts, day, 30, "risk_flags"),
        "claims_submitted_30d": _sum(facts, day, 30, "claims_submitted"),
        "deals_registered_30d": _sum(facts, day, 30, "deals_registered"),
        "deals_won_90d": won,
        "deals_lost_90d": lost,
        "win_rate": _ratio(won, won + lost),
        "open_pipeline": history.pipeline_minor,
        "registration_response_days": (
            round(statistics.median(responses) / 86_400, 4) if responses else None
        ),
        "days_since_last_sale": (day - last_sale).days if last_sale else None,
        "days_since_first_sale": (day - first_sale).days if first_sale else None,
        "activated": first_sale is not None,
        "active_users_7d": history.active_users_7d,
        "active_users_30d": history.active_users_30d,
        "forecast_accuracy": history.forecast_accuracy,
        "concentration_alert_open": history.concentration_alert_open,
    }
