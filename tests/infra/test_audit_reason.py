"""An audit entry keeps the reason it is given whole: services bound the reasons and notes
they accept, and a cap on the entry's copy (VARCHAR(2000) on PostgreSQL) failed the whole
change's transaction when one passed on a longer note."""

from __future__ import annotations

from sqlmodel import select

from infra.audit import AuditEntry, record
from infra.clock import OffsetClock
from infra.db import Database
from tests.factories import Tenant


async def test_a_long_reason_is_kept_whole(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    reason = "Because " + "of a long story, " * 300  # 5,108 characters
    async with db.transaction() as session:
        entry = await record(
            session, vendor_id=tenant.vendor.id, actor="operator:test", action="probe.done",
            entity_type="probe", entity_id="1", before=None, after={"n": 1}, reason=reason,
            at=clock.now(),
        )  # fmt: skip
    async with db.session() as session:
        stored = (await session.exec(select(AuditEntry).where(AuditEntry.id == entry.id))).one()
    assert stored.reason == reason
