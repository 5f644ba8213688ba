"""When a ledger entry is booked (``EarningEntry.booked_at``, which puts it in a monthly
statement): the instant it is credited, but never in a month whose statements are made.

A statement of an ended month is final: its total is what is paid. A credit that began
before the month ended and committed after finance had made the month's statements (a
dispatcher that stalled across midnight, a host whose clock runs behind) booked its entry
in that month all the same: no statement paid it, while the partner's summary, which counts
a month's entries as paid with its statement, said it was paid. So:

- a transaction that books entries first holds the vendor's booking lock, shared
  (``instant``): bookings do not wait for each other;
- statement generation holds it exclusively (``hold_for_statements``) before it reads the
  month's entries: it waits for the bookings under way to commit, and bookings that come
  after it wait for its statements to commit;
- an entry is booked at the later of now and the end of the vendor's last month with
  statements: one that waited for the statements, or whose clock is behind, lands in the
  first month still open.

On PostgreSQL the lock is a transaction-scoped advisory lock per vendor; on SQLite writers
already run one at a time (``infra.db.begin_write``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import TextClause, func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.models import PayoutStatement
from infra.db import execute_core

# The first key of the two-key advisory locks: "payout bookings" (signals.locks: 0x5167).
NAMESPACE = 0x5042
_SHARED = text("SELECT pg_advisory_xact_lock_shared(:namespace, :key)")
_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(:namespace, :key)")


def _key(vendor_id: uuid.UUID) -> int:
    return int.from_bytes(vendor_id.bytes[12:], "big", signed=True)


async def _hold(session: AsyncSession, vendor_id: uuid.UUID, lock: TextClause) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await execute_core(session, lock, {"namespace": NAMESPACE, "key": _key(vendor_id)})


async def hold_for_statements(session: AsyncSession, vendor_id: uuid.UUID) -> None:
    """Before statement generation reads the entries: until the transaction ends."""
    await _hold(session, vendor_id, _EXCLUSIVE)


async def instant(
    session: AsyncSession,
    closed: dict[uuid.UUID, datetime | None],
    vendor_id: uuid.UUID,
    now: datetime,
) -> datetime:
    """When an entry of the vendor credited ``now`` is booked. ``closed`` remembers, for the
    transaction, the end of each vendor's last month with statements (read once, under the
    lock, which lasts until the transaction ends)."""
    if vendor_id not in closed:
        await _hold(session, vendor_id, _SHARED)
        closed[vendor_id] = await session.scalar(
            select(func.max(PayoutStatement.period_end)).where(
                PayoutStatement.vendor_id == vendor_id
            )
        )
    end = closed[vendor_id]
    return max(now, end) if end is not None else now
