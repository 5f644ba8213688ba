"""Active users, recorded cheaply: authentication notes (partner, user, day) in a set in
memory, and ``run`` writes the new ones every ``interval`` seconds as one batched insert
that ignores rows another process wrote first, then re-takes the snapshots of the partners
that gained an active user, of the days they were active (yesterday's too, across midnight).

Why not a write per request: every request would become a writer (on SQLite, a request
failing whenever another writer holds the lock). Why not Redis HyperLogLog: the counts
must be exact and kept per day in SQL anyway (a snapshot reads them, a rebuild must
reproduce them); a set of at most (partner users x 1) entries a day per process is small,
and each is written once a day per process. A flush that fails keeps its rows for the next
round; rows noted in the last interval before a crash are lost (an activity figure, not
money: documented in docs/signals.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import date

from sqlmodel import col, select

from infra.clock import Clock
from infra.db import Database, begin_write
from partners.models import User
from signals import locks, maintenance, store
from signals.models import SignalActiveUser

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 60.0

Seen = tuple[uuid.UUID, uuid.UUID, uuid.UUID, date]  # vendor, partner, user, day


class ActiveUsers:
    def __init__(self, db: Database, clock: Clock, *, interval: float = FLUSH_INTERVAL_SECONDS):
        self.db = db
        self.clock = clock
        self.interval = interval
        self._pending: set[Seen] = set()
        self._written: set[Seen] = set()  # today's, so each is written once a day
        # One flush at a time: a flush returns once everything noted before it is written,
        # even what a flush already under way took.
        self._flushing = asyncio.Lock()

    def note(self, vendor_id: uuid.UUID, partner_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """A partner user was active now (a set insert: called on every request)."""
        seen = (vendor_id, partner_id, user_id, self.clock.now().date())
        if seen not in self._written:
            self._pending.add(seen)

    async def flush(self) -> int:
        """Write what was noted since the last flush; returns how many rows it wrote (rows
        another process wrote first included)."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        pending, self._pending = self._pending, set()
        if not pending:
            return 0
        written = 0
        try:
            async with self.db.transaction() as session:
                await begin_write(session)
                await locks.hold(session, {v for v, _, _, _ in pending})
                # Users (or partners) deleted since they were seen are dropped: one such row
                # would otherwise fail every flush on its foreign key.
                users = {u for _, _, u, _ in pending}
                known = set(
                    await session.exec(
                        select(User.id, User.partner_id).where(col(User.id).in_(users))
                    )
                )
                rows = [
                    {"vendor_id": v, "partner_id": p, "user_id": u, "day": d}
                    for v, p, u, d in sorted(pending)
                    if (u, p) in known
                ]
                written = len(rows)
                if rows:
                    await store.upsert(
                        session, SignalActiveUser, ["partner_id", "day", "user_id"], rows
                    )
                # The snapshots of the days the rows are of: yesterday's too for rows noted
                # before midnight and written after it (today's snapshot is taken by then,
                # and yesterday's would otherwise keep the count from before them).
                by_vendor: dict[uuid.UUID, tuple[set[uuid.UUID], set[date]]] = defaultdict(
                    lambda: (set(), set())
                )
                for v, p, u, d in pending:
                    if (u, p) in known:
                        by_vendor[v][0].add(p)
                        by_vendor[v][1].add(d)
                for vendor_id, (partner_ids, days) in sorted(by_vendor.items()):
                    currency = await maintenance.signal_currency(session, vendor_id)
                    await maintenance.take(
                        session, self.clock, vendor_id, currency, sorted(partner_ids), days
                    )
        except BaseException as exc:  # cancelled mid-write (shutdown) included: keep them
            if isinstance(exc, Exception):
                log.warning("could not record active users yet; retrying", exc_info=True)
            self._pending |= pending
            if not isinstance(exc, Exception):
                raise
            return 0
        today = self.clock.now().date()
        self._written = {s for s in self._written | pending if s[3] == today}
        return written

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled (the app flushes once more at
        shutdown)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
