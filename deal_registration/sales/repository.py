"""Who may read which sale-registration rows: the one place that decides it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from deal_registration.events import SALE_APPROVED, SALE_REVERSED
from deal_registration.sales.models import (
    ClaimState,
    RiskFlag,
    SaleClaim,
    SaleClaimDecision,
    SaleClaimSerial,
    SalesSettings,
)
from deal_registration.sales.policy import SALES, SalesOp
from infra.outbox import OutboxEvent
from partners.access import scope
from partners.roles import Principal, Role

CLAIM_OWNER = "sale_claim"


def readable_claims(principal: Principal) -> SelectOfScalar[SaleClaim]:
    """Vendor admins and finance: the vendor's claims; channel managers: their assigned
    partners'; partner admins: their organisation's; partner reps: their own."""
    return select(SaleClaim).where(
        scope(principal, SaleClaim.vendor_id, SaleClaim.partner_id, SaleClaim.rep_user_id)
    )


def reviewable_claims(principal: Principal) -> SelectOfScalar[SaleClaim]:
    """Claims the caller may decide on: vendor admins all, channel managers their
    assigned partners'; nobody else."""
    if principal.role not in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER):
        return select(SaleClaim).where(false())
    return readable_claims(principal)


def readable_risk_flags(principal: Principal) -> SelectOfScalar[RiskFlag]:
    """Risk flags are internal: vendor staff only, and only on claims they may read."""
    if not principal.is_vendor_staff:
        return select(RiskFlag).where(false())
    visible = readable_claims(principal).with_only_columns(col(SaleClaim.id))
    return select(RiskFlag).where(
        RiskFlag.vendor_id == principal.vendor_id, col(RiskFlag.claim_id).in_(visible)
    )


async def get_readable_claim(
    session: AsyncSession, principal: Principal, claim_id: uuid.UUID
) -> SaleClaim | None:
    return (await session.exec(readable_claims(principal).where(SaleClaim.id == claim_id))).first()


async def claims_changed_since(
    session: AsyncSession, principal: Principal, since: datetime, *, limit: int = 200
) -> list[SaleClaim]:
    """Readable claims updated at or after ``since``, oldest change first (what a live
    subscriber may have missed while the pub/sub connection was down)."""
    rows = await session.exec(
        readable_claims(principal)
        .where(col(SaleClaim.updated_at) >= since)
        .order_by(col(SaleClaim.updated_at), col(SaleClaim.id))
        .limit(limit)
    )
    return list(rows)


async def claims_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SaleClaim]:
    rows = await session.exec(readable_claims(principal).where(col(SaleClaim.id).in_(ids)))
    return {c.id: c for c in rows}


async def claim_serials(session: AsyncSession, claim_id: uuid.UUID) -> list[SaleClaimSerial]:
    rows = await session.exec(
        select(SaleClaimSerial)
        .where(SaleClaimSerial.claim_id == claim_id)
        .order_by(col(SaleClaimSerial.position))
    )
    return list(rows)


async def claim_decisions(session: AsyncSession, claim_id: uuid.UUID) -> list[SaleClaimDecision]:
    rows = await session.exec(
        select(SaleClaimDecision)
        .where(SaleClaimDecision.claim_id == claim_id)
        .order_by(col(SaleClaimDecision.id))
    )
    return list(rows)


async def claim_risk_flags(
    session: AsyncSession, principal: Principal, claim_id: uuid.UUID
) -> list[RiskFlag]:
    rows = await session.exec(
        readable_risk_flags(principal)
        .where(RiskFlag.claim_id == claim_id)
        .order_by(col(RiskFlag.id))
    )
    return list(rows)


def default_settings(vendor_id: uuid.UUID) -> SalesSettings:
    return SalesSettings(vendor_id=vendor_id, updated_at=datetime(1970, 1, 1, tzinfo=UTC))


async def get_settings(session: AsyncSession, vendor_id: uuid.UUID) -> SalesSettings:
    found = await session.get(SalesSettings, vendor_id)
    return found if found is not None else default_settings(vendor_id)


def readable_sale_events(principal: Principal) -> SelectOfScalar[OutboxEvent]:
    """SaleApproved / SaleReversed events of the vendor: vendor admins and finance only."""
    if not SALES.allows(principal, SalesOp.READ_SALE_EVENTS):
        return select(OutboxEvent).where(false())
    return select(OutboxEvent).where(
        OutboxEvent.vendor_id == principal.vendor_id,
        col(OutboxEvent.type).in_([SALE_APPROVED, SALE_REVERSED]),
    )


async def serials_of_claims(
    session: AsyncSession, claim_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[SaleClaimSerial]]:
    rows = await session.exec(
        select(SaleClaimSerial)
        .where(col(SaleClaimSerial.claim_id).in_(claim_ids))
        .order_by(col(SaleClaimSerial.claim_id), col(SaleClaimSerial.position))
    )
    grouped: dict[uuid.UUID, list[SaleClaimSerial]] = {}
    for row in rows:
        grouped.setdefault(row.claim_id, []).append(row)
    return grouped


def claims_matching(
    principal: Principal,
    *,
    states: Sequence[ClaimState] = (),
    partner_id: uuid.UUID | None = None,
) -> SelectOfScalar[SaleClaim]:
    """Readable claims in any of the states, of one partner (each filter optional)."""
    stmt = readable_claims(principal)
    if states:
        # Each state once: a list repeating one was as many bound parameters, and asyncpg
        # refuses more than 32,767 ("the number of query arguments cannot exceed 32767").
        stmt = stmt.where(col(SaleClaim.state).in_(list(dict.fromkeys(states))))
    if partner_id is not None:
        stmt = stmt.where(SaleClaim.partner_id == partner_id)
    return stmt
