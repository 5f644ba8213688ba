"""The vendor's deal-registration program settings (vendor admins change them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.models import DEFAULT_SETTINGS, DealProgramSettings
from deal_registration.registrations.policy import DEALS, DealOp
from deal_registration.registrations.submission import MAX_VALUE_MINOR
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal


async def lock_program(
    session: AsyncSession, vendor_id: uuid.UUID, clock: Clock
) -> DealProgramSettings:
    """Serialise approvals of one vendor: bump the settings row (created with the defaults
    when absent). On PostgreSQL the row lock is held until commit; on SQLite the write takes
    the database's write lock, and as the transaction's first statement it waits its turn
    instead of failing on a stale snapshot."""
    dialect = session.get_bind().dialect.name
    values = {"vendor_id": vendor_id, **DEFAULT_SETTINGS, "lock_version": 1}
    bump = {"lock_version": col(DealProgramSettings.lock_version) + 1}
    table = DealProgramSettings.__table__  # type: ignore[attr-defined]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(values)
    await session.exec(stmt.on_conflict_do_update(index_elements=["vendor_id"], set_=bump))
    settings = await session.get(DealProgramSettings, vendor_id, populate_existing=True)
    assert settings is not None
    return settings


@dataclass(frozen=True)
class SettingsChange:
    big_deal_threshold_minor: int | None = None
    currency: str | None = None
    similarity_threshold: int | None = None
    protection_days: int | None = None
    extension_days: int | None = None
    max_extensions: int | None = None
    review_sla_days: int | None = None


SETTING_RANGES = {
    "big_deal_threshold_minor": (0, MAX_VALUE_MINOR),
    "similarity_threshold": (50, 100),
    "protection_days": (1, 730),
    "extension_days": (1, 365),
    "max_extensions": (0, 10),
    "review_sla_days": (1, 60),
}


async def update_settings(
    session: AsyncSession, principal: Principal, clock: Clock, *, change: SettingsChange
) -> DealProgramSettings:
    """Vendor admins change their program's rules; unspecified values stay as they are.
    New values apply to later submissions and approvals."""
    DEALS.require(principal, DealOp.UPDATE_SETTINGS)
    errors: list[DomainError] = []
    for name, (low, high) in SETTING_RANGES.items():
        value = getattr(change, name)
        if value is not None and not low <= value <= high:
            errors.append(DomainError(Code.INVALID_SETTING, f"Between {low} and {high}.", name))
    currency = change.currency.strip().upper() if change.currency is not None else None
    if currency is not None and not is_currency(currency):
        errors.append(
            DomainError(Code.INVALID_CURRENCY, "Use an ISO 4217 code like USD.", "currency")
        )
    if errors:
        raise DomainErrors(errors)
    settings = await lock_program(session, principal.vendor_id, clock)
    audited = (*SETTING_RANGES, "currency")
    before = {name: getattr(settings, name) for name in audited}
    for name in SETTING_RANGES:
        value = getattr(change, name)
        if value is not None:
            setattr(settings, name, value)
    if currency is not None:
        settings.currency = currency
    settings.updated_at = clock.now()
    settings.updated_by_id = principal.user_id
    session.add(settings)
    await session.flush()
    await log_change(
        session, principal, clock, action="deal_program_settings.updated",
        entity_type=AuditEntity.DEAL_PROGRAM_SETTINGS, entity_id=principal.vendor_id,
        before=before, after={name: getattr(settings, name) for name in audited},
    )  # fmt: skip
    return settings
