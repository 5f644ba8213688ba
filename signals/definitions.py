"""The signal catalogue: every signal a partner's daily snapshot holds, in plain language.

``DEFINITIONS`` is the contract rules read (``name`` is the identifier an expression uses)
and what ``signalDefinitions`` shows. Money signals are integer minor units of the vendor's
signal currency (``signals.currency``); ratios are floats (0.25 = 25 %); a value is None
where it is not defined (a growth on a zero base, a margin without revenue). Windows are
trailing whole UTC days ending with the snapshot's day (7 days: the day and the six
before it). docs/signals.md explains each formula.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Unit(StrEnum):
    MONEY = "MONEY"  # integer minor units of the vendor's signal currency
    RATIO = "RATIO"  # a float; 0.25 is 25 %
    COUNT = "COUNT"
    DAYS = "DAYS"
    BOOL = "BOOL"


class Visibility(StrEnum):
    PARTNER = "PARTNER"  # the partner's own users and the vendor's staff
    VENDOR_ONLY = "VENDOR_ONLY"  # vendor staff only: margins, payout ratio, risk


class Subject(StrEnum):
    PARTNER = "PARTNER"


@dataclass(frozen=True)
class SignalDefinition:
    name: str
    label: str
    description: str
    unit: Unit
    visibility: Visibility
    window_days: int | None  # None: all history up to the day, or a state on the day
    subject: Subject = Subject.PARTNER
    # Also kept per rep (``repSignals``): the same formula over what the rep's own sales,
    # claims and deals did (``REP_NAMES``).
    per_rep: bool = False


def _d(
    name: str,
    label: str,
    description: str,
    unit: Unit,
    window_days: int | None,
    visibility: Visibility = Visibility.PARTNER,
) -> SignalDefinition:
    return SignalDefinition(name, label, description, unit, visibility, window_days)


_ALL = [
    _d("revenue_7d", "Revenue, 7 days",
       "Approved sales minus refunds and returns credited in the last 7 days.", Unit.MONEY, 7),
    _d("revenue_30d", "Revenue, 30 days",
       "Approved sales minus refunds and returns credited in the last 30 days.", Unit.MONEY, 30),
    _d("revenue_90d", "Revenue, 90 days",
       "Approved sales minus refunds and returns credited in the last 90 days.", Unit.MONEY, 90),
    _d("revenue_growth_wow", "Revenue growth, week over week",
       "Revenue of the last 7 days against the 7 days before, as a fraction (0.2 is 20 % "
       "up); undefined when the earlier week had no revenue.", Unit.RATIO, 14),
    _d("revenue_growth_mom", "Revenue growth, month over month",
       "Revenue of the last 30 days against the 30 days before, as a fraction; undefined "
       "when the earlier 30 days had no revenue.", Unit.RATIO, 60),
    _d("earnings_7d", "Earnings, 7 days",
       "Everything the partner earned (commissions, uplifts, spiffs, bonuses, adjustments, "
       "minus clawbacks) booked in the last 7 days.", Unit.MONEY, 7),
    _d("earnings_30d", "Earnings, 30 days",
       "Everything the partner earned booked in the last 30 days.", Unit.MONEY, 30),
    _d("gross_margin", "Gross margin",
       "The vendor's catalogue margin on the partner's revenue of the last 30 days, as a "
       "fraction of that revenue.", Unit.RATIO, 30, Visibility.VENDOR_ONLY),
    _d("contribution_margin", "Contribution margin",
       "The catalogue margin left after what the partner earned, over the last 30 days, as "
       "a fraction of revenue.", Unit.RATIO, 30, Visibility.VENDOR_ONLY),
    _d("payout_ratio", "Payout ratio",
       "What the partner earned over the last 30 days as a fraction of its revenue.",
       Unit.RATIO, 30, Visibility.VENDOR_ONLY),
    _d("refund_rate", "Refund rate",
       "Refunded or returned sales of the last 90 days as a fraction of the sales approved "
       "in those days.", Unit.RATIO, 90),
    _d("approved_claim_share", "Approved claim share",
       "Of the sale claims decided in the last 90 days, the fraction approved.", Unit.RATIO,
       90),
    _d("risk_flags_30d", "Risk flags, 30 days",
       "Risk warnings raised on the partner's sale claims in the last 30 days.", Unit.COUNT,
       30, Visibility.VENDOR_ONLY),
    _d("claims_submitted_30d", "Claims submitted, 30 days",
       "Sale claims the partner submitted in the last 30 days.", Unit.COUNT, 30),
    _d("deals_registered_30d", "Deals registered, 30 days",
       "Deal registrations the partner submitted in the last 30 days.", Unit.COUNT, 30),
    _d("deals_won_90d", "Deals won, 90 days",
       "Registered deals marked won in the last 90 days.", Unit.COUNT, 90),
    _d("deals_lost_90d", "Deals lost, 90 days",
       "Registered deals marked lost in the last 90 days.", Unit.COUNT, 90),
    _d("win_rate", "Win rate",
       "Deals won in the last 90 days as a fraction of those won or lost in them.",
       Unit.RATIO, 90),
    _d("open_pipeline", "Open pipeline",
       "Estimated value of the partner's registrations that are submitted, under review or "
       "approved and not yet won, lost, withdrawn, rejected or expired.", Unit.MONEY, None),
    _d("registration_response_days", "Registration response time",
       "Median days from a registration's submission to its first update (review started, "
       "approved, rejected...), over the first updates of the last 90 days.", Unit.DAYS, 90),
    _d("days_since_last_sale", "Days since last sale",
       "Whole days since the last day a sale was credited; undefined before the first.",
       Unit.DAYS, None),
    _d("days_since_first_sale", "Days since first sale",
       "Whole days since the first day a sale was credited; undefined before it.",
       Unit.DAYS, None),
    _d("activated", "Activated",
       "Whether the partner has had a sale credited.", Unit.BOOL, None),
    _d("active_users_7d", "Active users, 7 days",
       "The partner's users who used the API on at least one of the last 7 days.", Unit.COUNT,
       7),
    _d("active_users_30d", "Active users, 30 days",
       "The partner's users who used the API on at least one of the last 30 days.",
       Unit.COUNT, 30),
    _d("forecast_accuracy", "Forecast accuracy",
       "How close the partner's committed forecast of its last closed quarter came to its "
       "actual revenue, as a fraction (1 is exact: 1 - |actual - commit| / the larger of "
       "the two); undefined before a quarter with a forecast has closed.", Unit.RATIO, None),
    _d("concentration_alert_open", "Named in a concentration alert",
       "Whether a concentration alert of the current quarter names the partner among the "
       "largest partners whose share crossed one of the vendor's thresholds.", Unit.BOOL,
       None, Visibility.VENDOR_ONLY),
]  # fmt: skip

# The signals kept per rep too: those where a rep's own rows mean something. Not margins,
# earnings, payout ratio, refund rate, claim decisions or risk (vendor-only or the
# partner's as a whole), activity, forecasts or concentration (partner-level).
REP_NAMES: tuple[str, ...] = (
    "revenue_7d", "revenue_30d", "revenue_90d", "claims_submitted_30d",
    "deals_registered_30d", "deals_won_90d", "deals_lost_90d", "win_rate", "open_pipeline",
    "days_since_last_sale", "days_since_first_sale", "activated",
)  # fmt: skip

_ALL = [replace(d, per_rep=d.name in REP_NAMES) for d in _ALL]

DEFINITIONS: dict[str, SignalDefinition] = {d.name: d for d in _ALL}
assert all(DEFINITIONS[n].visibility is Visibility.PARTNER for n in REP_NAMES)

PARTNER_VISIBLE: frozenset[str] = frozenset(
    d.name for d in _ALL if d.visibility is Visibility.PARTNER
)


def visible_names(vendor_staff: bool) -> list[str]:
    """The signal names a caller may read, in catalogue order."""
    return [d.name for d in _ALL if vendor_staff or d.visibility is Visibility.PARTNER]
