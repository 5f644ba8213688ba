"""The per-process leaderboard runtime: boards, read caches, and the work of the outbox
handlers (``leaderboards.handlers``): credit approved sales, reversals and won deals to live
contests, and rebuild / notify when a contest's settings change. Run after commit;
idempotent. Built once, by the composition root (``api/composition.py``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import (
    SALE_REVERSED,
    SaleReversed,
)
from infra.cache import ReadCache, SingleFlight
from infra.clock import Clock
from infra.db import Database
from infra.outbox import Dispatcher, OutboxEvent
from infra.pubsub import Hub
from infra.redis import Keys
from leaderboards import crediting, repository
from leaderboards.boards import Boards
from leaderboards.events import ContestChanged
from leaderboards.models import Contest, ContestCredit, ContestStatus
from leaderboards.pages import PageCache
from leaderboards.rebuild import ensure_built, rebuild
from leaderboards.scoring import DUPLICATE, NOT_BUILT, Source, event_instant, parse_source
from leaderboards.service import ledger_row, reversal_credit
from leaderboards.versions import Ceilings
from partners.roles import Role

log = logging.getLogger(__name__)

# Who is reading, as far as contest visibility goes: the vendor, and the partner (None for
# vendor staff, who see every contest of their vendor).
# Who reads the same contests (``reads.reach_of``): the vendor, the partner or display key,
# and a staff member's role.
ReaderKey = tuple[uuid.UUID, uuid.UUID | None, Role | None]
# What decides who may read a contest (repository.readable_contests): its settings, the
# partner's tier and region, the partner's current group memberships, which groups a staff
# role may read (a group a pilot manages).
CONTEST_REACH_TABLES = ("contest", "partner", "partner_group", "partner_group_membership")


async def insert_credits(session: AsyncSession, rows: list[ContestCredit]) -> None:
    """Insert ledger rows, skipping any (contest, event) pair already credited. One
    statement executed for many parameter sets (executemany): compiled once and cached,
    where a multi-row VALUES literal is compiled afresh for every batch."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = ContestCredit.__table__  # type: ignore[attr-defined]
    columns = [c.name for c in table.columns]
    values: list[dict[str, Any]] = [{name: getattr(row, name) for name in columns} for row in rows]
    stmt = insert(table).on_conflict_do_nothing(index_elements=["contest_id", "event_id"])
    await session.execute(stmt, values)


