"""A Redis that comes back with *some* of a contest's writes missing: a replica promoted
while it was behind (replication is asynchronous, so a failover may lose acknowledged
writes) or a server restarted from an older snapshot. It keeps the contest's ``built`` key,
so the read path rebuilds nothing: without more, the credits it lost stayed off the board
for good (their outbox events were dispatched) and the version went back below what
subscribers and page caches were shown (``leaderboards.integrity``).

Simulated on whatever Redis the run uses: the contest's keys are DUMPed, more changes are
made, then the keys are RESTOREd (what a replica that had not received those writes holds
after its promotion)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import integrity
from leaderboards import rebuild as rebuild_module
from leaderboards.boards import Boards
from leaderboards.models import Contest
from leaderboards.reads import viewer_for
from leaderboards.runtime import Leaderboards, insert_credits
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.leaderboards.test_live import Collector
from tests.leaderboards.test_rebuild_races import contest_changed
from tests.support import drop_pubsub, eventually


async def scores(services: Services, contest: Contest) -> list[int]:
    page = await services.leaderboards.boards.page(contest, "all", 0, 100)
    return [r.score for r in page.rows]


@asynccontextmanager
async def lost_writes(services: Services, contest: Contest) -> AsyncIterator[None]:
    """What the block writes to the contest's keys is lost when it ends (and nothing
    else: the keys as they were before it come back, ``built`` included). The test holds
    the app's board checks off (the ``board_checks_held`` fixture)."""
    assert services.leaderboards.checks.locked(), "use the board_checks_held fixture"
    redis = services.redis
    pattern = services.leaderboards.boards.keys_of(contest.id).base + ":*"
    saved = {k: await redis.dump(k) async for k in redis.scan_iter(match=pattern)}
    yield
    async for k in redis.scan_iter(match=pattern):
        await redis.delete(k)
    for k, v in saved.items():
        await redis.restore(k, 0, v, replace=True)


def fresh_process(services: Services) -> Leaderboards:
    """Another process's runtime (a dispatcher started after the failover): it has
    announced and heard nothing, so only the check against SQL can tell."""
    rt = services.leaderboards
    return Leaderboards(rt.db, rt.boards, rt.clock, rt.hub, dispatcher=None)


