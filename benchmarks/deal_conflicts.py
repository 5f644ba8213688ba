"""Precision and recall of deal conflict detection on the labelled corpus, per threshold.

.venv/bin/python -m benchmarks.deal_conflicts
"""

from __future__ import annotations

from pathlib import Path

from deal_registration.registrations.corpus import measure

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "deal_conflicts.json"


def main() -> None:
    for threshold in (75, 80, 85, 90, 95):
        m = measure(CORPUS, threshold)
        total = m.true_positives + m.false_positives + m.false_negatives + m.true_negatives
        print(  # noqa: T201 - a benchmark prints its figures
            f"threshold {threshold}: precision {m.precision:.3f} recall {m.recall:.3f} "
            f"(tp {m.true_positives} fp {m.false_positives} fn {m.false_negatives} "
            f"tn {m.true_negatives}, {total} pairs)"
        )
    for line in measure(CORPUS).mistakes:
        print("  default threshold:", line)  # noqa: T201


if __name__ == "__main__":
    main()
