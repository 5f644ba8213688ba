"""Closing what the clock ends (leaderboards.closing): frozen standings wait for the
credits of sales recorded before the end, for a bounded time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import ranking, repository
from leaderboards import service as leaderboards_service
from leaderboards.boards import Boards
from leaderboards.closing import SETTLE_GRACE, close_all_due, close_due
from leaderboards.models import Contest, RankingStyle
from leaderboards.rebuild import board_lock, finalize_due, rebuild
from leaderboards.runtime import Leaderboards
from leaderboards.scoring import BatchItem, BoardMode, apply_credit, apply_credits
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.leaderboards.test_board_integrity import lost_writes
from tests.leaderboards.test_rebuild_races import held_ledger_read, reached
from tests.support import eventually, refused_inserts


def other_process(services: Services) -> Leaderboards:
    """A runtime without this process's dispatcher, as in a process that does not
    dispatch (CHANNELBOARD_DISPATCH=external) while another one is behind."""
    rt = services.leaderboards
    return Leaderboards(rt.db, rt.boards, rt.clock, rt.hub, dispatcher=None)


async def frozen_scores(db: Database, contest_id: uuid.UUID) -> list[int] | None:
    async with db.session() as session:
        if "all" not in await repository.frozen_periods(session, contest_id):
            return None
        rows = await session.exec(repository.frozen_standings(contest_id, "all"))
        return [row.score for row in rows]


async def test_the_final_standings_wait_for_credits_recorded_before_the_end(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    rt = other_process(services)
    async with services.outbox.paused():  # this process's dispatcher is behind
        await approve_sale(db, clock, tenant, partner=1, amount=700)  # before the end
        clock.advance(timedelta(hours=1, seconds=1))
        assert not await close_due(rt, contest.id)  # waits for that credit
        assert await frozen_scores(db, contest.id) is None
    await dispatch(services)
    assert await close_due(rt, contest.id)
    assert await frozen_scores(db, contest.id) == [700, 500]


async def test_a_credit_that_never_comes_holds_the_end_for_a_bounded_time(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    rt = other_process(services)
    async with services.outbox.paused():
        await approve_sale(db, clock, tenant, partner=1, amount=700)
        clock.advance(timedelta(hours=1, seconds=1))
        assert not await close_due(rt, contest.id)
        clock.advance(SETTLE_GRACE)
        assert await close_due(rt, contest.id)
        assert await frozen_scores(db, contest.id) == [500]


async def test_a_contest_that_cannot_freeze_does_not_stop_the_closer(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """One contest's freeze fails in the database, every time: the closer's pass still
    freezes the other vendor's contest, and the first once the fault is gone."""
    ends_at = clock.now() + timedelta(hours=1)
    failing = await create_contest(db, clock, tenant, ends_at=ends_at)
    healthy = await create_contest(db, clock, other_tenant, ends_at=ends_at)
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, other_tenant, partner=0, amount=700)
    await dispatch(services)
    rt = other_process(services)
    async with refused_inserts(db, "contest_period", failing.id, column="contest_id"):
        clock.advance(timedelta(hours=1, seconds=1))
        await close_all_due(rt)  # (the app's closer may have been first)
        assert await frozen_scores(db, healthy.id) == [700]
        assert await frozen_scores(db, failing.id) is None
    assert f"{failing.id} (vendor {tenant.vendor.id})" in caplog.text
    await close_all_due(rt)
    assert await frozen_scores(db, failing.id) == [500]