@pytest.mark.usefixtures("board_checks_held")
async def test_a_credit_after_a_replica_behind_took_over_rebuilds_the_board(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The next credit's version comes back at or below one this process announced: the
    board is rebuilt from the ledger, the lost credit is back, and the version is above
    every version shown before."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    boards = services.leaderboards.boards
    async with lost_writes(services, contest):
        await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        await dispatch(services)
        assert await scores(services, contest) == [300_00, 200_00]
        shown = await boards.version(contest.id)

    await approve_sale(db, clock, tenant, partner=0, amount=1)
    await dispatch(services)
    # partner 1's 200.00 is in the SQL ledger; the board shows it again
    assert await scores(services, contest) == [300_01, 200_00]
    assert await boards.version(contest.id) > shown


@pytest.mark.usefixtures("board_checks_held")
async def test_the_check_finds_credits_a_replica_lost_and_announces_the_rebuilt_board(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """No credit comes after the failover, and the process checking has seen nothing: the
    check compares the board with the ledger, rebuilds it, and subscribers hear a version
    above the one they were shown with the lost credit."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    rt = fresh_process(services)
    assert await integrity.lost(rt.db, rt.boards, contest.id) is None  # nothing lost yet
    async with lost_writes(services, contest):
        await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        await dispatch(services)
        shown = await rt.boards.version(contest.id)
    assert await scores(services, contest) == [300_00]
    assert await integrity.lost(rt.db, rt.boards, contest.id) is not None

    heard: list[bytes | None] = []
    await rt.hub.watch(rt.channel(contest.id), heard.append)
    await integrity.check(rt, contest.id)
    assert await scores(services, contest) == [300_00, 200_00]
    version = await rt.boards.version(contest.id)
    assert version > shown
    await eventually(lambda: _true(str(version).encode() in heard), within=10)
    assert await integrity.lost(rt.db, rt.boards, contest.id) is None


@pytest.mark.usefixtures("board_checks_held")
async def test_the_check_finds_a_lost_rebuild_by_its_version(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A settings change's rebuild is lost (the ledger's credits are all on the board, the
    standings are the old settings'): the version went back below what the rebuild showed,
    which the SQL ceiling tells."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    rt = fresh_process(services)
    async with lost_writes(services, contest):
        changed = await contest_changed(db, contest)
        await services.leaderboards.on_contest_changed(changed)
        shown = await rt.boards.version(contest.id)
    assert await rt.boards.version(contest.id) < shown
    assert await integrity.lost(rt.db, rt.boards, contest.id) is not None
    await integrity.check(rt, contest.id)
    assert await rt.boards.version(contest.id) > shown
    assert await integrity.lost(rt.db, rt.boards, contest.id) is None


async def test_a_credit_committed_and_not_yet_applied_is_not_a_loss(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A credit in the ledger whose event is not dispatched yet is on its way to the board
    (a dispatcher between its insert and its Redis call): the check leaves the board alone
    (no rebuild: the version does not move)."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    rt = services.leaderboards
    async with services.outbox.paused():
        sale = await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        async with db.session() as session:
            _contests, rows = await rt._ledger_rows(session, [sale], clock.now())
        async with db.transaction() as session:
            await insert_credits(session, rows)
        before = await rt.boards.version(contest.id)
        assert await integrity.lost(rt.db, rt.boards, contest.id) is None
        assert not await integrity.check(rt, contest.id)
        assert await rt.boards.version(contest.id) == before
    await dispatch(services)
    assert await scores(services, contest) == [300_00, 200_00]
    assert await integrity.lost(rt.db, rt.boards, contest.id) is None


async def _true(value: bool) -> bool:
    return value


class CountsAround(Boards):
    """The app's boards, with something else happening just before and just after the
    check's read of Redis (what other dispatchers do while the check runs)."""

    def __init__(self, boards: Boards, before: Any, after: Any) -> None:
        super().__init__(boards.redis, boards.keys)
        counts = self.scripts.counts

        async def counts_around(*args: Any, **kwargs: Any) -> Any:
            await before()
            reply = await counts(*args, **kwargs)
            await after()
            return reply

        self.scripts.counts = counts_around  # type: ignore[method-assign]


async def test_credits_by_other_dispatchers_while_the_check_reads_are_not_a_loss(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Other dispatchers credit the contest (each raising the SQL ceiling to its version
    plus HEADROOM) between the check's two reads, Redis and SQL, whichever comes first.
    Before, Redis was read first: the older version against the newer ceiling read as a
    loss, and a whole board was rebuilt."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    rt = services.leaderboards
    async with services.outbox.paused():
        early = await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        late = await approve_sale(db, clock, tenant, partner=1, amount=100_00)

        async def credits(sale: Any) -> Any:
            async def credit() -> None:  # another dispatcher, with Ceilings of its own
                await fresh_process(services).on_source_events([sale])

            return credit

        boards = CountsAround(rt.boards, await credits(early), await credits(late))
        assert await integrity.lost(rt.db, boards, contest.id) is None


@contextmanager
def rebuilds_counted() -> Iterator[list[int]]:
    """The full rebuilds made in the block (each slowed a little, as a contest of some size
    would be), counted."""
    calls: list[int] = []
    original = rebuild_module._rebuild_locked

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        await asyncio.sleep(0.2)
        return await original(*args, **kwargs)

    rebuild_module._rebuild_locked = counted  # type: ignore[assignment]
    try:
        yield calls
    finally:
        rebuild_module._rebuild_locked = original  # type: ignore[assignment]


@pytest.mark.usefixtures("board_checks_held")
async def test_one_lost_board_is_rebuilt_once_when_two_dispatchers_check_it(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Every dispatcher checks at once when the Redis connection comes back. Two that find
    the same loss rebuild once: the second sees, under the lock, that a rebuild was swapped
    in since it saw the loss (before, it rebuilt the whole board again, N dispatchers N
    times)."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    async with lost_writes(services, contest):
        await approve_sale(db, clock, tenant, partner=1, amount=200_00)
        await dispatch(services)
    a, b = fresh_process(services), fresh_process(services)
    with rebuilds_counted() as calls:
        await asyncio.gather(integrity.check(a, contest.id), integrity.check(b, contest.id))
    assert await scores(services, contest) == [300_00, 200_00]
    assert len(calls) == 1


@pytest.mark.usefixtures("board_checks_held")
async def test_two_dispatchers_that_see_the_same_lost_writes_while_crediting_rebuild_once(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """After a failover to a replica that was behind, each dispatcher crediting the contest
    sees its version come back at or below one it announced: the board is rebuilt once,
    not once by each."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    a, b = fresh_process(services), fresh_process(services)
    async with services.outbox.paused():
        async with lost_writes(services, contest):
            await a.on_source_events(
                [await approve_sale(db, clock, tenant, partner=1, amount=10_00)]
            )
            await b.on_source_events(
                [await approve_sale(db, clock, tenant, partner=1, amount=10_00)]
            )
        s3 = await approve_sale(db, clock, tenant, partner=0, amount=1)
        s4 = await approve_sale(db, clock, tenant, partner=0, amount=1)
        with rebuilds_counted() as calls:
            await asyncio.gather(a.on_source_events([s3]), b.on_source_events([s4]))
    assert await scores(services, contest) == [300_02, 20_00]
    assert len(calls) == 1


@pytest.mark.usefixtures("board_checks_held")
async def test_a_live_subscriber_is_never_pushed_an_older_version_after_a_reconnect(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Redis comes back having lost its last writes (the board keeps ``built``, its version
    goes back) and the Hub reconnects: every feed refreshes at once. Before, it pushed the
    older version and standings to subscribers shown the later ones; now it pushes nothing
    below what it pushed, and the board check's rebuild brings the later state back."""
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    viewer = viewer_for(tenant.principal(Role.VENDOR_ADMIN), contest)
    async with services.fanout.subscribe(contest, viewer, first=3, renderer=Collector()) as sub:
        assert (await sub.next())[1] == [300_00]
        async with lost_writes(services, contest):
            await approve_sale(db, clock, tenant, partner=1, amount=200_00)
            await dispatch(services)
            shown = await sub.next()
            while shown[1] != [300_00, 200_00]:
                shown = await sub.next()
        hub = services.leaderboards.hub
        before = hub.reconnects
        await drop_pubsub(services, hub)
        await eventually(lambda: _true(hub.reconnects > before and hub.subscribed), within=10)
        await integrity.check(fresh_process(services), contest.id)  # what the dispatcher does
        async with asyncio.timeout(30):
            pushed = await sub.next()
            while pushed[0] <= shown[0]:  # (a push at the version shown is the same state)
                assert pushed[1] == [300_00, 200_00], (shown, pushed)
                pushed = await sub.next()
        assert pushed[1] == [300_00, 200_00], (shown, pushed)
