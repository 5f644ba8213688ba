"""The outbox handlers: credit approved sales, reversals and won deals to live contests,
and rebuild / notify when a contest's settings change. Run after commit; idempotent."""

from __future__ import annotations

import logging
import uuid
import weakref
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import (
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    DealWon,
    SaleApproved,
    SaleReversed,
)
from infra.cache import ReadCache
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent
from infra.pubsub import Hub
from infra.redis import Keys
from leaderboards import repository
from leaderboards.boards import Boards
from leaderboards.models import Contest, ContestCredit, ContestStatus
from leaderboards.pages import PageCache
from leaderboards.rebuild import ensure_built, rebuild
from leaderboards.scoring import NOT_BUILT, BoardMode, apply_credit, event_instant, target_for
from leaderboards.service import CONTEST_CHANGED, ledger_row, reversal_credit
from partners.models import Partner

log = logging.getLogger(__name__)

# Who is reading, as far as contest visibility goes: the vendor, and the partner (None for
# vendor staff, who see every contest of their vendor).
ReaderKey = tuple[uuid.UUID, uuid.UUID | None]


async def insert_credits(session: AsyncSession, rows: list[ContestCredit]) -> None:
    """Insert ledger rows, skipping any (contest, event) pair already credited."""
    if not rows:
        return
    values: list[dict[str, Any]] = [
        {c.name: getattr(row, c.name) for c in ContestCredit.__table__.columns}  # type: ignore[attr-defined]
        for row in rows
    ]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(ContestCredit).values(values)
    await session.exec(stmt.on_conflict_do_nothing(index_elements=["contest_id", "event_id"]))


class Leaderboards:
    """The per-process leaderboard runtime: boards, handlers and the live fan-out."""

    def __init__(self, db: Database, boards: Boards, clock: Clock, hub: Hub) -> None:
        self.db = db
        self.boards = boards
        self.clock = clock
        self.hub = hub
        self.fanout: Any = None  # leaderboards.fanout.Fanout, made on first subscription
        # Rows every read needs and that rarely change (see infra.cache): a contest as one
        # caller may see it (None: not visible), and participants' display names.
        self.contests: ReadCache[tuple[uuid.UUID, ReaderKey], Contest] = ReadCache(
            db.epochs, ("contest", "partner")
        )
        self.names: ReadCache[tuple[uuid.UUID, uuid.UUID], str] = ReadCache(
            db.epochs, ("partner", "user_account"), maxsize=100_000
        )
        self.pages = PageCache(boards, hub, db.epochs, self.channel)

    def channel(self, contest_id: uuid.UUID | str) -> str:
        return self.hub.channel("lb", contest_id)

    async def notify(self, contest_id: uuid.UUID | str, version: int) -> None:
        await self.hub.publish(self.channel(contest_id), str(version))

    async def on_source_event(self, event: OutboxEvent) -> None:
        now = self.clock.now()
        rows: list[ContestCredit] = []
        contests: dict[uuid.UUID, Contest] = {}
        async with self.db.session() as session:
            if event.type == SALE_REVERSED:
                reversal = SaleReversed.parse(event.payload)
                for original in await repository.credits_of_event(
                    session, reversal.reverses_event_id
                ):
                    contest = await session.get(Contest, original.contest_id)
                    if contest is None or contest.frozen_at is not None:
                        continue
                    if contest.status is not ContestStatus.SCHEDULED:
                        continue
                    row = reversal_credit(contest, event, original, now)
                    if row is not None:
                        contests[contest.id] = contest
                        rows.append(row)
            else:
                payload: SaleApproved | DealWon = (
                    SaleApproved.parse(event.payload) if event.type == SALE_APPROVED
                    else DealWon.parse(event.payload)
                )  # fmt: skip
                instant = event_instant(event.type, payload, event.occurred_at)
                found = await repository.scoring_contests(session, event.vendor_id, instant)
                if found:
                    partner = await session.get(Partner, payload.partner_id)
                    tier = partner.tier.upper() if partner is not None else ""
                    for contest in found:
                        row = ledger_row(contest, event, tier=tier, original=None, now=now)
                        if row is not None:
                            contests[contest.id] = contest
                            rows.append(row)
        # The insert alone in its own transaction: on SQLite a transaction that read first
        # cannot take the write lock once another writer committed (SQLITE_BUSY_SNAPSHOT).
        async with self.db.transaction() as session:
            await insert_credits(session, rows)
        for row in rows:
            contest = contests[row.contest_id]
            version = await self._apply(contest, row)
            if version > 0:
                await self.notify(contest.id, version)

    async def _apply(self, contest: Contest, row: ContestCredit) -> int:
        keys = self.boards.keys_of(contest.id)
        mode = BoardMode.of(contest)
        for _attempt in range(3):
            version = await apply_credit(
                self.boards.scripts, keys, mode, event_id=row.event_id,
                participant=row.participant_id, period_key=row.period_key, delta=row.delta,
                tick=row.tick, target=target_for(contest, row.participant_id),
            )  # fmt: skip
            if version != NOT_BUILT:
                return version
            # Redis lost the contest: rebuild from the ledger (which has this credit).
            await ensure_built(self.db, self.boards, self.clock, contest)
        log.error("could not credit %s to contest %s", row.event_id, contest.id)
        return 0

    async def on_contest_changed(self, event: OutboxEvent) -> None:
        contest_id = uuid.UUID(event.payload["contest_id"])
        async with self.db.session() as session:
            contest = await session.get(Contest, contest_id)
        if contest is None:
            return
        if contest.status is ContestStatus.SCHEDULED:
            await rebuild(self.db, self.boards, self.clock, contest_id)
        await self.notify(contest_id, await self.boards.version(contest_id))

    def register(self, register: Any) -> None:
        for event_type in (SALE_APPROVED, SALE_REVERSED, DEAL_WON):
            register(event_type, self.on_source_event)
        register(CONTEST_CHANGED, self.on_contest_changed)


_RUNTIMES: weakref.WeakKeyDictionary[Hub, Leaderboards] = weakref.WeakKeyDictionary()


def runtime(db: Database, redis: Redis, keys: Keys, clock: Clock, hub: Hub) -> Leaderboards:
    """The process's leaderboard runtime (one per Hub, i.e. per app)."""
    found = _RUNTIMES.get(hub)
    if found is None:
        found = _RUNTIMES[hub] = Leaderboards(db, Boards(redis, keys), clock, hub)
    return found
