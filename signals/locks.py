"""One writer of a vendor's signal rows at a time (on PostgreSQL).

A vendor's facts and snapshots, its partners' and their reps', are written by the outbox
handlers (in any dispatcher process), the daily job, the daily rule run, the activity
flush and the rebuild, each for several partners at once, rows that exist and rows it
inserts. A row not inserted yet cannot be locked in advance, so no order of row locks
keeps two of them from each waiting for the other (a deadlock: PostgreSQL kills one; the
daily job and a handler's refresh did, in the test suite). Each writer holds instead,
before it reads or writes a signal row, a transaction-scoped advisory lock on the vendor:
writers of one vendor queue, writers of different vendors do not meet. A transaction that
writes for several vendors holds them all at once, before any (``hold`` takes them in one
order); holding one more later in the same transaction is refused, as it could deadlock.

On SQLite writers already run one at a time (``infra.db.begin_write``); the bookkeeping,
and so the refusal, is the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.db import execute_core

# The first key of PostgreSQL's two-key advisory locks: "signal writers" (other users of
# advisory locks pick other first keys).
NAMESPACE = 0x5167
_LOCK = text("SELECT pg_advisory_xact_lock(:namespace, :key)")
_HELD = "channelboard_signal_locks"


class LockOrderError(RuntimeError):
    """A transaction asked for a vendor's signal lock after holding another's that comes
    later in the order: a programming error (hold every vendor at once)."""


def key(vendor_id: uuid.UUID) -> int:
    """The vendor's second key: a signed 32-bit number from the id's random tail (two
    vendors sharing one only queue together)."""
    return int.from_bytes(vendor_id.bytes[12:], "big", signed=True)


async def hold(session: AsyncSession, vendor_ids: Iterable[uuid.UUID]) -> None:
    """Hold the vendors' signal locks until the transaction ends (waiting for other
    writers of theirs). Those already held by this transaction are not asked again."""
    transaction = session.sync_session.get_transaction()
    held_by, held = session.sync_session.info.get(_HELD, (None, set()))
    if held_by is not transaction:  # a new transaction of the session holds nothing yet
        held = set()
    wanted = sorted({key(v) for v in vendor_ids} - held)
    if not wanted:
        return
    if held and wanted[0] < max(held):
        raise LockOrderError("hold every vendor's signal lock at once, before writing")
    if session.get_bind().dialect.name == "postgresql":
        for k in wanted:
            await execute_core(session, _LOCK, {"namespace": NAMESPACE, "key": k})
    session.sync_session.info[_HELD] = (session.sync_session.get_transaction(), held | set(wanted))
