"""A snapshot's values from the facts: pure arithmetic over the trailing windows, so the
handlers, the daily job and the rebuild all compute a day the same way: ``basis`` sums the
days before the day, ``values_of`` adds the day's own facts."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

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
class Extras:
    """What a snapshot reads from outside the facts (active users, forecasts)."""

    active_users_7d: int = 0
    active_users_30d: int = 0
    forecast_accuracy: float | None = None  # the last closed quarter's, by the day's end
    concentration_alert_open: bool = False  # named by an alert of the day's quarter


# The trailing windows (days, ending with the day) whose sums the values read.
WINDOWS = (7, 30, 90)


@dataclass(frozen=True)
class Basis:
    """Everything a day's snapshot reads from the facts of the days *before* it: the sums of
    each window's earlier days, the previous periods' revenue, the response times of the
    89 days before, and the running history (pipeline, first and last sale) up to the day.

    The days before a day are closed (a past day's facts never change), so a snapshot of
    today stores its basis and an event of today only replaces today's facts: the values
    follow from ``values_of(day, basis, today, extras)`` with no window read again."""

    before: dict[int, dict[str, int]]  # window -> counter -> sum over its days before
    revenue_prev_7: int = 0  # revenue of the 7 days before the 7-day window
    revenue_prev_30: int = 0  # and of the 30 days before the 30-day window
    responses: tuple[int, ...] = ()
    pipeline_before: int = 0
    first_sale_before: date | None = None
    last_sale_before: date | None = None

    def to_json(self, today: Fact | None) -> dict[str, Any]:
        return {
            "before": {str(w): sums for w, sums in self.before.items()},
            "revenue_prev_7": self.revenue_prev_7,
            "revenue_prev_30": self.revenue_prev_30,
            "responses": sorted(self.responses),
            "pipeline_before": self.pipeline_before,
            "first_sale_before": _iso(self.first_sale_before),
            "last_sale_before": _iso(self.last_sale_before),
            "today": None if today is None else _fact_json(today),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], counters: Sequence[str]) -> Basis | None:
        """The stored basis, or None when it lacks a counter (stored by an older version)."""
        try:
            before = {
                int(w): {c: int(sums[c]) for c in counters} for w, sums in data["before"].items()
            }
        except (KeyError, TypeError, ValueError):
            return None
        if set(before) != set(WINDOWS):
            return None
        return cls(
            before=before,
            revenue_prev_7=int(data["revenue_prev_7"]),
            revenue_prev_30=int(data["revenue_prev_30"]),
            responses=tuple(int(s) for s in data["responses"]),
            pipeline_before=int(data["pipeline_before"]),
            first_sale_before=_day(data.get("first_sale_before")),
            last_sale_before=_day(data.get("last_sale_before")),
        )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def _fact_json(fact: Fact) -> dict[str, Any]:
    return {"counts": dict(fact.counts), "response_seconds": sorted(fact.response_seconds)}


def stored_today(data: dict[str, Any], day: date, counters: Sequence[str]) -> Fact | None:
    """The day's facts a stored basis was combined with (zeros when it had none)."""
    today = data.get("today")
    if today is None:
        return Fact(day, dict.fromkeys(counters, 0))
    try:
        counts = {c: int(today["counts"][c]) for c in counters}
    except (KeyError, TypeError, ValueError):
        return None
    return Fact(day, counts, tuple(int(s) for s in today.get("response_seconds", ())))


def basis(
    day: date,
    facts: Iterable[Fact],
    counters: Sequence[str],
    *,
    pipeline_before: int,
    first_sale_before: date | None,
    last_sale_before: date | None,
) -> Basis:
    """The basis of ``day`` from the facts of the look-back (those of ``day`` and later are
    ignored) and what lies before it: the pipeline's running sum and the first and last
    sale before the first of ``facts``."""
    prior = [f for f in facts if f.day < day]
    before = {
        w: {
            c: sum(f.counts[c] for f in prior if f.day >= day - timedelta(days=w - 1))
            for c in counters
        }
        for w in WINDOWS
    }  # fmt: skip
    pipeline = pipeline_before + sum(f.counts.get("pipeline_delta_minor", 0) for f in prior)
    sale_days = [f.day for f in prior if f.counts.get("sales", 0) > 0]
    first_sale = min(
        [*sale_days, *([first_sale_before] if first_sale_before else [])], default=None
    )
    last_sale = max(sale_days) if sale_days else last_sale_before
    since = day - timedelta(days=89)
    return Basis(
        before=before,
        revenue_prev_7=_revenue(prior, day, 7, 7),
        revenue_prev_30=_revenue(prior, day, 30, 30),
        responses=tuple(s for f in prior if f.day >= since for s in f.response_seconds),
        pipeline_before=pipeline,
        first_sale_before=first_sale,
        last_sale_before=last_sale,
    )


def _revenue(facts: list[Fact], day: date, days: int, offset: int) -> int:
    """Revenue over the ``days`` days ending ``offset`` days before ``day``."""
    last = day - timedelta(days=offset)
    first = last - timedelta(days=days - 1)
    return sum(
        f.counts["sales_minor"] - f.counts["reversed_minor"]
        for f in facts
        if first <= f.day <= last
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def _growth(now: int, before: int) -> float | None:
    return None if before <= 0 else (now - before) / before


class _Window:
    """Sums over a day's windows: the basis (the days before) plus the day's own facts."""

    def __init__(self, day: date, basis: Basis, today: Fact | None) -> None:
        self.day, self.basis = day, basis
        self.counts = today.counts if today is not None and today.day == day else {}

    def s(self, days: int, name: str) -> int:
        return self.basis.before[days][name] + self.counts.get(name, 0)

    def revenue(self, days: int) -> int:
        return self.s(days, "sales_minor") - self.s(days, "reversed_minor")


def _shared_values(w: _Window) -> Values:
    """The formulas a rep's values share with its partner's (over the rep's or the
    partner's facts): ``definitions.REP_NAMES``."""
    day, basis = w.day, w.basis
    won, lost = w.s(90, "deals_won"), w.s(90, "deals_lost")
    sold_today = w.counts.get("sales", 0) > 0
    last_sale = day if sold_today else basis.last_sale_before
    first_sale = basis.first_sale_before or (day if sold_today else None)
    return {
        "revenue_7d": w.revenue(7),
        "revenue_30d": w.revenue(30),
        "revenue_90d": w.revenue(90),
        "claims_submitted_30d": w.s(30, "claims_submitted"),
        "deals_registered_30d": w.s(30, "deals_registered"),
        "deals_won_90d": won,
        "deals_lost_90d": lost,
        "win_rate": _ratio(won, won + lost),
        "open_pipeline": basis.pipeline_before + w.counts.get("pipeline_delta_minor", 0),
        "days_since_last_sale": (day - last_sale).days if last_sale else None,
        "days_since_first_sale": (day - first_sale).days if first_sale else None,
        "activated": first_sale is not None,
    }


def values_of(day: date, basis: Basis, today: Fact | None, extras: Extras) -> Values:
    """The signal values as of ``day`` from its basis and its own facts."""
    w = _Window(day, basis, today)
    r7, r30 = w.revenue(7), w.revenue(30)
    margin30, earnings30 = w.s(30, "margin_minor"), w.s(30, "earnings_minor")
    approved, rejected = w.s(90, "claims_approved"), w.s(90, "claims_rejected")
    responses = [*basis.responses, *(today.response_seconds if w.counts and today else ())]
    return {
        **_shared_values(w),
        "revenue_growth_wow": _growth(r7, basis.revenue_prev_7),
        "revenue_growth_mom": _growth(r30, basis.revenue_prev_30),
        "earnings_7d": w.s(7, "earnings_minor"),
        "earnings_30d": earnings30,
        "gross_margin": _ratio(margin30, r30),
        "contribution_margin": _ratio(margin30 - earnings30, r30),
        "payout_ratio": _ratio(earnings30, r30),
        "refund_rate": _ratio(w.s(90, "reversed_minor"), w.s(90, "sales_minor")),
        "approved_claim_share": _ratio(approved, approved + rejected),
        "risk_flags_30d": w.s(30, "risk_flags"),
        "registration_response_days": (
            round(statistics.median(responses) / 86_400, 4) if responses else None
        ),
        "active_users_7d": extras.active_users_7d,
        "active_users_30d": extras.active_users_30d,
        "forecast_accuracy": extras.forecast_accuracy,
        "concentration_alert_open": extras.concentration_alert_open,
    }


def rep_values_of(day: date, basis: Basis, today: Fact | None) -> Values:
    """A rep's values as of ``day`` (``definitions.REP_NAMES``): the partner's formulas over
    the rep's facts (``facts.REP_COUNTERS``)."""
    return _shared_values(_Window(day, basis, today))
