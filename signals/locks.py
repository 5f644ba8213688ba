"""One writer of a vendor's signal rows at a time (on PostgreSQL).

A vendor's facts and snapshots, its partners' and their reps', are written by the outbox
handlers (in any dispatcher process), the daily job, the daily rule run, the activity
flush and the rebuild, each for several partners at once, rows that exist and rows it
inserts. A row not inserted yet cannot be locked in advance, so no order of row locks
keeps two of them from each waiting for the other (a deadlock: PostgreSQL kills one; the
daily job and a handler's refresh did, in the test suite). Each writer holds instead,
before it reads or writes a signal row, a transaction-scoped advisory lock on the vendor:
writers of one vendor queue; writers of different vendors wait for each other only
through a transaction that holds both (a run of events, the activity flush) or should two
vendors share a key. A transaction that writes for several vendors holds them all at once,
before any (``hold`` takes them in one order); asking later for a vendor that comes before
one it holds is refused, as it could deadlock.

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
    writers of theirs). Those this transaction holds already are not asked again."""
    held = _held(session)
    wanted = sorted({key(v) for v in vendor_ids} - held)
    if not wanted:
        return
    if held and wanted[0] < max(held):
        raise LockOrderError("hold every vendor's signal lock at once, before writing")
    if session.get_bind().dialect.name == "postgresql":
        for k in wanted:
            await execute_core(session, _LOCK, {"namespace": NAMESPACE, "key": k})
    sync = session.sync_session
    sync.info[_HELD] = (sync.get_transaction(), sync.get_nested_transaction(), held | set(wanted))


def _held(session: AsyncSession) -> set[int]:
    """The keys this transaction holds: none in a new transaction of the session, nor after
    a rollback to the savepoint they were taken in (which releases them)."""
    sync = session.sync_session
    root, nested, keys = sync.info.get(_HELD, (None, None, set()))
    if root is None or root is not sync.get_transaction():
        return set()
    if nested is not None and nested is not sync.get_nested_transaction():
        return set()  # taken in a savepoint that has ended since (asked again: re-entrant)
    return set(keys)
