"""The one rounding rule of the ledger.

Every amount is computed in exact integer arithmetic and rounded once, per entry, to the
currency's minor unit, **half away from zero** (1.5 cents -> 2 cents, -1.5 cents -> -2
cents). Rates are integer basis points (1 bp = 0.01 %), so ``amount * bp / 10_000`` is an
exact fraction before that single rounding. Totals are sums of already-rounded entries, so
statements, summaries and payouts reconcile to the cent by construction; a clawback negates
the entries it undoes exactly, never recomputes them.
"""

from __future__ import annotations

from infra.money import divide_rounded

__all__ = ["BP", "apply_bp", "divide_rounded", "format_bp", "ratio_bp"]

BP = 10_000  # basis points in 100 %


def apply_bp(amount_minor: int, rate_bp: int) -> int:
    """``rate_bp`` basis points of ``amount_minor``, in minor units, rounded by the rule."""
    return divide_rounded(amount_minor * rate_bp, BP)


def ratio_bp(part: int, whole: int) -> int | None:
    """``part / whole`` in basis points (rounded by the rule); None when ``whole`` is 0."""
    if whole == 0:
        return None
    if whole < 0:
        part, whole = -part, -whole
    return divide_rounded(part * BP, whole)


def format_bp(bp: int) -> str:
    """800 -> '8%', 850 -> '8.5%', 1234 -> '12.34%'."""
    sign = "-" if bp < 0 else ""
    whole, frac = divmod(abs(bp), 100)
    text = f"{whole}.{frac:02d}".rstrip("0").rstrip(".")
    return f"{sign}{text}%"
