"""The renewal-probability model (docs/recurring.md#renewal-probability): a Beta-Binomial
estimate of how often the partner's subscriptions renew, pulled towards the vendor's rate
when the partner has little history, then moved on the log-odds scale by a few facts about
the subscription itself. Every input is returned with its effect and a sentence the
partner can read.

    vendor rate   m = (1 + R_v) / (2 + R_v + N_v)               (Beta(1, 1) prior)
    partner rate  p0 = (K*m + R_p) / (K + R_p + N_p)            (K = 10 pseudo-decisions)
    logit(p) = logit(p0) + sum of the adjustments below

R = renewals, N = subscriptions that ended without one (cancelled, or past their end).
Adjustments (log-odds): a contraction in its history -0.7; an expansion +0.5; a
multi-year term (24 months or more) +0.4; +0.25 per earlier renewal, at most 3."""

from __future__ import annotations

import math
from dataclasses import dataclass

PRIOR_STRENGTH = 10
CONTRACTION = -0.7
EXPANSION = 0.5
MULTI_YEAR = 0.4
PER_RENEWAL = 0.25
MAX_RENEWALS_COUNTED = 3


@dataclass(frozen=True)
class History:
    renewed: int
    not_renewed: int


@dataclass(frozen=True)
class Factor:
    code: str
    effect: float  # log-odds
    text: str


@dataclass(frozen=True)
class Estimate:
    probability_bp: int  # 0..10000
    base_bp: int
    factors: list[Factor]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _pct(bp: int) -> str:
    return f"{bp / 100:.0f}%"


def estimate(
    vendor: History,
    partner: History,
    *,
    contracted: bool,
    expanded: bool,
    term_months: int,
    renewals: int,
) -> Estimate:
    vendor_rate = (1 + vendor.renewed) / (2 + vendor.renewed + vendor.not_renewed)
    decided = partner.renewed + partner.not_renewed
    base = (PRIOR_STRENGTH * vendor_rate + partner.renewed) / (PRIOR_STRENGTH + decided)
    base_bp = round(base * 10_000)
    factors = [
        Factor(
            "TRACK_RECORD",
            0.0,
            f"Starting point {_pct(base_bp)}: your subscriptions renewed {partner.renewed} of "
            f"{decided} times, weighed against the program-wide rate of "
            f"{_pct(round(vendor_rate * 10_000))} as if it were {PRIOR_STRENGTH} more "
            "renewals decided.",
        )
    ]
    if contracted:
        factors.append(
            Factor("CONTRACTION", CONTRACTION, "The customer reduced this subscription before; "
                   "that lowers the chance of renewal.")
        )  # fmt: skip
    if expanded:
        factors.append(
            Factor("EXPANSION", EXPANSION, "The customer expanded this subscription; that "
                   "raises the chance of renewal.")
        )  # fmt: skip
    if term_months >= 24:
        factors.append(
            Factor("MULTI_YEAR", MULTI_YEAR, f"A {term_months}-month term: customers on "
                   "multi-year terms renew more often.")
        )  # fmt: skip
    counted = min(renewals, MAX_RENEWALS_COUNTED)
    if counted:
        factors.append(
            Factor("TENURE", PER_RENEWAL * counted, f"Renewed {renewals} time"
                   f"{'s' if renewals != 1 else ''} already; each earlier renewal (up to "
                   f"{MAX_RENEWALS_COUNTED}) raises the chance.")
        )  # fmt: skip
    logit = _logit(base) + sum(f.effect for f in factors)
    probability = 1 / (1 + math.exp(-logit))
    return Estimate(round(probability * 10_000), base_bp, factors)
