"""The numeric limits of everything that is summed into a contest score or served as a
number: one place, so an input check, a scoring rule and a GraphQL scalar cannot drift apart.

Why these numbers:

- ``MAX_SAFE_INTEGER`` (2**53 - 1): the largest integer a double holds exactly together with
  its neighbours. Redis sorted-set scores are doubles, and JavaScript reads every JSON
  number as one; past it ``x + 1 == x`` and two different totals compare equal.
- ``GRAPHQL_INT_MAX`` (2**31 - 1): GraphQL's ``Int`` is a signed 32-bit integer; graphql-core
  raises on an output beyond it. Anything that can pass it is a ``Score`` (or ``MinorUnits``).

What is refused at input (coded ``TOO_LARGE``, or the domain's existing code, nothing
changed) is chosen so that one event is worth at most ``MAX_EVENT_SCORE`` in any contest:

- a sale claim's amount: ``MAX_SALE_AMOUNT_MINOR`` (10**12: 10 billion in a 2-decimal
  currency), its serials (units): ``MAX_SERIALS_PER_CLAIM``;
- a subscription's amount per term: ``MAX_SUBSCRIPTION_AMOUNT_MINOR`` (its ARR, at most 12
  times that over a one-month term, is what a NEW_ARR contest counts);
- a points contest's weights: ``MAX_REVENUE_WEIGHT`` points per major unit of revenue, and
  ``MAX_WEIGHT`` per unit, per approved claim and per won deal;
- a participant's target: 1..``MAX_TARGET``.

A *sum* of events can still pass the exact range however each event is bounded (9008 of
the largest sales). There the rule is a saturating cap, explicit and logged: a board ranks
and shows a total beyond ``MAX_SCORE`` as ``MAX_SCORE`` (participants past it tie at the
cap), while the exact total stays in the SQL ledger and in Redis as an integer of any size (the
board's ``raw`` hash: ``HINCRBY`` while the sum stays within 64 bits, decimal addition in
the script past them, where ``HINCRBY`` failed and lost the credit; the rebuild sums the
ledger in two parts that stay within 64 bits), so reversals that bring a total back under
the cap are exact again. ``leaderboards.scoring`` applies it; ``clamp_score`` is the rule
in Python. Redis's other counters (a board's version, its count of rebuilds, a dense
board's count of participants per value) grow by one a change or a participant: 64 bits
never run out there.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("channelboard.limits")

MAX_SAFE_INTEGER = 2**53 - 1
GRAPHQL_INT_MAX = 2**31 - 1

MAX_SALE_AMOUNT_MINOR = 10**12
MAX_SERIALS_PER_CLAIM = 500
MAX_SUBSCRIPTION_AMOUNT_MINOR = 10**13
MAX_NEW_ARR_MINOR = MAX_SUBSCRIPTION_AMOUNT_MINOR * 12

MAX_WEIGHT = 1_000_000
MAX_REVENUE_WEIGHT = 1_000  # points per major unit (per 100 minor units)
MAX_TARGET = MAX_SAFE_INTEGER

# The most a single event can be worth in any contest under the bounds above.
MAX_EVENT_SCORE = max(
    MAX_SALE_AMOUNT_MINOR,  # REVENUE
    MAX_NEW_ARR_MINOR,  # NEW_ARR
    MAX_SERIALS_PER_CLAIM,  # UNITS
    MAX_SALE_AMOUNT_MINOR * MAX_REVENUE_WEIGHT // 100  # POINTS, a sale
    + MAX_SERIALS_PER_CLAIM * MAX_WEIGHT
    + MAX_WEIGHT,
    MAX_WEIGHT,  # POINTS, a won deal
)
# A participant's total (and a basis-points-of-target value) is capped here on a board.
MAX_SCORE = MAX_SAFE_INTEGER

assert MAX_EVENT_SCORE < MAX_SCORE // 2, "one event must never reach the exact range alone"


def clamp_score(total: int, *, what: str = "score") -> int:
    """``total`` within ±``MAX_SCORE`` (the board's saturating rule), logged when it cuts."""
    if -MAX_SCORE <= total <= MAX_SCORE:
        return total
    capped = MAX_SCORE if total > 0 else -MAX_SCORE
    logger.warning("%s %d capped at %d (beyond the exact range of a double)", what, total, capped)
    return capped


def int_output(value: int | None) -> int | None:
    """A ratio in basis points as a GraphQL ``Int`` shows it: within ±``GRAPHQL_INT_MAX``.

    A ratio has no natural bound (growth from a previous quarter of 1 cent, a forecast's
    bias against an actual of 1 cent, a payout ratio on a tiny revenue) and graphql-core
    refuses an ``Int`` past 32 bits, failing the whole field's parent. Such a ratio is
    shown at the bound (±214,748,364.7 %): "at least this", documented on each field."""
    if value is None:
        return None
    return max(-GRAPHQL_INT_MAX, min(value, GRAPHQL_INT_MAX))
