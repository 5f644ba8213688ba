"""Payout reviews: a partner's payouts held for review for a while, placed by another part
of the product (an incentive rule's firing). Statements open now are held at once;
statements generated while the review runs are held at generation
(``payouts.automatic_holds``). Finance releases each hold as usual."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.errors import EarningsErrorCode
from earnings.ledger import record_change
from earnings.models import HoldReason, PayoutReview, PayoutStatement, PayoutStatus
from earnings.payouts import HoldFinding, hold_statement
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import free_text_problem

OPEN_STATUSES = (PayoutStatus.PENDING, PayoutStatus.APPROVED, PayoutStatus.HELD)


async def place_review(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    partner_id: uuid.UUID,
    partner_note: str,
    internal_note: str,
    ends_at: datetime,
    source: str,
    source_id: uuid.UUID,
    open_statements: list[PayoutStatement] | None = None,
) -> tuple[PayoutReview, int]:
    """Hold the partner's open statements (not yet paid; read here unless the caller read
    them for many partners at once, ``open_statements_of``) and those generated until
    ``ends_at``. Returns the review and how many statements it held now."""
    partner_note = partner_note.strip()
    if not partner_note:
        raise DomainError(
            EarningsErrorCode.REQUIRED, "Say why, in words the partner reads.", "partner_note"
        )
    for text, field in ((partner_note, "partner_note"), (internal_note, "internal_note")):
        if problem := free_text_problem(text):
            raise DomainError(EarningsErrorCode.INVALID_CHARACTERS, problem, field)
    now = clock.now()
    review = PayoutReview(
        vendor_id=vendor_id, partner_id=partner_id, partner_note=partner_note[:500],
        internal_note=internal_note[:2000], starts_at=now, ends_at=ends_at, source=source[:32],
        source_id=source_id, created_at=now,
    )  # fmt: skip
    session.add(review)  # flushed by the caller (or below, with the holds)
    if open_statements is None:
        found = await open_statements_of(session, vendor_id, [partner_id])
        open_statements = found.get(partner_id, [])
    statements = open_statements
    finding = HoldFinding(
        HoldReason.REVIEW, internal_note, expected_release_at=ends_at, partner_note=partner_note
    )
    for statement in statements:
        await hold_statement(session, None, clock, statement, finding)
    if statements:
        await record_change(session, clock, vendor_id=vendor_id, partner_id=partner_id)
    return review, len(statements)


async def open_statements_of(
    session: AsyncSession, vendor_id: uuid.UUID, partner_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[PayoutStatement]]:
    """The statements not yet paid of these partners, by partner."""
    out: dict[uuid.UUID, list[PayoutStatement]] = {}
    ids = list(partner_ids)
    with session.no_autoflush:  # a rule run places many: one flush for all of them
        for i in range(0, len(ids), 500):
            rows = await session.exec(
                select(PayoutStatement).where(
                    PayoutStatement.vendor_id == vendor_id,
                    col(PayoutStatement.partner_id).in_(ids[i : i + 500]),
                    col(PayoutStatement.status).in_(OPEN_STATUSES),
                )
            )
            for statement in rows:
                out.setdefault(statement.partner_id, []).append(statement)
    return out


async def end_reviews(
    session: AsyncSession, clock: Clock, *, review_ids: Collection[uuid.UUID]
) -> list[PayoutReview]:
    """Stop holding statements generated from now on (holds placed stay for finance)."""
    if not review_ids:
        return []
    now = clock.now()
    rows = list(
        await session.exec(
            select(PayoutReview).where(
                col(PayoutReview.id).in_(list(review_ids)),
                col(PayoutReview.ended_at).is_(None),
                col(PayoutReview.ends_at) > now,
            )
        )
    )
    for review in rows:
        review.ended_at = now
        session.add(review)
    await session.flush()
    return rows
