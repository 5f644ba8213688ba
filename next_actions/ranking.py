"""The order of next best actions, most worth doing first:

1. By kind, in this order: money already earned and held until the partner sends a document
   (HOLD_NEEDS_DOCUMENT); work the partner did that earns nothing until it acts
   (CLAIM_NEEDS_PROOF); a deadline that loses a deal (DEAL_PROTECTION_EXPIRING); a rule's
   recommendation (RECOMMENDATION: the vendor chose it for this partner); a prize within
   reach (CONTEST_PRIZE_IN_REACH); progress to the next tier (NEXT_TIER).
2. Within a kind, the sooner deadline first (none: last), then the larger amount at stake,
   then the key (so the order is stable)."""

from __future__ import annotations

from next_actions.actions import ActionKind, NextAction

ORDER = (
    ActionKind.HOLD_NEEDS_DOCUMENT,
    ActionKind.CLAIM_NEEDS_PROOF,
    ActionKind.DEAL_PROTECTION_EXPIRING,
    ActionKind.RECOMMENDATION,
    ActionKind.CONTEST_PRIZE_IN_REACH,
    ActionKind.NEXT_TIER,
)


def rank(actions: list[NextAction]) -> list[NextAction]:
    def key(action: NextAction) -> tuple[int, float, int, str]:
        due = action.due_at.timestamp() if action.due_at else float("inf")
        return (ORDER.index(action.kind), due, -(action.amount_minor or 0), action.key)

    return sorted(actions, key=key)
