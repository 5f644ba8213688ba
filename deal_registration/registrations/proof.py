"""Proof files (invoices) on deal registrations, through the shared attachment machinery
(``deal_registration.attachments``): the same checks, storage and download rule as claims,
and the same idempotency keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration import attachments
from deal_registration.registrations import repository
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.models import DealRegistration, DealStatus
from deal_registration.registrations.policy import DEALS, DealOp
from deal_registration.storage import Storage
from infra import idempotency
from infra.clock import Clock
from infra.errors import DomainError
from partners.roles import Principal

# A registration in one of these takes no more files (expired approvals count as EXPIRED).
CLOSED = frozenset({DealStatus.WITHDRAWN, DealStatus.REJECTED, DealStatus.LOST, DealStatus.EXPIRED})

ATTACH_SCOPE = "dealRegistrationAttachProof"  # idempotency keys of attaching proof


async def _lock(session: AsyncSession, registration_id: uuid.UUID) -> None:
    """Serialise uploads to one registration, so the file limit holds under concurrency: a
    no-op update takes the row lock on PostgreSQL (SQLite transactions already hold the
    write lock from BEGIN IMMEDIATE, see infra.db). It reveals nothing: visibility is
    checked right after."""
    await session.exec(
        update(DealRegistration)
        .where(col(DealRegistration.id) == registration_id)
        .values(id=DealRegistration.id)
    )


async def attach_proof(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    storage: Storage,
    *,
    registration_id: uuid.UUID,
    proof_files: Sequence[attachments.ProofFile],
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
    idempotency_key: str | None = None,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
) -> tuple[DealRegistration, list[attachments.Attachment]]:
    """Attach invoices (one or several, all or nothing) to a registration the caller may
    see. Every check runs before a file is stored, so a refused upload leaves neither a row
    nor a file. With an idempotency key, the same caller's retry with the same files returns
    the files its first request stored and stores nothing, even once the registration is
    closed; other files under the key are refused (``infra.idempotency``)."""
    DEALS.require(principal, DealOp.ATTACH_PROOF)
    await _lock(session, registration_id)
    registration = await repository.get_readable(session, principal, registration_id)
    if registration is None:
        raise DomainError(Code.NOT_FOUND, "No such deal registration.", "id")
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=ATTACH_SCOPE,
        key=idempotency_key, now=clock.now(), codes=Code, retention=key_retention,
        request={
            "registration_id": registration.id,
            "proof_sha256": attachments.proof_digest(proof_files),
        },
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        first = await attachments.attachments_of_upload(
            session, repository.REGISTRATION_OWNER, registration.id, taken.replay
        )
        if not first:
            raise idempotency.gone(Code)
        return registration, first
    status = repository.effective_status(registration, clock.now())
    if status in CLOSED:
        raise DomainError(
            Code.INVALID_TRANSITION,
            f"A registration that is {status.value} takes no more proof.",
            "id",
        )
    noun = "deal registration"
    attachments.check_proofs(proof_files, max_upload_bytes, noun=noun)
    await attachments.ensure_room(
        session, repository.REGISTRATION_OWNER, registration.id, noun=noun, files=proof_files
    )
    stored = await attachments.store_attachments(
        session, clock, storage, vendor_id=registration.vendor_id,
        owner_kind=repository.REGISTRATION_OWNER, owner_id=registration.id, files=proof_files,
        uploaded_by_id=principal.user_id, max_bytes=max_upload_bytes,
    )  # fmt: skip
    if taken is not None:
        await taken.done(session, attachments.uploaded(stored))
    return registration, stored
