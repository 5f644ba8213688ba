"""``next_actions``: every source's actions for one partner (or rep), ranked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.claims import ClaimSignals
from infra.clock import Clock
from infra.errors import DomainError
from leaderboards.runtime import Leaderboards
from next_actions.actions import NextAction, Source, Viewpoint
from next_actions.errors import NextActionsErrorCode
from next_actions.policy import NEXT_ACTIONS, NextActionsOp
from next_actions.ranking import rank
from partners.repository import get_readable_partner
from partners.roles import Principal, Role


async def viewpoint(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    partner_id: uuid.UUID | None,
    signals: ClaimSignals,
    leaderboards: Leaderboards,
) -> Viewpoint:
    """Partner users read their own (naming another partner reads as a missing one);
    vendor staff must name a partner they may see, and read as its organisation's admin."""
    NEXT_ACTIONS.require(principal, NextActionsOp.READ)
    if principal.is_partner:
        assert principal.partner_id is not None
        if partner_id is not None and partner_id != principal.partner_id:
            raise DomainError(NextActionsErrorCode.NOT_FOUND, "No such partner.", "partner_id")
        reader, target = principal, principal.partner_id
    else:
        if partner_id is None:
            raise DomainError(
                NextActionsErrorCode.PARTNER_REQUIRED, "Name the partner.", "partner_id"
            )
        if await get_readable_partner(session, principal, partner_id) is None:
            raise DomainError(NextActionsErrorCode.NOT_FOUND, "No such partner.", "partner_id")
        reader = Principal(vendor_id=principal.vendor_id, role=Role.PARTNER_ADMIN,
                           partner_id=partner_id)  # fmt: skip
        target = partner_id
    return Viewpoint(
        principal=reader, partner_id=target, vendor_id=principal.vendor_id, now=clock.now(),
        signals=signals, leaderboards=leaderboards,
        asker=None if principal.is_partner else principal,
    )  # fmt: skip


async def next_actions(
    session: AsyncSession, view: Viewpoint, sources: Sequence[Source]
) -> list[NextAction]:
    found: list[NextAction] = []
    for source in sources:
        found.extend(await source(session, view))
    unique = {action.key: action for action in found}
    return rank(list(unique.values()))
