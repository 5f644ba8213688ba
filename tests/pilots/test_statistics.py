"""The report's statistics against published and hand-computed figures."""

from __future__ import annotations

import math

import pytest

from pilots.statistics import compare_means, compare_proportions, minor

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


def test_newcombes_interval_matches_his_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
    # method 10 gives 0.0524 to 0.3339.
    result = compare_proportions(56, 70, 48, 80)
    assert result.difference == pytest.approx(0.2)
    assert result.interval is not None
    assert result.interval.low == pytest.approx(0.0524, abs=5e-5)
    assert result.interval.high == pytest.approx(0.3339, abs=5e-5)


def test_welchs_interval_matches_the_formula() -> None:
    treatment = [12.0, 15.0, 11.0, 19.0, 14.0, 13.0]
    control = [9.0, 10.0, 12.0, 8.0, 11.0]
    result = compare_means(treatment, control)
    m1, m2 = sum(treatment) / 6, sum(control) / 5
    v1 = sum((x - m1) ** 2 for x in treatment) / 5 / 6
    v2 = sum((x - m2) ** 2 for x in control) / 4 / 5
    df = (v1 + v2) ** 2 / (v1**2 / 5 + v2**2 / 4)
    from scipy import stats  # noqa: PLC0415

    half = stats.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    assert result.interval is not None
    assert result.interval.low == pytest.approx(m1 - m2 - half)
    assert result.interval.high == pytest.approx(m1 - m2 + half)
    assert result.relative_lift == pytest.approx((m1 - m2) / m2)
    assert any("Small sample" in note for note in result.notes)


def test_too_few_or_no_variation_gives_no_interval_and_says_why() -> None:
    one = compare_means([5.0], [1.0, 2.0])
    assert one.interval is None
    assert one.notes == ("Too few partners in an arm for an interval (two per arm at least).",)
    flat = compare_means([0.0, 0.0], [0.0, 0.0, 0.0])
    assert flat.interval is None
    assert flat.relative_lift is None
    none_eligible = compare_proportions(0, 0, 1, 3)
    assert none_eligible.interval is None
    assert none_eligible.difference is None


def test_minor_units_round_half_away_from_zero() -> None:
    assert (minor(2.5), minor(-2.5), minor(2.4999), minor(-0.5)) == (3, -3, 2, -1)
