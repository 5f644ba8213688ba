"""Measure the conflict detector on a labelled corpus of registration pairs
(tests/data/deal_conflicts.json): precision, recall and the misclassified pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deal_registration.registrations.conflicts import (
    Customer,
    compare,
    normalise_name,
    registrable_domain,
)


@dataclass
class Measurement:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    mistakes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0


def _customer(entry: list[Any]) -> Customer:
    name, domain, country, *rest = entry
    skus = frozenset(rest[0]) if rest else frozenset()
    return Customer(normalise_name(name), registrable_domain(domain) or "", country, skus)


def measure(path: Path, threshold: int | None = None) -> Measurement:
    corpus = json.loads(path.read_text(encoding="utf-8"))
    threshold = threshold if threshold is not None else int(corpus["threshold"])
    result = Measurement()
    for pair in corpus["pairs"]:
        found = compare(_customer(pair["a"]), _customer(pair["b"]), threshold=threshold)
        label = f"{pair['a'][0]!r} vs {pair['b'][0]!r}"
        if found is not None and pair["same"]:
            result.true_positives += 1
        elif found is not None:
            result.false_positives += 1
            result.mistakes.append(f"false positive: {label} (score {found.score})")
        elif pair["same"]:
            result.false_negatives += 1
            result.mistakes.append(f"false negative: {label}")
        else:
            result.true_negatives += 1
    return result
