"""Scoring rules through the services: crediting, reversals, windows, exactly-once under
concurrency and replay, and rebuilding after Redis loses the standings."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, text, update
from sqlmodel import col, select

from api.cli.leaderboards import _rebuild
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from infra.redis import Keys
from leaderboards import repository
from leaderboards import service as contests
from leaderboards.models import Contest, ContestCredit, Metric, RankingStyle
from leaderboards.rebuild import ensure_built, rebuild
from leaderboards.scoring import DUPLICATE, BatchItem, BoardMode, apply_credits
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, reverse_sale, win_deal
from tests.support import eventually


async def board(services: Services, contest: Contest) -> list[tuple[str, int, int]]:
    page = await services.leaderboards.boards.page(contest, "all", 0, 100)
    return [(str(r.participant_id), r.rank, r.score) for r in page.rows]


async def credit_count(db: Database, contest: Contest) -> int:
    async with db.session() as session:
        return int(
            await session.scalar(
                select(func.count()).where(col(ContestCredit.contest_id) == contest.id)
            )
            or 0
        )


async def test_sales_credit_partners_and_reversals_take_back(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    p0, p1 = (str(p.id) for p in tenant.partners)
    first = await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=200_00)
    await approve_sale(db, clock, tenant, partner=1, amount=50_00)
    await dispatch(services)
    assert await board(services, contest) == [(p0, 1, 300_00), (p1, 2, 250_00)]

    await reverse_sale(db, clock, tenant, first)
    await dispatch(services)
    assert await board(services, contest) == [(p1, 1, 250_00), (p0, 2, 0)]


async def test_events_outside_the_window_or_currency_do_not_count(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, ends_at=clock.now() + timedelta(hours=1))
    await approve_sale(db, clock, tenant, at=clock.now() - timedelta(hours=2))  # before start
    await approve_sale(db, clock, tenant, currency="EUR")
    clock.advance(timedelta(hours=2))
    await approve_sale(db, clock, tenant)  # after the end
    await dispatch(services)
    assert await board(services, contest) == []
    assert await credit_count(db, contest) == 0


async def test_units_metric_and_won_deals(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    units = await create_contest(db, clock, tenant, metric=Metric.UNITS)
    deals = await create_contest(db, clock, tenant, metric=Metric.WON_DEALS)
    await approve_sale(db, clock, tenant, units=7)
    await win_deal(db, clock, tenant, partner=1)
    await dispatch(services)
    assert [r[2] for r in await board(services, units)] == [7]
    assert await board(services, deals) == [(str(tenant.partners[1].id), 1, 1)]


async def test_exactly_once_under_concurrent_dispatch(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    events = [await approve_sale(db, clock, tenant, amount=10_00) for _ in range(5)]
    runtime = services.leaderboards
    # Every event handled by eight concurrent workers at once (as several processes would).
    await asyncio.gather(*(runtime.on_source_event(e) for e in events for _ in range(8)))
    assert await board(services, contest) == [(str(tenant.partners[0].id), 1, 50_00)]
    assert await credit_count(db, contest) == 5


async def test_replaying_the_event_stream_changes_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    for i in range(6):
        await approve_sale(db, clock, tenant, partner=i % 2, amount=(i + 1) * 10_00)
    await dispatch(services)
    before = await board(services, contest)
    async with db.transaction() as session:
        await session.exec(update(OutboxEvent).values(dispatched_at=None))  # type: ignore[call-overload]
    await dispatch(services)
    await dispatch(services)
    assert await board(services, contest) == before
    assert await credit_count(db, contest) == 6


async def test_missing_keys_are_rebuilt_identically_before_serving(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    for i in range(10):
        await approve_sale(db, clock, tenant, partner=i % 2, amount=(i * 7 % 5 + 1) * 10_00)
    await dispatch(services)
    before = await board(services, contest)
    runtime = services.leaderboards
    version = await runtime.boards.version(contest.id)
    # What FLUSHALL does to this run's data (the test Redis may be shared: this run's
    # namespace only).
    async for key in services.redis.scan_iter(match=services.keys("*")):
        await services.redis.delete(key)
    assert await board(services, contest) == []
    # The next event finds the keys missing, rebuilds from the ledger, then credits.
    await approve_sale(db, clock, tenant, partner=1, amount=1)
    await dispatch(services)
    after = await board(services, contest)
    expected = {pid: score for pid, _, score in before}
    expected[str(tenant.partners[1].id)] += 1
    assert {pid: score for pid, _, score in after} == expected
    assert await runtime.boards.version(contest.id) >= 1
    del version

    replayed = await rebuild(db, runtime.boards, clock, contest.id)
    assert replayed == 11
    assert await board(services, contest) == after


async def test_batch_crediting_is_idempotent_and_matches_single_credits(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    boards = services.leaderboards.boards
    keys = boards.keys_of(contest.id)
    mode = BoardMode.of(contest)
    p0, p1 = tenant.partners[0].id, tenant.partners[1].id
    items = [BatchItem(uuid.uuid4(), p0 if i % 3 else p1, 10 * i, 0) for i in range(1, 10)]
    assert await apply_credits(boards.scripts, keys, mode, "all", items) > 0
    assert await apply_credits(boards.scripts, keys, mode, "all", items) == DUPLICATE
    expected = {
        str(p0): sum(i.delta for i in items if i.participant == p0),
        str(p1): sum(i.delta for i in items if i.participant == p1),
    }
    assert {pid: score for pid, _, score in await board(services, contest)} == expected


async def test_rebuild_command_restores_standings(
    settings: Settings, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    contest = await create_contest(db, clock, tenant, name="Rebuild me")
    await approve_sale(db, clock, tenant, partner=1, amount=700)
    await dispatch(services)
    before = await board(services, contest)
    async for key in services.redis.scan_iter(match=services.keys("lb", "*")):
        await services.redis.delete(key)
    assert await _rebuild(settings, "Rebuild me") == 0
    assert await board(services, contest) == before
    assert await _rebuild(settings, "No such contest") == 1


async def test_an_upgrade_from_untagged_keys_rebuilds_and_drops_the_old_keys(
    settings: Settings, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Before hash tags a board lived at ``{ns}:lb:<contest>:...``: after the upgrade the
    contest is rebuilt from the ledger under its tagged keys, at a version above any shown
    (the floor kept in SQL), and `leaderboards rebuild` deletes the old keys."""
    contest = await create_contest(db, clock, tenant, name="Upgraded")
    await approve_sale(db, clock, tenant, partner=0, amount=400)
    await dispatch(services)
    before = await board(services, contest)
    boards = services.leaderboards.boards
    version = await boards.version(contest.id)
    async for key in services.redis.scan_iter(match=services.keys("lb", "*")):
        await services.redis.delete(key)
    old = services.keys("lb", contest.id, "p", "all", "z")  # as the old layout named it
    await services.redis.zadd(old, {str(tenant.partners[0].id): 400})
    await services.redis.set(services.keys("lb", contest.id, "ver"), version)

    await ensure_built(db, boards, clock, contest)  # what every read does first
    assert await board(services, contest) == before
    assert await boards.version(contest.id) >= version
    assert await _rebuild(settings, None) == 0
    assert not await services.redis.exists(old)
    assert not await services.redis.exists(services.keys("lb", contest.id, "ver"))
    assert await board(services, contest) == before


