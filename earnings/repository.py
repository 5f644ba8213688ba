"""Who may read which earnings rows: the one place that decides it for this domain.

Vendor admins and finance read their whole vendor; channel managers their assigned
partners; a partner admin its organisation; a partner rep only what is attributed to it.
Statements, holds and decisions are organisation-level: reps read none of them, and only
finance and vendor admins read decision records.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from earnings.models import (
    EarningEntry,
    EntryKind,
    PayoutDecision,
    PayoutHold,
    PayoutReview,
    PayoutStatement,
    PayoutStatus,
    Program,
)
from infra.pages import by_ids
from partners.access import RepAccess, scope
from partners.group_models import PartnerGroupMembership
from partners.models import User
from partners.repository import get_readable_partner
from partners.roles import Principal, Role


def readable_entries(principal: Principal) -> SelectOfScalar[EarningEntry]:
    return select(EarningEntry).where(
        scope(principal, EarningEntry.vendor_id, EarningEntry.partner_id, EarningEntry.rep_user_id)
    )


def readable_statements(principal: Principal) -> SelectOfScalar[PayoutStatement]:
    return select(PayoutStatement).where(
        scope(principal, PayoutStatement.vendor_id, PayoutStatement.partner_id, RepAccess.NONE)
    )


def readable_holds(principal: Principal) -> SelectOfScalar[PayoutHold]:
    statements = readable_statements(principal).subquery()
    return select(PayoutHold).where(col(PayoutHold.statement_id).in_(select(statements.c.id)))


async def readable_programs(session: AsyncSession, principal: Principal) -> SelectOfScalar[Program]:
    """Vendor staff read every program of their vendor. Partner users read the programs
    that apply or applied to their partner: untargeted ones, and those targeted at a group
    it is or was in (a rule's promotion window included, from its start: memberships never
    start later than they are written). One that paid the partner stays readable after it
    left the group, so its entries stay explained. A program targeted elsewhere (a pilot's
    treatment-only bonus, say) is answered as if it did not exist, so nothing hints at
    groups it was never in."""
    stmt = select(Program).where(Program.vendor_id == principal.vendor_id)
    if not principal.role.is_partner:
        return stmt
    groups = {
        str(g)
        for g in await session.exec(
            select(PartnerGroupMembership.group_id).where(
                PartnerGroupMembership.vendor_id == principal.vendor_id,
                PartnerGroupMembership.partner_id == principal.partner_id,
            )
        )
    }
    targeted = await session.exec(
        select(Program.id, Program.target_group_ids).where(Program.vendor_id == principal.vendor_id)
    )
    applying = [pid for pid, targets in targeted if not targets or groups & set(targets)]
    return stmt.where(col(Program.id).in_(applying))


def readable_decisions(principal: Principal) -> SelectOfScalar[PayoutDecision]:
    stmt = select(PayoutDecision).where(PayoutDecision.vendor_id == principal.vendor_id)
    if principal.role in (Role.FINANCE, Role.VENDOR_ADMIN):
        return stmt
    return stmt.where(false())


@dataclass(frozen=True)
class Scope:
    """Whose earnings: a partner organisation, or one rep of it."""

    vendor_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None = None


async def resolve_scope(
    session: AsyncSession,
    principal: Principal,
    *,
    partner_id: uuid.UUID | None = None,
    rep_user_id: uuid.UUID | None = None,
) -> Scope | None:
    """The scope the caller asked for, or None when it may not see it (answered exactly
    like a partner or rep that does not exist)."""
    if principal.role is Role.PARTNER_REP:
        if partner_id not in (None, principal.partner_id) or rep_user_id not in (
            None,
            principal.user_id,
        ):
            return None
        assert principal.partner_id is not None
        return Scope(principal.vendor_id, principal.partner_id, principal.user_id)
    if principal.role is Role.PARTNER_ADMIN:
        if partner_id not in (None, principal.partner_id):
            return None
        partner_id = principal.partner_id
    if partner_id is None:
        return None
    if await get_readable_partner(session, principal, partner_id) is None:
        return None
    if rep_user_id is not None:
        rep = await session.get(User, rep_user_id)
        if rep is None or rep.partner_id != partner_id or rep.vendor_id != principal.vendor_id:
            return None
    return Scope(principal.vendor_id, partner_id, rep_user_id)


def scoped_entries(scope: Scope) -> SelectOfScalar[EarningEntry]:
    stmt = select(EarningEntry).where(
        EarningEntry.vendor_id == scope.vendor_id, EarningEntry.partner_id == scope.partner_id
    )
    if scope.rep_user_id is not None:
        stmt = stmt.where(EarningEntry.rep_user_id == scope.rep_user_id)
    return stmt


async def get_readable_statement(
    session: AsyncSession, principal: Principal, statement_id: uuid.UUID
) -> PayoutStatement | None:
    rows = await session.exec(
        readable_statements(principal).where(PayoutStatement.id == statement_id)
    )
    return rows.first()


async def entries_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, EarningEntry]:
    return await by_ids(session, readable_entries(principal), ids)


async def statements_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, PayoutStatement]:
    return await by_ids(session, readable_statements(principal), ids)


async def holds_of_statement(
    session: AsyncSession, principal: Principal, statement_id: uuid.UUID
) -> list[PayoutHold]:
    stmt = readable_holds(principal).where(PayoutHold.statement_id == statement_id)
    return list(await session.exec(stmt.order_by(col(PayoutHold.id))))


async def decisions_of_statement(
    session: AsyncSession, principal: Principal, statement_id: uuid.UUID
) -> list[PayoutDecision]:
    stmt = readable_decisions(principal).where(PayoutDecision.statement_id == statement_id)
    return list(await session.exec(stmt.order_by(col(PayoutDecision.id))))


def entries_matching(
    principal: Principal,
    *,
    partner_id: uuid.UUID | None = None,
    rep_user_id: uuid.UUID | None = None,
    booked_from: datetime | None = None,
    booked_before: datetime | None = None,
    kind: EntryKind | None = None,
) -> SelectOfScalar[EarningEntry]:
    """Readable ledger entries narrowed by the given filters (each optional)."""
    stmt = readable_entries(principal)
    if partner_id is not None:
        stmt = stmt.where(EarningEntry.partner_id == partner_id)
    if rep_user_id is not None:
        stmt = stmt.where(EarningEntry.rep_user_id == rep_user_id)
    if booked_from is not None:
        stmt = stmt.where(col(EarningEntry.booked_at) >= booked_from)
    if booked_before is not None:
        stmt = stmt.where(col(EarningEntry.booked_at) < booked_before)
    if kind is not None:
        stmt = stmt.where(EarningEntry.kind == kind)
    return stmt


def statements_matching(
    principal: Principal,
    *,
    partner_id: uuid.UUID | None = None,
    status: PayoutStatus | None = None,
) -> SelectOfScalar[PayoutStatement]:
    """Readable payout statements of one partner, in one status (each filter optional)."""
    stmt = readable_statements(principal)
    if partner_id is not None:
        stmt = stmt.where(PayoutStatement.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(PayoutStatement.status == status)
    return stmt


async def readable_program(
    session: AsyncSession, principal: Principal, program_id: uuid.UUID
) -> Program | None:
    return (
        await session.exec(
            (await readable_programs(session, principal)).where(Program.id == program_id)
        )
    ).first()


async def programs_by_ids(
    session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
) -> dict[uuid.UUID, Program]:
    return await by_ids(session, await readable_programs(session, principal), ids)


async def active_reviews(
    session: AsyncSession, partner_id: uuid.UUID, at: datetime
) -> list[PayoutReview]:
    """The partner's payout reviews in force at ``at`` (statements generated then are
    held)."""
    rows = await session.exec(
        select(PayoutReview)
        .where(
            PayoutReview.partner_id == partner_id,
            col(PayoutReview.starts_at) <= at,
            col(PayoutReview.ends_at) > at,
            col(PayoutReview.ended_at).is_(None),
        )
        .order_by(col(PayoutReview.starts_at))
    )
    return list(rows)