class Leaderboards:
    """The per-process leaderboard runtime: boards, read caches and the handlers' work."""

    def __init__(
        self, db: Database, boards: Boards, clock: Clock, hub: Hub, *, dispatcher: Dispatcher | None
    ) -> None:
        self.db = db
        self.boards = boards
        self.clock = clock
        self.hub = hub
        # This process's dispatcher, paused while a period closes (leaderboards.closing);
        # None in a process that does not dispatch.
        self.dispatcher = dispatcher
        self.ceilings = Ceilings(db)
        # The highest version this process announced per contest: a credit that comes back
        # at or below it (or below one heard from others) found a Redis that lost writes.
        self._announced: dict[uuid.UUID, int] = {}
        # Rows every read needs and that rarely change (see infra.cache): a contest as one
        # caller may see it, and participants' display names.
        self.contests: ReadCache[tuple[uuid.UUID, ReaderKey], Contest] = ReadCache(
            db.epochs, CONTEST_REACH_TABLES
        )
        self.contest_loads: SingleFlight[tuple[uuid.UUID, ReaderKey], Contest] = SingleFlight(
            self.contests
        )
        self.names: ReadCache[tuple[uuid.UUID, uuid.UUID], str] = ReadCache(
            db.epochs, ("partner", "user_account"), maxsize=100_000
        )
        self.name_loads: SingleFlight[
            tuple[uuid.UUID, tuple[uuid.UUID, ...]], dict[uuid.UUID, str]
        ] = SingleFlight(self.names)
        self.pages = PageCache(boards, hub, db.epochs, self.channel)
        # Held by each pass of the board checks (``integrity.run_board_checks``): whoever
        # holds it (a test staging a loss for its own check to find) holds them off.
        self.checks = asyncio.Lock()

    def channel(self, contest_id: uuid.UUID | str) -> str:
        return self.hub.channel("lb", Keys.tag(contest_id))  # the slot of its board's keys

    async def notify(self, contest_id: uuid.UUID | str, version: int) -> None:
        key = contest_id if isinstance(contest_id, uuid.UUID) else uuid.UUID(contest_id)
        if len(self._announced) > 100_000:
            self._announced.clear()
        self._announced[key] = max(self._announced.get(key, 0), version)
        await self.hub.publish(self.channel(contest_id), str(version))

    def shown(self, contest_id: uuid.UUID) -> int:
        """The highest version of the contest this process announced or heard of so far:
        Redis hands out versions only upwards, so one it hands out later at or below this
        means Redis lost writes (leaderboards.integrity)."""
        return max(self._announced.get(contest_id, 0), self.pages.heard(contest_id))

    async def on_source_event(self, event: OutboxEvent) -> None:
        await self.on_source_events([event])

    async def on_source_events(self, events: list[OutboxEvent]) -> None:
        """Credit a batch of approvals, reversals and won deals (in commit order): one SQL
        read pass, one ledger insert, one pipelined Redis round trip, one notify per
        contest. Idempotent: the ledger skips credited (contest, event) pairs and each
        board's seen set skips credited events, so a rerun of the batch changes nothing."""
        now = self.clock.now()
        async with self.db.session() as session:
            contests, rows = await self._ledger_rows(session, events, now)
        # The insert alone in its own transaction: on SQLite a transaction that read first
        # cannot take the write lock once another writer committed (SQLITE_BUSY_SNAPSHOT).
        async with self.db.transaction() as session:
            await insert_credits(session, rows)
        for contest_id, version in (await self._apply(contests, rows)).items():
            await self.notify(contest_id, version)

    async def _ledger_rows(
        self, session: AsyncSession, events: list[OutboxEvent], now: datetime
    ) -> tuple[dict[uuid.UUID, Contest], list[ContestCredit]]:
        """The credits these events earn, in commit order, from a fixed number of queries."""
        sources: dict[uuid.UUID, tuple[Source, datetime]] = {}
        reversals: dict[uuid.UUID, SaleReversed] = {}
        for event in events:
            if event.type == SALE_REVERSED:
                reversals[event.id] = SaleReversed.parse(event.payload)
                continue
            payload = parse_source(event.type, event.payload)
            sources[event.id] = (payload, event_instant(event.type, payload, event.occurred_at))
        candidates: list[Contest] = []
        tiers: dict[uuid.UUID, str] = {}
        if sources:
            instants = [instant for _, instant in sources.values()]
            candidates = list(
                await repository.scoring_contests_between(
                    session, {e.vendor_id for e in events if e.id in sources},
                    min(instants), max(instants),
                )
            )  # fmt: skip
            if candidates:
                tiers = await repository.tiers_of(
                    session, {payload.partner_id for payload, _ in sources.values()}
                )
        originals = await repository.credits_of_events(
            session, {r.reverses_event_id for r in reversals.values()}
        )
        contests = {c.id: c for c in candidates}
        missing = {o.contest_id for rows in originals.values() for o in rows} - contests.keys()
        contests.update(await repository.contests_with_ids(session, missing))

        rows: list[ContestCredit] = []
        in_batch: dict[uuid.UUID, list[ContestCredit]] = {}
        for event in events:
            if event.id in sources:
                payload, instant = sources[event.id]
                for contest in candidates:
                    if contest.vendor_id != event.vendor_id:
                        continue
                    if not contest.starts_at <= instant < contest.ends_at:
                        continue
                    groups = await repository.groups_at(
                        session, contest, payload.partner_id, instant
                    )
                    row = ledger_row(
                        contest, event, tier=tiers.get(payload.partner_id, ""), groups=groups,
                        original=None, now=now,
                    )  # fmt: skip
                    if row is not None:
                        rows.append(row)
                        in_batch.setdefault(event.id, []).append(row)
                continue
            # A reversal takes back what its approval credited: the ledger's rows, or, when
            # the approval is earlier in this same batch (not inserted yet), the rows just
            # planned for it. Commit order guarantees the approval came first.
            reverses = reversals[event.id].reverses_event_id
            by_contest = {o.contest_id: o for o in in_batch.get(reverses, [])}
            by_contest.update({o.contest_id: o for o in originals.get(reverses, [])})
            for original in by_contest.values():
                owner = contests.get(original.contest_id)
                if owner is None or owner.frozen_at is not None:
                    continue
                if owner.status is not ContestStatus.SCHEDULED:
                    continue
                row = reversal_credit(owner, event, original, now)
                if row is not None:
                    rows.append(row)
        return {row.contest_id: contests[row.contest_id] for row in rows}, rows

    async def _apply(
        self, contests: dict[uuid.UUID, Contest], rows: list[ContestCredit]
    ) -> dict[uuid.UUID, int]:
        """Apply the rows to Redis; returns each changed contest's final version."""
        versions: dict[uuid.UUID, int] = {}
        rebuilt: set[uuid.UUID] = set()
        # Contests whose credits were all counted already: a re-run of events whose first
        # run reached Redis and then died (the process, the connection, another node of a
        # cluster's pipeline) before its notice went out. Announced again at the current
        # version, or no page cache or live feed would ever hear of those credits.
        counted: set[uuid.UUID] = set()
        went_back: set[uuid.UUID] = set()
        batches = crediting.plan(rows, contests, self.boards.keys_of)
        for _attempt in range(3):
            # Versions shown before the call: the scripts' new ones must be above them.
            shown = {b.contest_id: self.shown(b.contest_id) for b in batches}
            results = await crediting.apply(self.boards.scripts, batches)
            retry = [b for b, r in zip(batches, results, strict=True) if r == NOT_BUILT]
            for batch, result in zip(batches, results, strict=True):
                if result > 0:
                    versions[batch.contest_id] = max(versions.get(batch.contest_id, 0), result)
                    if result <= shown[batch.contest_id]:
                        went_back.add(batch.contest_id)
                elif result == DUPLICATE:
                    counted.add(batch.contest_id)
            if not retry:
                break
            # Redis lost these contests: rebuild from the ledger (which has these credits,
            # inserted above), then retry just their calls (they skip what the rebuild
            # already counted).
            for contest_id in dict.fromkeys(b.contest_id for b in retry):
                await ensure_built(self.db, self.boards, self.clock, contests[contest_id])
                rebuilt.add(contest_id)
            batches = retry
        else:
            for batch in batches:
                log.error("could not credit %d events to contest %s", len(batch.items),
                          batch.contest_id)  # fmt: skip
        for contest_id in (rebuilt | counted) - versions.keys():
            versions[contest_id] = await self.boards.version(contest_id)
        for contest_id in went_back:
            # The count went back: Redis lost writes (a replica that was behind took over, a
            # restart from an older snapshot) and kept the board's ``built``. The ledger has
            # everything: rebuild, above every version handed out (leaderboards.integrity).
            log.warning("contest %s: Redis handed out version %d again (it lost writes); "
                        "rebuilding its board", contest_id, versions[contest_id])  # fmt: skip
            # Every dispatcher crediting the contest sees the same loss: one rebuild will do.
            since = await self.boards.rebuilds(contest_id)
            await rebuild(self.db, self.boards, self.clock, contest_id, unless_rebuilt_since=since)
            versions[contest_id] = await self.boards.version(contest_id)
        for contest_id, version in versions.items():
            await self.ceilings.cover(contest_id, version)
        return versions

    async def on_contest_changed(self, event: OutboxEvent) -> None:
        contest_id = ContestChanged.parse(event.payload).contest_id
        async with self.db.session() as session:
            contest = await session.get(Contest, contest_id)
        if contest is None:
            return
        if contest.status is ContestStatus.SCHEDULED:
            await rebuild(self.db, self.boards, self.clock, contest_id)
        await self.notify(contest_id, await self.boards.version(contest_id))
