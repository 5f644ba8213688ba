"""A contest's rebuild (``leaderboards.rebuild``) racing the scoring of a sale
(``Leaderboards.on_source_events``): with partitioned dispatchers a contest's settings
change and a partner's sale are handled in either order or at once, a reader rebuilds a
board Redis lost, and ``leaderboards rebuild`` runs beside the dispatchers. Whatever the
interleaving, the credit ends on the board. Each step is driven here in a fixed order on
the real database and Redis; only a hold is added, through a thin subclass."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from infra.clock import OffsetClock
from infra.db import Database, LockedAsyncSession
from infra.outbox import OutboxEvent
from leaderboards.boards import Boards
from leaderboards.events import CONTEST_CHANGED
from leaderboards.models import Contest, ContestCredit, RankingStyle
from leaderboards.rebuild import rebuild
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import BoardMode, apply_credit
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, eventually


class LedgerReadHeld(Database):
    """The app's database, but the first statement that reads the credit ledger (a
    rebuild's read of it) holds once it has run, until ``go`` is set: what a slow
    statement, a busy server or another dispatcher's timing does to it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.read = asyncio.Event()
        self.go = asyncio.Event()
        gate = self

        class Session(LockedAsyncSession):
            async def exec(self, *args: Any, **kwargs: Any) -> Any:
                result = await super().exec(*args, **kwargs)
                if not gate.read.is_set() and "contest_credit" in str(args[0]):
                    gate.read.set()
                    await gate.go.wait()
                return result

        self._sessions.class_ = Session


@asynccontextmanager
async def held_ledger_read(db: Database) -> AsyncIterator[LedgerReadHeld]:
    held = LedgerReadHeld(db.url)
    try:
        yield held
    finally:
        held.go.set()
        await held.dispose()


async def reached(step: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Return once ``step`` is set; fail if ``task`` ends (or fails) before it."""
    waiting = asyncio.ensure_future(step.wait())
    await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        task.result()  # its error, if it failed
        raise AssertionError("the task ended before the step")


async def contest_changed(db: Database, contest: Contest) -> OutboxEvent:
    """The contest's ContestChanged, as its handler receives it."""
    async with db.session() as session:
        return (
            await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.type == CONTEST_CHANGED,
                    col(OutboxEvent.aggregate_id) == contest.id,
                )
            )
        ).one()


async def board(services: Services, contest: Contest) -> list[tuple[str, int]]:
    page = await services.leaderboards.boards.page(contest, "all", 0, 100)
    assert page.built
    return [(str(r.participant_id), r.score) for r in page.rows]


