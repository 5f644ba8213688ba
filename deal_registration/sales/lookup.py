"""Looking a serial up: how it would be judged if claimed now (registry entries for
vendor staff only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales import repository, serials
from deal_registration.sales.credits import credited_serials
from deal_registration.sales.models import Serial, SerialOutcome
from deal_registration.sales.validation import judge
from infra.clock import Clock
from partners.roles import Principal


@dataclass(frozen=True)
class SerialCheck:
    serial: str
    outcome: SerialOutcome
    found: Serial | None


async def lookup_serial(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    serial: str,
    sale_date: date | None = None,
) -> SerialCheck:
    """How a serial would be judged if the caller claimed it now."""
    normalised = serials.normalise_serial(serial)
    if not serials.is_well_formed(normalised):
        return SerialCheck(normalised, SerialOutcome.UNKNOWN_SERIAL, None)
    settings = await repository.get_settings(session, principal.vendor_id)
    found = (await serials.get_serials(session, principal.vendor_id, [normalised])).get(normalised)
    credited = await credited_serials(session, principal.vendor_id, [normalised])
    outcome = judge(
        found,
        partner_id=principal.partner_id,
        sale_date=sale_date,
        today=clock.now().date(),
        claim_window_days=settings.claim_window_days,
        already_credited=normalised in credited,
    )
    visible = outcome not in (
        SerialOutcome.UNKNOWN_SERIAL,
        SerialOutcome.NOT_SHIPPED_TO_YOUR_CHANNEL,
    )
    return SerialCheck(normalised, outcome, found if visible or principal.is_vendor_staff else None)
