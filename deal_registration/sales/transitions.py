"""Every state change of a claim: a decision row (who, when, why), a
``SaleClaimStateChanged`` notice for live subscribers, and — on approval and reversal —
the ``SaleApproved`` / ``SaleReversed`` event of ``deal_registration.events``, all in the
caller's transaction."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration import attachments
from deal_registration.events import Line, SaleApproved, SaleClaimStateChanged, SaleReversed
from deal_registration.sales import repository
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.models import (
    CREDITED_STATES,
    ClaimState,
    DecisionAction,
    RejectReason,
    SaleClaim,
    SaleClaimDecision,
    SerialCredit,
    SerialOutcome,
)
from deal_registration.storage import Storage
from infra.clock import Clock
from infra.errors import DomainError
from infra.money import split_minor
from infra.outbox import record_event
from partners.roles import Principal


async def store_proofs(
    session: AsyncSession,
    clock: Clock,
    storage: Storage,
    claim: SaleClaim,
    files: Sequence[attachments.ProofFile],
    principal: Principal,
    max_upload_bytes: int,
) -> list[attachments.Attachment]:
    return await attachments.store_attachments(
        session, clock, storage, vendor_id=claim.vendor_id, owner_kind=repository.CLAIM_OWNER,
        owner_id=claim.id, files=files, uploaded_by_id=principal.user_id,
        max_bytes=max_upload_bytes,
    )  # fmt: skip


async def transition(
    session: AsyncSession,
    clock: Clock,
    claim: SaleClaim,
    to_state: ClaimState,
    action: DecisionAction,
    *,
    by: uuid.UUID | None,
    reason: str | None,
    note: str,
    initial: bool = False,
) -> None:
    now = clock.now()
    from_state = None if initial else claim.state
    claim.state = to_state
    claim.updated_at = now
    if to_state is ClaimState.REJECTED:
        claim.reject_reason = RejectReason(reason) if reason else RejectReason.OTHER
        await session.execute(delete(SerialCredit).where(col(SerialCredit.claim_id) == claim.id))
    session.add(claim)
    session.add(
        SaleClaimDecision(
            claim_id=claim.id,
            partner_id=claim.partner_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            note=note,
            decided_by_id=by,
            decided_at=now,
        )  # fmt: skip
    )
    await session.flush()
    credited = to_state in CREDITED_STATES and from_state not in CREDITED_STATES
    if credited:
        approved = await credit_of(session, claim, now)
        event = await record_event(
            session, clock, vendor_id=claim.vendor_id, type=approved.type,
            aggregate_id=claim.id, payload=approved.to_payload(), occurred_at=now,
        )  # fmt: skip
        claim.approved_event_id = event.id
        session.add(claim)
    if to_state is ClaimState.REVERSED:
        assert claim.approved_event_id is not None
        approved = await credit_of(session, claim, now)
        reversed_ = SaleReversed(
            claim_id=claim.id, partner_id=claim.partner_id, rep_user_id=claim.rep_user_id,
            region=claim.region, currency=claim.currency, amount_minor=claim.amount_minor,
            reverses_event_id=claim.approved_event_id, reason=reason or "",
            lines=approved.lines, sold_at=approved.sold_at, reversed_at=now,
        )  # fmt: skip
        await record_event(
            session, clock, vendor_id=claim.vendor_id, type=reversed_.type,
            aggregate_id=claim.id, payload=reversed_.to_payload(), occurred_at=now,
        )  # fmt: skip
    changed = SaleClaimStateChanged(
        claim_id=claim.id, partner_id=claim.partner_id, rep_user_id=claim.rep_user_id,
        state=to_state.value, credit_follows=credited or to_state is ClaimState.REVERSED,
    )  # fmt: skip
    await record_event(
        session, clock, vendor_id=claim.vendor_id, type=changed.type, aggregate_id=claim.id,
        payload=changed.to_payload(), occurred_at=now,
    )  # fmt: skip


async def approved_sale(session: AsyncSession, claim: SaleClaim) -> SaleApproved:
    """The sale an approved claim credits (as its SaleApproved event carries it)."""
    return await credit_of(session, claim, claim.updated_at)


async def credit_of(session: AsyncSession, claim: SaleClaim, now: datetime) -> SaleApproved:
    """The credit a claim carries: its valid serials, per SKU, with the amount shared out
    by units (``infra.money.split_minor``: the lines add up exactly)."""
    lines_serials = await repository.claim_serials(session, claim.id)
    units = Counter(
        s.sku or "" for s in lines_serials if s.outcome is SerialOutcome.VALID and s.sku
    )
    by_sku = sorted(units.items())
    shares = split_minor(claim.amount_minor, [count for _, count in by_sku])
    lines = [
        Line(sku=sku, units=count, amount_minor=share)
        for (sku, count), share in zip(by_sku, shares, strict=True)
    ]
    return SaleApproved(
        claim_id=claim.id, partner_id=claim.partner_id, rep_user_id=claim.rep_user_id,
        region=claim.region, currency=claim.currency, amount_minor=claim.amount_minor,
        lines=lines, sold_at=datetime.combine(claim.sale_date, time(0), UTC), approved_at=now,
        customer_name=claim.customer_name,
    )  # fmt: skip


async def locked_claim(session: AsyncSession, statement: object, claim_id: uuid.UUID) -> SaleClaim:
    stmt = statement.where(SaleClaim.id == claim_id).with_for_update()  # type: ignore[attr-defined]
    claim: SaleClaim | None = (await session.exec(stmt)).first()
    if claim is None:
        raise DomainError(SaleClaimErrorCode.NOT_FOUND, "No such sale claim.", "id")
    return claim