@pytest.mark.usefixtures("board_checks_held")
async def test_final_standings_are_the_ledgers_when_redis_lost_credits_before_the_end(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Redis lost a credit before the end (a replica that was behind took over; it kept
    the board's ``built``): the freeze copied the board as Redis held it, and the final
    standings missed the credit for good, while the board check (once a minute) had not
    come round yet. The close now checks the board against the ledger first."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    async with lost_writes(services, contest):
        await approve_sale(db, clock, tenant, partner=1, amount=700)
        await dispatch(services)
    clock.advance(timedelta(hours=1, seconds=1))
    rt = other_process(services)
    # (The app's closer may be first; while it rebuilds the board, this one waits.)
    await eventually(lambda: close_due(rt, contest.id), within=30)
    assert await frozen_scores(db, contest.id) == [700, 500]


class BuiltCheckHeld(Boards):
    """The app's boards, but the first ``is_built`` (a freeze's: after the close's checks,
    before it reads the board) waits until ``go`` is set."""

    def __init__(self, boards: Boards) -> None:
        super().__init__(boards.redis, boards.keys)
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    async def is_built(self, contest_id: uuid.UUID) -> bool:
        if not self.holding.is_set():
            self.holding.set()
            await self.go.wait()
        return await super().is_built(contest_id)


class SwappedHeld(Boards):
    """The app's boards, but a rebuild waits once its swap is done, until ``go`` is set:
    before it re-applies the credits its copy lacks (a busy loop, a slow round trip)."""

    def __init__(self, boards: Boards) -> None:
        super().__init__(boards.redis, boards.keys)
        self.holding = asyncio.Event()
        self.go = asyncio.Event()
        swap = self.scripts.swap

        async def swap_then_wait(*args: Any, **kwargs: Any) -> Any:
            reply = await swap(*args, **kwargs)
            self.holding.set()
            await self.go.wait()
            return reply

        self.scripts.swap = swap_then_wait  # type: ignore[assignment]


async def test_a_freeze_never_reads_a_board_a_rebuild_has_swapped_and_not_finished(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The close checked the board (no loss, no rebuild under way) and is about to read it
    when a rebuild starts (another dispatcher's, an operator's); a credit lands on the
    board while the rebuild reads the ledger (past the grace, the close does not wait for
    it). The swap puts in a copy without it, re-applied just after: a freeze reading the
    board between the two froze standings without a credit the board showed before and
    after. The freeze and the rebuild now hold one lock: whichever comes second waits."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await dispatch(services)
    runtime = services.leaderboards
    redis = runtime.boards.redis
    async with services.outbox.paused():
        late = await approve_sale(db, clock, tenant, partner=1, amount=700)  # before the end
        clock.advance(timedelta(hours=1, seconds=1) + SETTLE_GRACE)
        closer_boards = BuiltCheckHeld(runtime.boards)
        closer = Leaderboards(db, closer_boards, clock, runtime.hub, dispatcher=None)
        closing = asyncio.create_task(close_due(closer, contest.id))
        await reached(closer_boards.holding, closing)  # checked; the board not read yet
        refused = asyncio.Event()
        take = redis.set

        async def set_watched(*args: Any, **kwargs: Any) -> Any:
            taken = await take(*args, **kwargs)
            if kwargs.get("nx") and not taken:
                refused.set()  # the rebuild found the lock taken: it waits
            return taken

        redis.set = set_watched  # type: ignore[method-assign]
        try:
            async with held_ledger_read(db) as held:
                rebuilder = SwappedHeld(runtime.boards)
                rebuilding = asyncio.create_task(rebuild(held, rebuilder, clock, contest.id))
                steps = [asyncio.ensure_future(e.wait()) for e in (held.read, refused)]
                await asyncio.wait([*steps, rebuilding], return_when=asyncio.FIRST_COMPLETED)
                for step in steps:
                    step.cancel()
                assert not rebuilding.done(), rebuilding.result()
                await runtime.on_source_events([late])  # on the board (journaled, if rebuilding)
                if held.read.is_set():  # the rebuild runs beside the close
                    held.go.set()
                    await reached(rebuilder.holding, rebuilding)  # swapped, not re-applied
                closer_boards.go.set()
                assert await closing
                held.go.set()
                rebuilder.go.set()
                await rebuilding
        finally:
            del redis.set  # the instance attribute: the class's method again
    assert await frozen_scores(db, contest.id) == [700, 500]
    page = await runtime.boards.page(contest, "all", 0, 10)
    assert [row.score for row in page.rows] == [700, 500]


async def test_a_freeze_before_the_rebuild_of_new_settings_reads_a_board_kept_by_them(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A live contest's settings change (targets given: it ranks by share of target) just
    before its end; its rebuild comes after commit, from the outbox, which is behind. The
    close froze the board as the old settings kept it (raw totals) read as the new ones
    say: the final standings ranked 700 of a 10,000 target above 500 of a 1,000 one. The
    board says how it is kept (its encoding): one kept otherwise is rebuilt first."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=500)
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    rt = other_process(services)
    first, second = tenant.partners
    async with services.outbox.paused():  # the ContestChanged's rebuild: not yet
        async with db.transaction() as session:
            await leaderboards_service.update_contest(
                session, tenant.principal(Role.VENDOR_ADMIN), clock, contest_id=contest.id,
                changes={"targets": {str(first.id): 1_000, str(second.id): 10_000}},
            )  # fmt: skip
        clock.advance(timedelta(hours=1, seconds=1) + SETTLE_GRACE)
        assert await close_due(rt, contest.id)
    assert await frozen_scores(db, contest.id) == [500, 700]


class PagesHeld(Boards):
    """The app's boards, but after the first page is read the reader waits until ``go``
    is set: a freeze between two of its page reads."""

    def __init__(self, boards: Boards) -> None:
        super().__init__(boards.redis, boards.keys)
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    async def page(self, *args: Any, **kwargs: Any) -> ranking.Page:
        page = await super().page(*args, **kwargs)
        if not self.holding.is_set():
            self.holding.set()
            await self.go.wait()
        return page


async def all_rows(boards: Boards, contest: Contest) -> list[tuple[uuid.UUID, int, int]]:
    rows: list[tuple[uuid.UUID, int, int]] = []
    while True:
        page = await boards.page(contest, "all", len(rows), 1000)
        rows += [(r.participant_id, r.rank, r.score) for r in page.rows]
        if len(page.rows) < 1000:
            return rows


@pytest.mark.usefixtures("board_checks_held")
async def test_a_late_credit_between_two_page_reads_of_a_freeze_does_not_move_a_participant(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A freeze reads a board of more than 1,000 participants in pages; a late credit
    (past the settle grace: the close does not wait for it, and credits do not take the
    board lock) lands between its first and second page read and lifts a participant
    from page 2 to the top. Read from the live board, the frozen standings held the one
    pushed down to page 2 twice and lost the one lifted. The freeze reads a copy taken in
    one step: the board at one instant."""
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, partner=0, amount=1)
    await dispatch(services)  # the board built, with the contest's encoding
    boards = services.leaderboards.boards
    k = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    # Put on the board by the credit script itself: the test's own participants (not in
    # the ledger, hence the board checks held off).
    others = [uuid.uuid4() for _ in range(1_100)]
    items = [BatchItem(uuid.uuid4(), p, 10_000 + i, 0) for i, p in enumerate(others)]
    for start in range(0, len(items), 500):
        await apply_credits(boards.scripts, k, mode, "all", items[start : start + 500])
    before = await all_rows(boards, contest)
    assert len(before) == 1_101
    lifted = before[1_050][0]  # on page 2
    clock.advance(timedelta(hours=1, seconds=1) + SETTLE_GRACE)
    held = PagesHeld(boards)
    async with board_lock(boards, contest.id) as token:
        assert token is not None
        freezing = asyncio.create_task(
            finalize_due(db, held, clock, contest, token=token), name="freeze"
        )
        await reached(held.holding, freezing)  # page 1 read, page 2 not yet
        await apply_credit(
            boards.scripts, k, mode, event_id=uuid.uuid4(), participant=lifted,
            period_key="all", delta=1_000_000, tick=0, target=0,
        )  # fmt: skip
        held.go.set()
        assert await freezing
    after = await all_rows(boards, contest)
    assert after[0][0] == lifted
    async with db.session() as session:
        frozen = (await session.exec(repository.frozen_standings(contest.id, "all"))).all()
    frozen_rows = [(row.participant_id, row.rank, row.score) for row in frozen]
    assert len({p for p, _, _ in frozen_rows}) == len(frozen_rows) == 1_101
    assert frozen_rows == before
    assert await boards.redis.keys(f"{k.base}:snap:*") == []  # the copy is gone


@pytest.mark.usefixtures("board_checks_held")
@pytest.mark.parametrize(
    ("style", "targeted"),
    [
        (RankingStyle.COMPETITION, False),
        (RankingStyle.DENSE, False),
        (RankingStyle.FIRST_TO_REACH, False),
        (RankingStyle.COMPETITION, True),
    ],
)
async def test_a_freezes_copy_of_a_board_ranks_as_the_board(
    style: RankingStyle, targeted: bool, services: Services, db: Database,
    clock: OffsetClock, tenant: Tenant,
) -> None:  # fmt: skip
    """The copy a freeze pages over gives the board's rows to the field (ranks of ties,
    dense ranks, first-to-reach order and ticks, shares of a target), page by page."""
    people = [uuid.uuid4() for _ in range(40)]
    targets = {str(p): 100 + i for i, p in enumerate(people)} if targeted else {}
    contest = await create_contest(db, clock, tenant, ranking_style=style, targets=targets)
    await approve_sale(db, clock, tenant, partner=0, amount=1)
    await dispatch(services)  # the board built, with the contest's encoding
    boards = services.leaderboards.boards
    k, mode = boards.keys_of(contest.id), BoardMode.of(contest)
    items = [
        BatchItem(uuid.uuid4(), p, 50 * (i % 7), i % 3, target=100 + i if targeted else 0)
        for i, p in enumerate(people)
    ]  # ties at every value, reached at different minutes
    await apply_credits(boards.scripts, k, mode, "all", items)
    await boards.snapshot(contest.id, "all", "snap:test:", 60_000)
    for start in range(0, 45, 6):
        live = await boards.page(contest, "all", start, 6)
        copy = await boards.page(contest, "all", start, 6, tmp="snap:test:")
        assert copy.rows == live.rows
    assert len((await boards.page(contest, "all", 0, 100, tmp="snap:test:")).rows) == 41
    await boards.drop_snapshot(contest.id, "all", "snap:test:")
    assert (await boards.page(contest, "all", 0, 10, tmp="snap:test:")).rows == []
