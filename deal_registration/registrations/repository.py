"""Who may read which deal registrations (the one place that decides it), and the
time-dependent predicates that queries and conflict checks share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, not_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from deal_registration.registrations.models import (
    DEFAULT_SETTINGS,
    DealConflict,
    DealExtensionRequest,
    DealProgramSettings,
    DealRegistration,
    DealRegistrationLine,
    DealStatus,
    DealTransition,
    ExtensionStatus,
)
from infra.db import for_change
from infra.search import contains, search_term
from partners.access import scope
from partners.models import Partner
from partners.roles import Principal

REGISTRATION_OWNER = "deal_registration"  # the owner kind of a registration's attachments
REVIEW_STATUSES = (DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW)


def readable_registrations(principal: Principal) -> SelectOfScalar[DealRegistration]:
    """A rep sees the registrations it made, a partner admin its organisation's, a channel
    manager its assigned partners', vendor admins and finance all of the vendor's."""
    return select(DealRegistration).where(
        scope(
            principal,
            DealRegistration.vendor_id,
            DealRegistration.partner_id,
            DealRegistration.registered_by_id,
        )
    )


# Expiry is derived from the clock: an APPROVED registration whose period has ended is
# EXPIRED from that instant on, for every reader and for conflict checks, whether or not
# the sweep (expiry.expire_due) has written it down yet.


def is_expired(now: datetime) -> ColumnElement[bool]:
    return or_(
        col(DealRegistration.status) == DealStatus.EXPIRED,
        and_(
            col(DealRegistration.status) == DealStatus.APPROVED,
            col(DealRegistration.expires_at) <= now,
        ),
    )


def is_live_approval(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(DealRegistration.status) == DealStatus.APPROVED, col(DealRegistration.expires_at) > now
    )


def has_status(status: DealStatus, now: datetime) -> ColumnElement[bool]:
    if status is DealStatus.EXPIRED:
        return is_expired(now)
    if status is DealStatus.APPROVED:
        return is_live_approval(now)
    return col(DealRegistration.status) == status


def is_active(now: datetime) -> ColumnElement[bool]:
    """Competes for the customer: submitted, under review, or approved and not expired."""
    return or_(col(DealRegistration.status).in_(REVIEW_STATUSES), is_live_approval(now))


def effective_status_expr(now: datetime) -> ColumnElement[str]:
    return case((is_expired(now), DealStatus.EXPIRED.value), else_=col(DealRegistration.status))


def effective_status(registration: DealRegistration, now: datetime) -> DealStatus:
    if (
        registration.status is DealStatus.APPROVED
        and registration.expires_at is not None
        and registration.expires_at <= now
    ):
        return DealStatus.EXPIRED
    return registration.status


def is_overdue(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(DealRegistration.status).in_(REVIEW_STATUSES),
        col(DealRegistration.review_due_at) <= now,
    )


def is_conflicted(principal: Principal) -> ColumnElement[bool]:
    """Has conflict evidence. Partners only learn of conflicts with earlier registrations,
    so for them a later registration naming theirs does not count."""
    if principal.is_partner:
        return col(DealRegistration.id).in_(
            select(DealConflict.registration_id).where(col(DealConflict.other_is_earlier).is_(True))
        )
    return or_(
        col(DealRegistration.id).in_(select(DealConflict.registration_id)),
        col(DealRegistration.id).in_(select(DealConflict.other_registration_id)),
    )


async def changed_since(
    session: AsyncSession, principal: Principal, since: datetime, *, limit: int = 200
) -> list[DealRegistration]:
    """Readable registrations updated at or after ``since``, oldest change first (what a
    live subscriber may have missed while the pub/sub connection was down)."""
    rows = await session.exec(
        readable_registrations(principal)
        .where(col(DealRegistration.updated_at) >= since)
        .order_by(col(DealRegistration.updated_at), col(DealRegistration.id))
        .limit(limit)
    )
    return list(rows)


async def get_readable(
    session: AsyncSession, principal: Principal, registration_id: uuid.UUID, *, lock: bool = False
) -> DealRegistration | None:
    """The registration if the caller may see it; with ``lock``, its row locked (FOR
    UPDATE) and its attributes read anew even when the session holds it already."""
    statement = readable_registrations(principal).where(DealRegistration.id == registration_id)
    if lock:
        statement = for_change(statement, DealRegistration)
    rows = await session.exec(statement)
    return rows.first()


async def registrations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DealRegistration]:
    rows = await session.exec(
        readable_registrations(principal).where(col(DealRegistration.id).in_(list(ids)))
    )
    return {r.id: r for r in rows}


async def active_for_vendor(
    session: AsyncSession, vendor_id: uuid.UUID, now: datetime, *, exclude: uuid.UUID
) -> list[DealRegistration]:
    rows = await session.exec(
        select(DealRegistration).where(
            DealRegistration.vendor_id == vendor_id,
            DealRegistration.id != exclude,
            is_active(now),
        )
    )
    return list(rows)


async def lines_of(
    session: AsyncSession, registration_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DealRegistrationLine]]:
    out: dict[uuid.UUID, list[DealRegistrationLine]] = {i: [] for i in registration_ids}
    if not registration_ids:
        return out
    rows = await session.exec(
        select(DealRegistrationLine)
        .where(col(DealRegistrationLine.registration_id).in_(list(registration_ids)))
        .order_by(col(DealRegistrationLine.sku))
    )
    for line in rows:
        out[line.registration_id].append(line)
    return out


async def history_of(session: AsyncSession, registration_id: uuid.UUID) -> list[DealTransition]:
    rows = await session.exec(
        select(DealTransition)
        .where(DealTransition.registration_id == registration_id)
        .order_by(col(DealTransition.id))
    )
    return list(rows)


async def conflicts_involving(
    session: AsyncSession, registration_id: uuid.UUID
) -> list[DealConflict]:
    """Every conflict found for this registration or naming it (vendor staff's view)."""
    rows = await session.exec(
        select(DealConflict)
        .where(
            or_(
                col(DealConflict.registration_id) == registration_id,
                col(DealConflict.other_registration_id) == registration_id,
            )
        )
        .order_by(col(DealConflict.id))
    )
    return list(rows)


async def conflicts_with_earlier(
    session: AsyncSession, registration_id: uuid.UUID
) -> list[DealConflict]:
    """The conflicts a registering partner may learn about: with earlier registrations."""
    rows = await session.exec(
        select(DealConflict)
        .where(
            DealConflict.registration_id == registration_id,
            col(DealConflict.other_is_earlier).is_(True),
        )
        .order_by(col(DealConflict.id))
    )
    return list(rows)


async def extension_requests_of(
    session: AsyncSession, registration_id: uuid.UUID
) -> list[DealExtensionRequest]:
    rows = await session.exec(
        select(DealExtensionRequest)
        .where(DealExtensionRequest.registration_id == registration_id)
        .order_by(col(DealExtensionRequest.id))
    )
    return list(rows)


async def pending_extension(
    session: AsyncSession, registration_id: uuid.UUID
) -> DealExtensionRequest | None:
    rows = await session.exec(
        select(DealExtensionRequest).where(
            DealExtensionRequest.registration_id == registration_id,
            DealExtensionRequest.status == ExtensionStatus.PENDING,
        )
    )
    return rows.first()


async def get_by_idempotency_key(
    session: AsyncSession, vendor_id: uuid.UUID, partner_id: uuid.UUID, key: str
) -> DealRegistration | None:
    rows = await session.exec(
        select(DealRegistration).where(
            DealRegistration.vendor_id == vendor_id,
            DealRegistration.partner_id == partner_id,
            DealRegistration.idempotency_key == key,
        )
    )
    return rows.first()


async def program_settings(session: AsyncSession, vendor_id: uuid.UUID) -> DealProgramSettings:
    """The vendor's settings, or the defaults (not stored) when it never changed them."""
    found = await session.get(DealProgramSettings, vendor_id)
    return found or DealProgramSettings(vendor_id=vendor_id, **DEFAULT_SETTINGS)


async def registrations_by_vendor_ids(
    session: AsyncSession, vendor_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DealRegistration]:
    """Registrations of one vendor by id, whoever made them: for conflict evidence, which
    vendor staff see in full (callers check the role)."""
    if not ids:
        return {}
    rows = await session.exec(
        select(DealRegistration).where(
            DealRegistration.vendor_id == vendor_id, col(DealRegistration.id).in_(list(ids))
        )
    )
    return {r.id: r for r in rows}


async def partner_names(
    session: AsyncSession, partner_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    wanted = list(partner_ids)
    if not wanted:
        return {}
    rows = await session.exec(select(Partner).where(col(Partner.id).in_(wanted)))
    return {p.id: p.name for p in rows}


def registrations_matching(
    principal: Principal,
    now: datetime,
    *,
    statuses: Sequence[DealStatus] = (),
    partner_id: uuid.UUID | None = None,
    customer: str | None = None,
    expiring_within: timedelta | None = None,
    conflicted: bool | None = None,
    overdue: bool | None = None,
) -> SelectOfScalar[DealRegistration]:
    """Readable registrations narrowed by the given filters (each optional): any of the
    statuses, one partner, part of the customer's name or domain, approvals whose
    protection ends within ``expiring_within``, (not) conflicted, (not) overdue."""
    stmt = readable_registrations(principal)
    if statuses:
        # Each status once: a list repeating one was an OR of as many conditions, which
        # SQLite refuses past 1,000 ("Expression tree is too large").
        stmt = stmt.where(or_(*(has_status(s, now) for s in dict.fromkeys(statuses))))
    if partner_id is not None:
        stmt = stmt.where(DealRegistration.partner_id == partner_id)
    term = search_term(customer, "filter.customer")
    if term is not None:
        stmt = stmt.where(
            or_(
                contains(col(DealRegistration.customer_name), term),
                contains(col(DealRegistration.customer_domain), term),
            )
        )
    if expiring_within is not None:
        stmt = stmt.where(
            is_live_approval(now), col(DealRegistration.expires_at) <= now + expiring_within
        )
    if conflicted is not None:
        stmt = stmt.where(
            is_conflicted(principal) if conflicted else not_(is_conflicted(principal))
        )
    if overdue is not None:
        stmt = stmt.where(is_overdue(now) if overdue else not_(is_overdue(now)))
    return stmt
