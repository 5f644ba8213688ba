"""Board versions that never go backwards, across Redis loss.

Redis counts a contest's board version (INCR on every change, carried by every push and
page). A Redis that comes back empty (flush, restart without data, failover to an empty
replica) would count from 1 again: a client holding version 5 would see versions go back,
and a process's page cache would take the rebuilt board's version 5 for the page it cached
at the old version 5. So SQL keeps a ceiling per contest (no version above it was ever
handed out), raised ``HEADROOM`` ahead of the count: one small SQL write covers thousands of
changes. A rebuilt board starts just above the ceiling, whatever Redis still counted: a
Redis that lost only its latest writes (a replica that was behind took over) counts from an
older version, not from nothing.

The ceiling is only raised to ``HEADROOM`` above a version handed out (or about to be: a
rebuild raises it before its swap), so Redis's count is at least ``ceiling - HEADROOM``
unless Redis lost writes (``leaderboards.integrity`` checks it).
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col

from infra.db import Database
from leaderboards.models import ContestBoardVersion

# A process would have to apply HEADROOM / 2 changes to one contest between a credit and
# its ceiling write for a version to outrun the ceiling.
HEADROOM = 10_000


async def floor(db: Database, contest_id: uuid.UUID) -> int:
    """Where a board rebuilt from nothing starts: above every version ever handed out."""
    async with db.session() as session:
        row = await session.get(ContestBoardVersion, contest_id)
        return (row.ceiling if row is not None else 0) + 1


async def cover(db: Database, contest_id: uuid.UUID, version: int) -> int:
    """Raise the ceiling (never lower it) to leave HEADROOM above ``version``; returns the
    ceiling now known to be in SQL.

    The one SQL write a read can cause (a query rebuilding a board Redis lost): it must
    land before the rebuilt board shows a version, or versions could go back after a second
    loss. It writes no domain state, only this monotonic guard, in its own short
    transaction, never through the query's (read-only) session."""
    target = version + HEADROOM
    async with db.transaction() as session:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        table = ContestBoardVersion.__table__  # type: ignore[attr-defined]
        await session.execute(
            insert(table)
            .values(contest_id=contest_id, ceiling=target)
            .on_conflict_do_nothing(index_elements=["contest_id"])
        )
        # Conditional, so concurrent writers (other processes) only ever raise it.
        await session.execute(
            update(ContestBoardVersion)
            .where(
                col(ContestBoardVersion.contest_id) == contest_id,
                col(ContestBoardVersion.ceiling) < target,
            )
            .values(ceiling=target)
        )
    return target


class Ceilings:
    """The ceilings this process raised, so that a credit costs a SQL write only when its
    version comes within HEADROOM / 2 of the ceiling (about once per 5,000 changes)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[uuid.UUID, int] = {}

    async def cover(self, contest_id: uuid.UUID, version: int) -> None:
        known = self._known.get(contest_id)
        if known is not None and version <= known - HEADROOM // 2:
            return
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[contest_id] = await cover(self.db, contest_id, version)
