"""Tenancy operations: onboarding vendors, partners and users, and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.db import for_change
from infra.errors import DomainError
from infra.text import name_problem
from partners import repository
from partners.audit_log import AuditEntity, log_change
from partners.errors import TenancyErrorCode
from partners.groups import refresh_memberships
from partners.models import ApiKey, ManagerAssignment, Partner, PartnerStatus, User, Vendor
from partners.policy import TENANCY, TenancyOp
from partners.roles import USER_ROLES, VENDOR_ROLES, Principal, Role

API_KEY_PREFIX = "cbk_"


async def create_vendor(session: AsyncSession, clock: Clock, *, name: str, slug: str) -> Vendor:
    vendor = Vendor(name=name, slug=slug, created_at=clock.now())
    session.add(vendor)
    await session.flush()
    return vendor


async def create_partner(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    name: str,
    region: str,
    tier: str = "REGISTERED",
    status: PartnerStatus = PartnerStatus.ACTIVE,
    internal_notes: str = "",
) -> Partner:
    partner = Partner(
        vendor_id=vendor_id,
        name=name,
        region=region,
        tier=tier,
        status=status,
        internal_notes=internal_notes,
        created_at=clock.now(),
    )
    session.add(partner)
    await session.flush()
    await refresh_memberships(
        session, clock, vendor_id=vendor_id, partner_ids=[partner.id], reason="partner created",
        by="system",
    )  # fmt: skip
    return partner


async def create_user(
    session: AsyncSession,
    clock: Clock,
    *,
    vendor_id: uuid.UUID,
    email: str,
    role: Role,
    display_name: str,
    partner_id: uuid.UUID | None = None,
    active: bool = True,
) -> User:
    if role not in USER_ROLES or role.is_partner != (partner_id is not None):
        raise DomainError(
            TenancyErrorCode.INVALID_ROLE,
            "partner roles need a partner; vendor roles must not have one",
            "role",
        )
    user = User(
        vendor_id=vendor_id,
        partner_id=partner_id,
        email=email.strip().lower(),
        display_name=display_name,
        role=role,
        active=active,
        created_at=clock.now(),
    )
    session.add(user)
    await session.flush()
    return user


async def assign_manager(
    session: AsyncSession, clock: Clock, *, manager: User, partner: Partner
) -> ManagerAssignment:
    if manager.role is not Role.CHANNEL_MANAGER or manager.vendor_id != partner.vendor_id:
        raise DomainError(
            TenancyErrorCode.INVALID_ROLE, "only a channel manager of the same vendor"
        )
    assignment = ManagerAssignment(
        vendor_id=partner.vendor_id,
        manager_id=manager.id,
        partner_id=partner.id,
        created_at=clock.now(),
    )
    session.add(assignment)
    await session.flush()
    return assignment


@dataclass(frozen=True)
class IssuedApiKey:
    key: ApiKey
    secret: str  # shown once; only its hash is stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def person_behind(session: AsyncSession, principal: Principal) -> uuid.UUID | None:
    """The person behind the caller, for four eyes and for who made what: the user, or the
    user who made the API key (a key made with a key is its maker's maker's, so no chain of
    keys leaves a person's own request without them)."""
    if principal.user_id is not None or principal.api_key_id is None:
        return principal.user_id
    key = await session.get(ApiKey, principal.api_key_id)
    return key.created_by_id if key is not None else None


async def create_api_key(
    session: AsyncSession, principal: Principal, clock: Clock, *, name: str, role: Role
) -> IssuedApiKey:
    TENANCY.require(principal, TenancyOp.API_KEY_CREATE)
    if principal.user_id is None:
        # A key making keys would let a leaked one outlive its revocation through the keys
        # it made, each acting for the vendor.
        raise DomainError(
            TenancyErrorCode.PERSON_REQUIRED,
            "An API key is made by a signed-in vendor admin, not by another API key.",
        )
    name = name.strip()
    if not name:
        raise DomainError(TenancyErrorCode.REQUIRED, "Give the key a name.", "name")
    if len(name) > 100:
        raise DomainError(
            TenancyErrorCode.TOO_LONG, "A key name has at most 100 characters.", "name"
        )
    if problem := name_problem(name):
        raise DomainError(TenancyErrorCode.INVALID_CHARACTERS, problem, "name")
    if role not in VENDOR_ROLES:
        raise DomainError(
            TenancyErrorCode.INVALID_ROLE, "API keys act for the vendor, not for a partner.", "role"
        )
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        vendor_id=principal.vendor_id,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        role=role,
        created_by_id=await person_behind(session, principal),
        created_at=clock.now(),
    )
    session.add(key)
    await session.flush()
    await log_change(
        session, principal, clock, action="api_key.created", entity_type=AuditEntity.API_KEY,
        entity_id=key.id, before=None, after={"name": key.name, "role": key.role,
        "prefix": key.prefix},
    )  # fmt: skip
    return IssuedApiKey(key=key, secret=secret)


async def revoke_api_key(
    session: AsyncSession, principal: Principal, clock: Clock, *, key_id: uuid.UUID
) -> ApiKey:
    TENANCY.require(principal, TenancyOp.API_KEY_REVOKE)
    result = await session.exec(
        for_change(repository.readable_api_keys(principal).where(ApiKey.id == key_id), ApiKey)
    )
    key = result.first()
    if key is None:
        raise DomainError(TenancyErrorCode.NOT_FOUND, "No such API key.", "id")
    if key.revoked_at is not None:
        raise DomainError(TenancyErrorCode.ALREADY_REVOKED, "This key is already revoked.", "id")
    key.revoked_at = clock.now()
    session.add(key)
    await session.flush()
    await log_change(
        session, principal, clock, action="api_key.revoked", entity_type=AuditEntity.API_KEY,
        entity_id=key.id, before={"revoked_at": None}, after={"revoked_at": key.revoked_at},
    )  # fmt: skip
    return key


async def verify_api_key(session: AsyncSession, secret: str) -> ApiKey | None:
    """The live key behind a presented secret, or None (unknown, malformed or revoked)."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    prefix, _, _rest = secret[len(API_KEY_PREFIX) :].partition("_")
    key = await repository.get_api_key_by_prefix(session, prefix)
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        return None
    return key
