"""Random assignment to arms, stratified by region and program tier, reproducible from the
seed. Each partner's place is decided by SHA-256 of the seed and its id (not by a PRNG whose
stream could change between Python versions), so the same seed and the same members give
the same arms anywhere, forever; the arms are recorded anyway (``PilotAssignment``).

Within a stratum the members are ordered by ``sha256(seed, stratum, partner)`` and the first
half goes to treatment; the odd one out of each odd-sized stratum is pooled, the pool ordered
by ``sha256(seed, stratum)`` and dealt alternately, starting with the arm a seeded coin
picks. So every stratum is split as evenly as it can be, and the arms differ by at most one
partner overall (each arm has one at least, given two partners)."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pilots.models import Arm

MAX_SEED = 2**62


@dataclass(frozen=True)
class Candidate:
    partner_id: uuid.UUID
    region: str
    tier: str

    @property
    def stratum(self) -> str:
        return f"{self.region.strip().upper() or '-'}|{self.tier.strip().upper() or '-'}"


def _key(seed: int, *parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()


def assign(candidates: Iterable[Candidate], seed: int) -> dict[uuid.UUID, tuple[Arm, str]]:
    strata: dict[str, list[uuid.UUID]] = defaultdict(list)
    for candidate in candidates:
        strata[candidate.stratum].append(candidate.partner_id)
    out: dict[uuid.UUID, tuple[Arm, str]] = {}
    leftovers: list[tuple[bytes, str, uuid.UUID]] = []
    for stratum, ids in sorted(strata.items()):
        order = sorted(set(ids), key=lambda p: _key(seed, stratum, p))
        half = len(order) // 2
        for i, partner_id in enumerate(order[: 2 * half]):
            out[partner_id] = (Arm.TREATMENT if i < half else Arm.CONTROL, stratum)
        if len(order) % 2:
            leftovers.append((_key(seed, stratum), stratum, order[-1]))
    first = Arm.TREATMENT if _key(seed, "leftovers")[0] & 1 else Arm.CONTROL
    second = Arm.CONTROL if first is Arm.TREATMENT else Arm.TREATMENT
    for i, (_, stratum, partner_id) in enumerate(sorted(leftovers)):
        out[partner_id] = (first if i % 2 == 0 else second, stratum)
    return out
