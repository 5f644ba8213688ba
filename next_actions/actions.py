"""A next best action: what a partner (or its rep) could do now, why, and how much or how
soon it matters. Built on read from the tables that hold the facts; nothing is stored."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.claims import ClaimSignals
from leaderboards.runtime import Leaderboards
from partners.roles import Principal


class ActionKind(StrEnum):
    HOLD_NEEDS_DOCUMENT = "HOLD_NEEDS_DOCUMENT"
    CLAIM_NEEDS_PROOF = "CLAIM_NEEDS_PROOF"
    DEAL_PROTECTION_EXPIRING = "DEAL_PROTECTION_EXPIRING"
    CONTEST_PRIZE_IN_REACH = "CONTEST_PRIZE_IN_REACH"
    NEXT_TIER = "NEXT_TIER"
    RECOMMENDATION = "RECOMMENDATION"  # from a rule (the incentives domain)


@dataclass(frozen=True)
class NextAction:
    key: str  # stable while the action is the same one: "<kind>:<subject>"
    kind: ActionKind
    title: str
    why: str
    due_at: datetime | None = None  # when acting stops helping
    amount_minor: int | None = None  # money at stake, where there is a figure
    currency: str | None = None
    link: str | None = None  # what to open: a global-id-free path the front end routes
    code: str | None = None  # an id or code the partner quotes or enters
    subject_type: str | None = None  # the GraphQL type of the record it is about
    subject_id: uuid.UUID | None = None
    # When time alone next changes this action's text while it stays listed (a sale leaving
    # the tier's trailing window); not shown, it wakes a live list.
    changes_at: datetime | None = None


@dataclass(frozen=True)
class Viewpoint:
    """Whose actions: ``principal`` reads as the partner user would (a vendor staff caller
    reads as the partner organisation's admin would). ``asker``: who asks, when it is not
    ``principal`` (vendor staff); a source naming a record its own policy keeps from the
    asker leaves it out (a contest or a rule naming a pilot's treatment arm, which a
    channel manager may not read, would tell it the partner is in the arm)."""

    principal: Principal
    partner_id: uuid.UUID
    vendor_id: uuid.UUID
    now: datetime
    signals: ClaimSignals
    leaderboards: Leaderboards
    asker: Principal | None = None

    @property
    def rep_user_id(self) -> uuid.UUID | None:
        return self.principal.user_id if self.principal.role.value == "PARTNER_REP" else None


# A source of actions: built-in ones (next_actions.sources), and any other domain's (the
# incentives domain's rule recommendations), listed by the composition root.
Source = Callable[[AsyncSession, Viewpoint], Awaitable[list[NextAction]]]
