"""Conflict detection: a registration against the vendor's other live ones, recorded as
DealConflict rows at submission and again at approval."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, delete
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations import conflicts, repository
from deal_registration.registrations.models import (
    ConflictStage,
    DealConflict,
    DealProgramSettings,
    DealRegistration,
)


async def detect_conflicts(
    session: AsyncSession,
    registration: DealRegistration,
    program: DealProgramSettings,
    now: datetime,
    stage: ConflictStage,
) -> list[tuple[DealConflict, DealRegistration]]:
    """Compare the registration with every active registration of its vendor (any partner)
    and record the evidence for this stage, replacing what the stage found before."""
    others = await repository.active_for_vendor(
        session, registration.vendor_id, now, exclude=registration.id
    )
    lines = await repository.lines_of(session, [registration.id, *(o.id for o in others)])

    def customer(r: DealRegistration) -> conflicts.Customer:
        return conflicts.Customer(
            name_key=r.customer_name_key,
            domain=r.customer_domain,
            country=r.customer_country,
            skus=frozenset(li.sku for li in lines[r.id]),
        )

    by_id = {o.id: o for o in others}
    matches = conflicts.find_matches(
        customer(registration),
        ((o.id, customer(o)) for o in others),
        threshold=program.similarity_threshold,
    )
    await session.exec(
        delete(DealConflict).where(
            col(DealConflict.registration_id) == registration.id,
            col(DealConflict.stage) == stage,
        )
    )
    found: list[tuple[DealConflict, DealRegistration]] = []
    for other_id, match in matches:
        other = by_id[other_id]  # type: ignore[index]
        row = DealConflict(
            vendor_id=registration.vendor_id,
            registration_id=registration.id,
            other_registration_id=other.id,
            stage=stage,
            rules=[rule.value for rule in match.rules],
            score=match.score,
            name_score=match.name_score,
            shared_skus=list(match.shared_skus),
            same_country=match.same_country,
            other_is_earlier=_earlier(other, registration),
            detected_at=now,
        )
        session.add(row)
        found.append((row, other))
    await session.flush()
    return found


def _earlier(a: DealRegistration, b: DealRegistration) -> bool:
    a_key = (a.submitted_at or a.created_at, a.id)
    b_key = (b.submitted_at or b.created_at, b.id)
    return a_key < b_key
