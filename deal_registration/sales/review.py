"""Reviewers' decisions on claims: approve, reject, ask for more proof, reverse."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales import repository
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.locks import lock_for_write
from deal_registration.sales.models import (
    CREDITED_STATES,
    OPEN_STATES,
    ClaimState,
    DecisionAction,
    RejectReason,
    ReverseReason,
    SaleClaim,
)
from deal_registration.sales.transitions import locked_claim, transition
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import free_text_problem
from partners.roles import Principal

MAX_NOTE = 2000


def clean_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise DomainError(SaleClaimErrorCode.TOO_LONG, f"At most {MAX_NOTE} characters.", "note")
    if problem := free_text_problem(note):
        raise DomainError(SaleClaimErrorCode.INVALID_CHARACTERS, problem, "note")
    return note


async def decide(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    claim_id: uuid.UUID,
    allowed_from: frozenset[ClaimState],
    to_state: ClaimState,
    action: DecisionAction,
    reason: str | None,
    note: str,
) -> SaleClaim:
    note = clean_note(note)
    await lock_for_write(session)
    claim = await locked_claim(session, repository.reviewable_claims(principal), claim_id)
    if claim.state not in allowed_from:
        raise DomainError(
            SaleClaimErrorCode.INVALID_STATE,
            f"The claim is {claim.state.value}; this decision needs it "
            f"{' or '.join(sorted(s.value for s in allowed_from))}.",
            "id",
        )
    await transition(
        session, clock, claim, to_state, action, by=principal.user_id, reason=reason, note=note
    )
    return claim


async def approve(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    note: str = "",
) -> SaleClaim:  # fmt: skip
    return await decide(
        session, principal, clock, claim_id=claim_id, allowed_from=OPEN_STATES,
        to_state=ClaimState.APPROVED, action=DecisionAction.APPROVED, reason=None, note=note,
    )  # fmt: skip


async def reject(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    reason: RejectReason, note: str = "",
) -> SaleClaim:  # fmt: skip
    return await decide(
        session, principal, clock, claim_id=claim_id, allowed_from=OPEN_STATES,
        to_state=ClaimState.REJECTED, action=DecisionAction.REJECTED, reason=reason.value,
        note=note,
    )  # fmt: skip


async def request_proof(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    note: str = "",
) -> SaleClaim:  # fmt: skip
    return await decide(
        session, principal, clock, claim_id=claim_id,
        allowed_from=frozenset({ClaimState.UNDER_REVIEW}), to_state=ClaimState.NEEDS_PROOF,
        action=DecisionAction.PROOF_REQUESTED, reason=None, note=note,
    )  # fmt: skip


async def reverse(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    reason: ReverseReason, note: str = "",
) -> SaleClaim:  # fmt: skip
    claim = await decide(
        session, principal, clock, claim_id=claim_id, allowed_from=CREDITED_STATES,
        to_state=ClaimState.REVERSED, action=DecisionAction.REVERSED, reason=reason.value,
        note=note,
    )  # fmt: skip
    claim.reverse_reason = reason
    session.add(claim)
    await session.flush()
    return claim
