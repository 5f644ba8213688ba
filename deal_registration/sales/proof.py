"""Adding proof to a claim; a claim waiting for proof moves on. Idempotent per caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration import attachments
from deal_registration.sales import repository, risk
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.locks import lock_for_write
from deal_registration.sales.models import ClaimState, DecisionAction, SaleClaim, SerialOutcome
from deal_registration.sales.policy import SALES, SalesOp
from deal_registration.sales.submission import auto_approvable
from deal_registration.sales.transitions import locked_claim, store_proofs, transition
from deal_registration.storage import Storage
from infra import idempotency
from infra.clock import Clock
from infra.errors import DomainError
from partners.roles import Principal

ATTACH_SCOPE = "saleClaimAttachProof"  # idempotency keys of adding proof


async def attach_proof(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    storage: Storage,
    *,
    claim_id: uuid.UUID,
    proof_files: Sequence[attachments.ProofFile],
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
    idempotency_key: str | None = None,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
) -> SaleClaim:
    """Add proof (one file or several, all or nothing) to a claim; a claim waiting for proof
    moves on (auto-approved when it qualifies, else to review). With an idempotency key,
    the same caller's retry with the same files returns the claim and stores nothing, even
    once the claim has moved on; other files under the key are refused
    (``infra.idempotency``)."""
    SALES.require(principal, SalesOp.ATTACH_PROOF)
    await lock_for_write(session)
    claim = await locked_claim(session, repository.readable_claims(principal), claim_id)
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=ATTACH_SCOPE,
        key=idempotency_key, now=clock.now(), codes=SaleClaimErrorCode, retention=key_retention,
        request={"claim_id": claim.id, "proof_sha256": attachments.proof_digest(proof_files)},
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        return claim
    if claim.state in (ClaimState.REJECTED, ClaimState.REVERSED):
        raise DomainError(
            SaleClaimErrorCode.INVALID_STATE,
            f"A {claim.state.value.lower()} claim takes no more proof.",
            "claim_id",
        )
    attachments.check_proofs(proof_files, max_upload_bytes, noun="claim")
    await attachments.ensure_room(
        session, repository.CLAIM_OWNER, claim.id, noun="claim", files=proof_files
    )
    now = clock.now()
    stored = await store_proofs(
        session, clock, storage, claim, proof_files, principal, max_upload_bytes
    )
    if taken is not None:
        await taken.done(session, attachments.uploaded(stored))
    for attachment in stored:
        await risk.assess_attachment(session, claim, attachment, now)
    if claim.state is ClaimState.NEEDS_PROOF:
        settings = await repository.get_settings(session, claim.vendor_id)
        flagged = await risk.has_flags(session, claim.id)
        all_valid = all(
            s.outcome is SerialOutcome.VALID
            for s in await repository.claim_serials(session, claim.id)
        )
        asked_by_reviewer = any(
            d.action is DecisionAction.PROOF_REQUESTED
            for d in await repository.claim_decisions(session, claim.id)
        )
        to_state = (
            ClaimState.AUTO_APPROVED
            if all_valid and not asked_by_reviewer and auto_approvable(settings, claim, flagged)
            else ClaimState.UNDER_REVIEW
        )
        await transition(
            session, clock, claim, to_state, DecisionAction.PROOF_ADDED, by=principal.user_id,
            reason=None, note="",
        )  # fmt: skip
    return claim