async def test_an_upgrade_from_packed_first_to_reach_boards_rebuilds_and_drops_them(
    settings: Settings, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Layout v1 packed a first-to-reach tick into the score's low bits, under
    ``{ns}:lb:{<contest>}:...``; v2 keeps it in the member, under ``...:{<contest>}:v2:...``.
    After the upgrade a v1 board is not read: the contest is rebuilt from the ledger, and
    `leaderboards rebuild` deletes the v1 keys."""
    contest = await create_contest(
        db, clock, tenant, name="Packed", ranking_style=RankingStyle.FIRST_TO_REACH
    )
    await approve_sale(db, clock, tenant, partner=0, amount=400)
    await approve_sale(db, clock, tenant, partner=1, amount=400)
    await dispatch(services)
    before = await board(services, contest)
    boards = services.leaderboards.boards
    async for key in services.redis.scan_iter(match=services.keys("lb", "*")):
        await services.redis.delete(key)
    v1 = services.keys("lb", Keys.tag(contest.id))
    old = f"{v1}:p:all:z"
    await services.redis.zadd(old, {str(tenant.partners[0].id): 400 * 2**20 + 5})
    await services.redis.set(f"{v1}:built", 1)

    await ensure_built(db, boards, clock, contest)  # what every read does first
    assert await board(services, contest) == before
    assert await _rebuild(settings, None) == 0
    assert not await services.redis.exists(old)
    assert not await services.redis.exists(f"{v1}:built")
    assert await board(services, contest) == before


async def test_a_sale_credited_while_its_contest_is_changed_does_not_wait_for_the_change(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A contest change holds the contest's row (``infra.db.for_change``) while it re-scores
    the ledger. The dispatcher crediting a sale meanwhile inserts the sale's credit, whose
    foreign key reads the contest's key. Held FOR UPDATE, that read waited for the change's
    commit, and the change's re-score then waited for the dispatcher's credit (the same
    contest and event): a deadlock, which PostgreSQL breaks after a second by rolling one of
    them back. The change does not alter the key (FOR NO KEY UPDATE): the credit goes
    through and the re-score finds it."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns")
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)  # its own events
    sale = await approve_sale(db, clock, tenant, amount=500)
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        # contestUpdate's first step: the contest, held for the change ...
        held = await repository.get_readable_contest(session, admin, contest.id, lock=True)
        assert held is not None
        # ... the dispatcher credits the sale meanwhile ...
        credit = asyncio.create_task(dispatch(services))

        async def credited_or_waiting() -> bool:
            if credit.done():
                return True
            await session.execute(text("SELECT pg_stat_clear_snapshot()"))
            waits = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )
            return bool(waits)

        await eventually(credited_or_waiting, within=10)
        assert credit.done(), "the credit waited for the contest's change to commit"
        # ... then the change re-scores the ledger, the sale's credit included.
        await contests.rescore(session, clock, held)
    await credit
    async with db.session() as session:
        credits = (
            await session.exec(
                select(ContestCredit.delta).where(
                    ContestCredit.contest_id == contest.id, ContestCredit.event_id == sale.id
                )
            )
        ).all()
    assert credits == [500]
