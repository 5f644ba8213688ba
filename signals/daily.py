"""The daily snapshot: no event marks a new day, yet every window moves and "days since
the last sale" grows. ``run_daily`` (beside the outbox dispatcher: inline in each API
process, or in `channelboard dispatch`) takes today's snapshot of every partner that has
none yet, vendor by vendor, and re-takes yesterday's (its last minutes' activity), each
change recorded as ``SignalsChanged`` so that daily rules run. Idempotent: a partner with
today's snapshot is not due, and two processes taking the same one write the same values.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlmodel import select

from infra import passes
from infra.clock import Clock
from infra.db import Database, begin_write
from partners.models import Partner
from signals import maintenance

log = logging.getLogger(__name__)


async def take_all_due(db: Database, clock: Clock) -> int:
    """One pass: today's snapshots of every vendor's partners that lack one. Returns how
    many partners were due."""
    today = clock.now().date()
    async with db.session() as session:
        vendors: list[uuid.UUID] = list(
            await session.exec(
                select(Partner.vendor_id).where(~maintenance.has_snapshot(today)).distinct()
            )
        )

    async def take(vendor_id: uuid.UUID) -> int:
        async with db.transaction() as session:
            await begin_write(session)
            return await maintenance.take_due(session, clock, vendor_id)

    return await passes.each("daily signal snapshots of vendor", sorted(vendors), take)


async def run_daily(db: Database, clock: Clock, interval: float = 60.0) -> None:
    """Take each day's snapshots as the day starts (checked every ``interval`` seconds)."""
    while True:
        try:
            await take_all_due(db, clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("taking the daily signal snapshots failed; retrying")
        await asyncio.sleep(interval)
