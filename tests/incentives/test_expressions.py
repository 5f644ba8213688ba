"""Rule conditions: compiled by the CEL library, checked against the signal names, never
evaluated by anything of ours."""

from __future__ import annotations

import pytest

from incentives.errors import RuleErrorCode
from incentives.expressions import compile_condition
from infra.errors import DomainError
from signals.definitions import DEFINITIONS

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


def test_a_condition_reads_signals_and_answers_true_or_false() -> None:
    condition = compile_condition(
        "revenue_growth_wow != null && revenue_growth_wow >= 0.2 && active_users_7d > 1",
        DEFINITIONS,
    )
    assert condition.reads == ("active_users_7d", "revenue_growth_wow")
    assert condition.holds({"revenue_growth_wow": 0.24, "active_users_7d": 2})
    assert not condition.holds({"revenue_growth_wow": 0.1, "active_users_7d": 2})
    assert not condition.holds({"revenue_growth_wow": None, "active_users_7d": 2})


def test_an_evaluation_error_does_not_fire_and_says_why() -> None:
    condition = compile_condition("revenue_growth_wow >= 0.2", DEFINITIONS)
    fires, why = condition.evaluate({"revenue_growth_wow": None})
    assert not fires
    assert why is not None
    assert "overload" in why


@pytest.mark.parametrize(
    ("source", "code", "words"),
    [
        ("revenue_7d >", RuleErrorCode.CONDITION_INVALID, "line 1, column 13"),
        ("revenue_7d > 1 &&\n  )", RuleErrorCode.CONDITION_INVALID, "line 2, column 3"),
        ("weekly_revenue > 1", RuleErrorCode.UNKNOWN_SIGNAL, "'weekly_revenue'"),
        ("revenue_7d * 2", RuleErrorCode.NOT_BOOLEAN, "true or false"),
        # Checked on values of the signals' types too, not zeros alone: a value on some
        # days, a field of a number (never evaluable: the rule would never fire).
        ("revenue_7d > 0 ? 1 : true", RuleErrorCode.NOT_BOOLEAN, "true or false"),
        ("revenue_7d.amount > 1", RuleErrorCode.CONDITION_INVALID, "cannot be evaluated"),
        ("has(gross_margin.x)", RuleErrorCode.CONDITION_INVALID, "cannot be evaluated"),
        ("1 > 0", RuleErrorCode.NOT_BOOLEAN, "at least one signal"),
        ("  ", RuleErrorCode.REQUIRED, "Write a condition"),
        (
            "revenue_7d > 0 && __import__('os').system('true')",
            RuleErrorCode.CONDITION_INVALID,
            "Unknown function '__import__', 'system'",
        ),
    ],
)
def test_bad_conditions_are_coded(source: str, code: RuleErrorCode, words: str) -> None:
    with pytest.raises(DomainError) as raised:
        compile_condition(source, DEFINITIONS)
    assert raised.value.code == code
    assert words in raised.value.message
    if code is RuleErrorCode.UNKNOWN_SIGNAL:
        assert all(name in raised.value.message for name in DEFINITIONS)
