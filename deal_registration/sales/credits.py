"""Serial credits: a serial is credited to one claim only, whoever claims it first."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales.models import SaleClaim, SerialCredit


async def credited_serials(
    session: AsyncSession, vendor_id: uuid.UUID, wanted: list[str]
) -> set[str]:
    if not wanted:
        return set()
    rows = await session.exec(
        select(SerialCredit.serial).where(
            SerialCredit.vendor_id == vendor_id, col(SerialCredit.serial).in_(wanted)
        )
    )
    return set(rows)


async def take_credits(
    session: AsyncSession, claim: SaleClaim, wanted: list[str], now: datetime
) -> set[str]:
    """Insert one credit row per serial; the unique (vendor, serial) constraint decides who
    gets a serial when claims race. Returns the serials this claim got. Rows go in serial
    order, so two claims sharing several serials wait for each other instead of
    deadlocking."""
    if not wanted:
        return set()
    connection = await session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "id": uuid.uuid4(),
            "vendor_id": claim.vendor_id,
            "serial": serial,
            "claim_id": claim.id,
            "partner_id": claim.partner_id,
            "created_at": now,
        }  # fmt: skip
        for serial in sorted(wanted)
    ]
    statement = (
        insert(SerialCredit)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["vendor_id", "serial"])
        .returning(col(SerialCredit.serial))
    )
    result = await session.execute(statement)
    return {row[0] for row in result}