async def test_a_sale_scored_while_a_rebuild_reads_the_ledger_stays_on_the_board(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The rebuild reads the ledger (the totals, then the credited events for the seen
    set) while the sale's credit commits and lands on the live board. The swap then puts
    the shadow board in its place, and the rebuild re-applies the credits recorded around
    it: the sale's counts only if the shadow's seen set agrees with its scores. Read as two
    statements under PostgreSQL's READ COMMITTED, the seen set had the sale and the scores
    did not: the re-applied credit was taken for a duplicate and the board read empty (the
    CI failure of test_leaderboard_pages_come_from_memory_until_the_board_changes)."""
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)  # its board is built (empty)
    runtime = services.leaderboards
    async with services.outbox.paused(), held_ledger_read(db) as held:
        sale = await approve_sale(db, clock, tenant, amount=100_00)
        rebuilding = asyncio.create_task(rebuild(held, runtime.boards, clock, contest.id))
        await reached(held.read, rebuilding)
        # Scored meanwhile: its credit commits, then goes to the live (old) board.
        await runtime.on_source_events([sale])
        assert await board(services, contest) == [(str(tenant.partners[0].id), 100_00)]
        held.go.set()
        await rebuilding
        assert await board(services, contest) == [(str(tenant.partners[0].id), 100_00)]


async def test_a_new_contests_rebuild_and_its_first_sale_handled_at_once_keep_the_sale(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The CI run's case, as two dispatchers (or the live lane beside a pass) have it: the
    contest just published, its ContestChanged handled by one (its board rebuilt for the
    first time), its first sale scored by the other at once. The sale's credit commits
    while the rebuild reads the ledger; its call to the board finds no board yet and waits
    for that rebuild (``ensure_built``), then retries."""
    contest = await create_contest(db, clock, tenant)  # ContestChanged pending: no board
    runtime = services.leaderboards
    async with services.outbox.paused(), held_ledger_read(db) as held:
        changed = await contest_changed(db, contest)
        sale = await approve_sale(db, clock, tenant, amount=100_00)
        # The other dispatcher: the app's runtime on a database whose ledger read holds.
        other = Leaderboards(held, runtime.boards, clock, runtime.hub, dispatcher=None)
        rebuilding = asyncio.create_task(other.on_contest_changed(changed))
        await reached(held.read, rebuilding)
        scoring = asyncio.create_task(runtime.on_source_events([sale]))

        async def credited() -> bool:
            async with db.session() as session:
                found = await session.exec(
                    select(ContestCredit).where(col(ContestCredit.event_id) == sale.id)
                )
                return found.first() is not None

        await eventually(credited)  # committed; its call to the board waits for the build
        assert not scoring.done()
        held.go.set()
        await asyncio.gather(rebuilding, scoring)
        assert await board(services, contest) == [(str(tenant.partners[0].id), 100_00)]


class NoticeHeld(Leaderboards):
    """The runtime, but a notice is announced only once ``go`` is set: a handler that read
    the board's version and is slow to publish it (a busy loop, another process)."""

    def __init__(self, services: Services, clock: OffsetClock) -> None:
        runtime = services.leaderboards
        super().__init__(services.db, runtime.boards, clock, runtime.hub, dispatcher=None)
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    async def notify(self, contest_id: uuid.UUID | str, version: int) -> None:
        self.holding.set()
        await self.go.wait()
        await super().notify(contest_id, version)


async def test_a_late_notice_of_an_older_version_does_not_bring_back_its_cached_page(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A contest's rebuild (its settings changed) reads the board's version v and announces
    it; a sale scored meanwhile by another dispatcher announces v + 1 first. A process that
    cached the page read at v must not take the late notice of v for "the board is at v
    again" and serve that page without the sale until the board next changes."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    runtime = services.leaderboards
    async with services.outbox.paused():
        changed = await contest_changed(db, contest)
        sale = await approve_sale(db, clock, tenant, partner=1, amount=250_00)
        other = NoticeHeld(services, clock)
        announcing = asyncio.create_task(other.on_contest_changed(changed))
        await reached(other.holding, announcing)  # rebuilt, its version read, not announced

        async def scores() -> list[int]:
            page = await runtime.pages.page(contest, "all", 0, 10)
            return [row.score for row in page.rows]

        assert await scores() == [100_00]  # read at that version, and cached
        heard: list[bytes | None] = []
        await runtime.hub.watch(runtime.channel(contest.id), heard.append)
        await runtime.on_source_events([sale])
        newer = await runtime.boards.version(contest.id)

        async def announced(version: int) -> bool:
            # Heard here, so by the page cache's watcher too (called before this one).
            return str(version).encode() in heard

        await eventually(lambda: announced(newer))
        other.go.set()
        await announcing  # the notice of the version before the sale
        await eventually(lambda: announced(newer - 1))
        assert await scores() == [250_00, 100_00]


async def test_an_explicit_rebuild_after_another_rebuild_still_rebuilds(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A contest's settings changed (or an operator asked) while another rebuild held the
    lock: that rebuild read the ledger and the contest before the change, so the board it
    built will not do. Only a board Redis lost may take another's build (``ensure_built``);
    an explicit rebuild waited for the lock, saw the board built, and did nothing."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    boards = services.leaderboards.boards
    lock = boards.keys_of(contest.id).lock
    refused = asyncio.Event()
    redis = boards.redis
    take = redis.set

    async def set_watched(*args: Any, **kwargs: Any) -> Any:
        taken = await take(*args, **kwargs)
        if kwargs.get("nx") and not taken:
            refused.set()  # the rebuild found the lock taken: it waits from now
        return taken

    async with services.outbox.paused():
        await redis.set(lock, "another rebuild")  # built, and being rebuilt
        redis.set = set_watched  # type: ignore[method-assign]
        try:
            rebuilding = asyncio.create_task(rebuild(db, boards, clock, contest.id))
            await reached(refused, rebuilding)
            await redis.delete(lock)  # the other rebuild is done
            assert await rebuilding == 1  # it rebuilt: one credit replayed
        finally:
            del redis.set  # the instance attribute: the class's method again


async def test_a_sale_scored_during_a_rebuild_on_a_host_whose_clock_is_behind(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Which credits the rebuild re-applies after its swap must not depend on hosts'
    clocks (docs/dispatchers.md, "One clock"): chosen by ``created_at >= started - 2 min``,
    a credit written by a host whose clock runs 3 minutes behind the rebuilding host's was
    left off the board."""
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)  # its board is built (empty)
    runtime = services.leaderboards
    rebuilder_clock = OffsetClock(offset=clock.offset + timedelta(minutes=3))  # other host
    async with services.outbox.paused(), held_ledger_read(db) as held:
        sale = await approve_sale(db, clock, tenant, amount=100_00)
        rebuilding = asyncio.create_task(rebuild(held, runtime.boards, rebuilder_clock, contest.id))
        await reached(held.read, rebuilding)
        await runtime.on_source_events([sale])  # credited by this (slower-clocked) host
        assert await board(services, contest) == [(str(tenant.partners[0].id), 100_00)]
        held.go.set()
        await rebuilding
        assert await board(services, contest) == [(str(tenant.partners[0].id), 100_00)]


class SwapHeld(Boards):
    """The app's boards, but the rebuild's swap waits until ``go`` is set: a rebuild whose
    process stalls (a long GC pause, a suspended VM) once its copy is built."""

    def __init__(self, boards: Boards) -> None:
        super().__init__(boards.redis, boards.keys)
        self.holding = asyncio.Event()
        self.go = asyncio.Event()
        swap = self.scripts.swap

        async def held_swap(*args: Any, **kwargs: Any) -> Any:
            self.holding.set()
            await self.go.wait()
            return await swap(*args, **kwargs)

        self.scripts.swap = held_swap  # type: ignore[assignment]


async def test_a_rebuild_that_outlived_its_lock_does_not_swap_in_its_stale_copy(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A rebuild stalls after building its copy until its lock expires; another rebuild
    takes the lock and swaps in its board. The first must not then swap in what it holds
    (with one set of shadow key names, the second had already renamed them away and the
    first put an empty board in place of the standings); it rebuilds again once the lock
    is free."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, amount=100_00)
    await dispatch(services)
    expected = [(str(tenant.partners[0].id), 100_00)]
    clock.advance(timedelta(minutes=10))  # the credit is old news by the rebuilds
    try:
        boards = services.leaderboards.boards
        stalled = SwapHeld(boards)
        async with services.outbox.paused():
            first = asyncio.create_task(rebuild(db, stalled, clock, contest.id))
            await reached(stalled.holding, first)
            await boards.redis.delete(boards.keys_of(contest.id).lock)  # it expired
            await rebuild(db, boards, clock, contest.id)  # another process's rebuild
            assert await board(services, contest) == expected
            stalled.go.set()
            await first
            assert await board(services, contest) == expected
    finally:
        clock.advance(-timedelta(minutes=10))


STYLE = """mutation($input: ContestUpdateInput!) {
  contestUpdate(input: $input) { userErrors { field code } } }"""
STANDINGS = """query($id: ID!) { leaderboard(contestId: $id, first: 10) {
  edges { node { rank score participant { name } } } } }"""


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (RankingStyle.COMPETITION, RankingStyle.FIRST_TO_REACH),
        (RankingStyle.FIRST_TO_REACH, RankingStyle.COMPETITION),
        (RankingStyle.DENSE, RankingStyle.FIRST_TO_REACH),
    ],
    ids=["to-first-to-reach", "from-first-to-reach", "dense-to-first-to-reach"],
)
async def test_a_sale_scored_between_a_style_change_and_its_rebuild_shows_its_partner_once(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    before: RankingStyle, after: RankingStyle,
) -> None:  # fmt: skip
    """A contest's ranking style changes (a first-to-reach board keeps a participant as
    its reach key, "%07d:" + id; the others as the id); its rebuild comes with the
    ContestChanged, after commit. A sale scored in between (another dispatcher, the
    partitions handle a contest's change and a partner's sale apart) was credited in the
    new style onto the board of the old one: its partner was on the board twice, once
    under each member, until the rebuild (and for good, when the credit came after the
    rebuild's swap having read the contest before the change). A board now says how it is
    kept, and every credit keeps it so: the style switches at the rebuild's swap."""
    contest = await create_contest(db, clock, tenant, ranking_style=before)
    await approve_sale(db, clock, tenant, partner=0, amount=300)
    await approve_sale(db, clock, tenant, partner=1, amount=200)
    await dispatch(services)
    admin = tenant.user(Role.VENDOR_ADMIN)
    names = [p.name for p in tenant.partners[:2]]

    async def standings() -> list[tuple[str, int]]:
        board = (await gql.data(STANDINGS, {"id": gid(contest)}, as_user=admin))["leaderboard"]
        return [(e["node"]["participant"]["name"], e["node"]["score"]) for e in board["edges"]]

    async with services.outbox.paused():
        changed = await gql.data(
            STYLE, {"input": {"id": gid(contest), "rankingStyle": after.name}}, as_user=admin
        )
        assert changed["contestUpdate"]["userErrors"] == []
        sale = await approve_sale(db, clock, tenant, partner=0, amount=50)
        await services.leaderboards.on_source_events([sale])  # before the ContestChanged
        assert await standings() == [(names[0], 350), (names[1], 200)]
    await dispatch(services)  # the ContestChanged: the board rebuilt in the new style
    assert await standings() == [(names[0], 350), (names[1], 200)]
    await approve_sale(db, clock, tenant, partner=1, amount=500)
    await dispatch(services)
    assert await standings() == [(names[1], 700), (names[0], 350)]


async def test_a_credit_whose_caller_read_the_contest_before_its_style_change_keeps_one_member(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The other order: a dispatcher read the contest (first-to-reach), the style changed
    and its rebuild swapped in a competition board, and then the dispatcher's credit
    (committed after the rebuild read the ledger) came: credited as first-to-reach, its
    partner was on the rebuilt board twice, for good (until the next rebuild)."""
    contest = await create_contest(db, clock, tenant, ranking_style=RankingStyle.FIRST_TO_REACH)
    await approve_sale(db, clock, tenant, partner=0, amount=300)
    await approve_sale(db, clock, tenant, partner=1, amount=200)
    await dispatch(services)
    admin = tenant.user(Role.VENDOR_ADMIN)
    changed = await gql.data(
        STYLE, {"input": {"id": gid(contest), "rankingStyle": "COMPETITION"}}, as_user=admin
    )
    assert changed["contestUpdate"]["userErrors"] == []
    await dispatch(services)  # rebuilt as a competition board
    boards = services.leaderboards.boards
    await apply_credit(
        boards.scripts, boards.keys_of(contest.id), BoardMode.of(contest),  # as read before
        event_id=uuid.uuid4(), participant=tenant.partners[0].id, period_key="all",
        delta=50, tick=3, target=0,
    )  # fmt: skip
    board = (await gql.data(STANDINGS, {"id": gid(contest)}, as_user=admin))["leaderboard"]
    assert [(e["node"]["participant"]["name"], e["node"]["score"]) for e in board["edges"]] == [
        (tenant.partners[0].name, 350),
        (tenant.partners[1].name, 200),
    ]
