"""Who may read next best actions: partner users their own (a rep: its own claims and deals
plus its organisation's tier progress), vendor admins and channel managers a partner's they
may see, named by id (to coach it). Finance has no use for them."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import PARTNER_USERS, REVIEWERS, Policy


class NextActionsOp(StrEnum):
    READ = "nextActions"
    SUBSCRIBE = "nextActionsChanged"


NEXT_ACTIONS = Policy[NextActionsOp](
    {
        NextActionsOp.READ: PARTNER_USERS | REVIEWERS,
        NextActionsOp.SUBSCRIBE: PARTNER_USERS | REVIEWERS,
    }
)
