"""The pilot report's statistics, computed by scipy.stats (a maintained library), not by
hand: Welch's t interval for a difference of means, and Newcombe's hybrid score interval
for a difference of proportions built from each arm's Wilson score interval.

Assumptions (also in docs/signals.md, "Pilots"): partners are independent units (one
partner's outcome does not move another's); per-partner outcomes are summed over the same
window in both arms; Welch's interval does not assume equal variances, but it leans on the
means being roughly normal, which holds for large arms (tens of partners or more) and is
only approximate for small or very skewed ones (a few large deals) — so a small arm is
flagged, and an arm of fewer than two partners gets no interval at all."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SMALL_ARM = 30  # below this many partners in an arm, the t interval is flagged as rough
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class MeanComparison:
    """Treatment against control: per-partner means, their difference (treatment minus
    control) with a confidence interval, the relative lift (difference / control mean)."""

    treatment_n: int
    control_n: int
    treatment_mean: float
    control_mean: float
    interval: Interval | None
    p_value: float | None
    notes: tuple[str, ...]

    @property
    def difference(self) -> float:
        return self.treatment_mean - self.control_mean

    @property
    def relative_lift(self) -> float | None:
        if self.control_mean == 0:
            return None
        return self.difference / abs(self.control_mean)


@dataclass(frozen=True)
class ProportionComparison:
    treatment_k: int
    treatment_n: int
    control_k: int
    control_n: int
    interval: Interval | None
    notes: tuple[str, ...]

    @property
    def treatment_rate(self) -> float | None:
        return self.treatment_k / self.treatment_n if self.treatment_n else None

    @property
    def control_rate(self) -> float | None:
        return self.control_k / self.control_n if self.control_n else None

    @property
    def difference(self) -> float | None:
        t, c = self.treatment_rate, self.control_rate
        return None if t is None or c is None else t - c


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def compare_means(
    treatment: Sequence[float], control: Sequence[float], level: float = LEVEL
) -> MeanComparison:
    notes: list[str] = []
    interval: Interval | None = None
    p_value: float | None = None
    n_t, n_c = len(treatment), len(control)
    if min(n_t, n_c) < 2:
        notes.append("Too few partners in an arm for an interval (two per arm at least).")
    elif len(set(treatment)) == 1 and len(set(control)) == 1:
        notes.append("No variation within either arm: Welch's interval is undefined.")
    else:
        from scipy import stats  # noqa: PLC0415 - see _wilson

        result = stats.ttest_ind(treatment, control, equal_var=False)
        ci = result.confidence_interval(confidence_level=level)
        interval = Interval(float(ci.low), float(ci.high))
        p_value = float(result.pvalue)
        if min(n_t, n_c) < SMALL_ARM:
            notes.append(
                f"Small sample (an arm has fewer than {SMALL_ARM} partners): the interval "
                "assumes roughly normal means and is approximate."
            )
    return MeanComparison(n_t, n_c, _mean(treatment), _mean(control), interval, p_value,
                          tuple(notes))  # fmt: skip


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    # Imported when a report is computed: scipy.stats costs ~2 s of CPU to import, which
    # every process that loads the schema (servers, dispatchers, each CLI command) paid.
    from scipy import stats  # noqa: PLC0415

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def compare_proportions(
    treatment_k: int, treatment_n: int, control_k: int, control_n: int, level: float = LEVEL
) -> ProportionComparison:
    """Newcombe (1998), method 10: the difference's bounds from each arm's Wilson bounds."""
    notes: list[str] = []
    interval: Interval | None = None
    if min(treatment_n, control_n) == 0:
        notes.append("An arm has no partner that could activate (all had sold before).")
    else:
        p1, p2 = treatment_k / treatment_n, control_k / control_n
        l1, u1 = _wilson(treatment_k, treatment_n, level)
        l2, u2 = _wilson(control_k, control_n, level)
        d = p1 - p2
        interval = Interval(
            d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
        )
        if min(treatment_n, control_n) < SMALL_ARM:
            notes.append(
                f"Small sample (fewer than {SMALL_ARM} partners could activate in an arm): "
                "the interval is wide."
            )
    return ProportionComparison(treatment_k, treatment_n, control_k, control_n, interval,
                                tuple(notes))  # fmt: skip


def minor(value: float) -> int:
    """A statistic in minor units, rounded once by the ledger's rule (half away from
    zero)."""
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
