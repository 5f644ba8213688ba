"""Who may read which tenancy rows: the one place that decides it for this domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import String, cast, false, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra.db import for_change
from infra.search import contains, search_term
from partners.access import scope
from partners.models import ApiKey, Partner, PartnerStatus, User, UserSubject, Vendor
from partners.policy import TENANCY, TenancyOp
from partners.roles import Principal, Role


def readable_partners(principal: Principal) -> SelectOfScalar[Partner]:
    return select(Partner).where(scope(principal, Partner.vendor_id, Partner.id))


def readable_users(principal: Principal) -> SelectOfScalar[User]:
    """Admins list users: a vendor admin its whole vendor, a partner admin its organisation;
    everyone else sees only themselves."""
    stmt = select(User).where(User.vendor_id == principal.vendor_id)
    match principal.role:
        case Role.VENDOR_ADMIN:
            return stmt
        case Role.PARTNER_ADMIN:
            return stmt.where(User.partner_id == principal.partner_id)
    if principal.user_id is None:
        return stmt.where(false())
    return stmt.where(User.id == principal.user_id)


def users_matching(
    principal: Principal, *, role: Role | None = None, active: bool | None = None
) -> SelectOfScalar[User]:
    """Readable users narrowed by role and/or active (each optional)."""
    stmt = readable_users(principal)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if active is not None:
        stmt = stmt.where(User.active == active)
    return stmt


def readable_api_keys(principal: Principal) -> SelectOfScalar[ApiKey]:
    if not TENANCY.allows(principal, TenancyOp.API_KEYS_READ):
        return select(ApiKey).where(false())
    return select(ApiKey).where(ApiKey.vendor_id == principal.vendor_id)


async def get_readable_partner(
    session: AsyncSession, principal: Principal, partner_id: uuid.UUID, *, lock: bool = False
) -> Partner | None:
    """The partner if the caller may see it; with ``lock``, locked to change it
    (``infra.db.for_change``)."""
    statement = readable_partners(principal).where(Partner.id == partner_id)
    if lock:
        statement = for_change(statement, Partner)
    return (await session.exec(statement)).first()


async def partners_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Partner]:
    rows = await session.exec(readable_partners(principal).where(col(Partner.id).in_(ids)))
    return {p.id: p for p in rows}


async def users_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, User]:
    rows = await session.exec(readable_users(principal).where(col(User.id).in_(ids)))
    return {u.id: u for u in rows}


async def api_keys_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ApiKey]:
    rows = await session.exec(readable_api_keys(principal).where(col(ApiKey.id).in_(ids)))
    return {k.id: k for k in rows}


async def get_users(session: AsyncSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Unscoped, as ``get_user``: for authentication."""
    rows = await session.exec(select(User).where(col(User.id).in_(list(ids))))
    return {u.id: u for u in rows}


async def get_partners(
    session: AsyncSession, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Partner]:
    """Unscoped, as ``get_partner``: for authentication."""
    rows = await session.exec(select(Partner).where(col(Partner.id).in_(list(ids))))
    return {p.id: p for p in rows}


async def get_api_keys(
    session: AsyncSession, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, ApiKey]:
    """Unscoped: for authentication."""
    rows = await session.exec(select(ApiKey).where(col(ApiKey.id).in_(list(ids))))
    return {k.id: k for k in rows}


async def get_vendors(session: AsyncSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Vendor]:
    """Unscoped: for authentication."""
    rows = await session.exec(select(Vendor).where(col(Vendor.id).in_(list(ids))))
    return {v.id: v for v in rows}


async def get_vendor(session: AsyncSession, vendor_id: uuid.UUID) -> Vendor | None:
    return await session.get(Vendor, vendor_id)


async def get_partner(session: AsyncSession, partner_id: uuid.UUID) -> Partner | None:
    return await session.get(Partner, partner_id)


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(func.lower(User.email) == email.lower()))
    return result.first()


async def get_user_by_subject(session: AsyncSession, subject: str) -> User | None:
    """The user bound to an identity-provider subject (partners.invitations)."""
    result = await session.exec(
        select(User)
        .join(UserSubject, col(UserSubject.user_id) == User.id)
        .where(UserSubject.subject == subject)
    )
    return result.first()


async def get_api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    result = await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))
    return result.first()


def partners_matching(
    principal: Principal,
    *,
    status: PartnerStatus | None = None,
    tier: str | None = None,
    region: str | None = None,
    search: str | None = None,
    include_archived: bool = False,
    tag: str | None = None,
    country: str | None = None,
) -> SelectOfScalar[Partner]:
    """Readable partners narrowed by the given filters (each optional). Archived partners
    are left out unless asked for (``include_archived``, or ``status=ARCHIVED``)."""
    stmt = readable_partners(principal)
    if status is not None:
        stmt = stmt.where(Partner.status == status)
    elif not include_archived:
        stmt = stmt.where(Partner.status != PartnerStatus.ARCHIVED)
    if country is not None:
        stmt = stmt.where(Partner.country == country.strip().upper())
    if tag is not None:
        # Tags are a JSON list of lower-case words: match the quoted word in its text.
        word = (search_term(tag, "filter.tag") or "").lower()
        tags = cast(col(Partner.tags), String)
        stmt = stmt.where(contains(tags, f'"{word}"', case_sensitive=True))
    if tier is not None:
        stmt = stmt.where(Partner.tier == tier)
    if region is not None:
        stmt = stmt.where(Partner.region == region)
    term = search_term(search, "filter.search")
    if term is not None:
        stmt = stmt.where(contains(col(Partner.name), term))
    return stmt
