"""Random assignment: reproducible from the seed, every stratum split as evenly as it can be,
the arms differing by one partner at most, and different seeds giving different arms."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilots.assignment import MAX_SEED, Candidate, assign
from pilots.models import Arm

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

REGIONS = ("EMEA", "AMER", "APAC")
TIERS = ("REGISTERED", "SELECT", "PREMIER")


def candidates(n: int, salt: int = 0) -> list[Candidate]:
    return [
        Candidate(uuid.UUID(int=(salt << 64) + i + 1), REGIONS[i % 3], TIERS[(i // 3) % 3])
        for i in range(n)
    ]


@given(n=st.integers(min_value=2, max_value=60), seed=st.integers(0, MAX_SEED - 1))
def test_strata_are_balanced_and_both_arms_are_used(n: int, seed: int) -> None:
    people = candidates(n)
    arms = assign(people, seed)
    assert set(arms) == {c.partner_id for c in people}
    overall = Counter(arm for arm, _ in arms.values())
    assert abs(overall[Arm.TREATMENT] - overall[Arm.CONTROL]) <= 1
    assert overall[Arm.TREATMENT] >= 1
    assert overall[Arm.CONTROL] >= 1
    by_stratum: dict[str, Counter[Arm]] = {}
    for candidate in people:
        arm, stratum = arms[candidate.partner_id]
        assert stratum == candidate.stratum
        by_stratum.setdefault(stratum, Counter())[arm] += 1
    for counted in by_stratum.values():
        assert abs(counted[Arm.TREATMENT] - counted[Arm.CONTROL]) <= 1


def test_the_same_seed_gives_the_same_arms_whatever_the_order() -> None:
    people = candidates(40)
    first = assign(people, 1234)
    assert assign(list(reversed(people)), 1234) == first
    assert assign(people, 1235) != first


def test_a_stratum_is_region_and_program_tier_normalised() -> None:
    assert Candidate(uuid.uuid4(), " emea", "premier").stratum == "EMEA|PREMIER"
    assert Candidate(uuid.uuid4(), "", "").stratum == "-|-"
