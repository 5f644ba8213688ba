"""A credit that reached Redis but whose notice was not published (the dispatcher killed
between the script and the PUBLISH; a Redis connection lost after the script ran; on a
cluster, a pipeline whose other node failed) is re-run by the outbox, which finds it
counted already: the re-run announces the board's current version. Before, only a new
version was announced, so every process's page cache kept serving the board from before
the credit (and live subscribers the old standings) until some later change."""

from __future__ import annotations

import pytest
import redis.exceptions

from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher
from leaderboards import handlers as leaderboards_handlers
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch
from tests.support import eventually


async def test_a_credit_whose_notice_was_lost_is_announced_by_its_rerun(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await dispatch(services)
    runtime = services.leaderboards
    first = await runtime.pages.page(contest, "all", 0, 10)  # cached, heard
    assert [r.score for r in first.rows] == [300_00]

    real_notify = runtime.notify
    calls = {"n": 0}

    async def notify_dies_once(contest_id: object, version: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the process died / the connection dropped before PUBLISH
            raise redis.exceptions.ConnectionError("connection lost")
        await real_notify(contest_id, version)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "notify", notify_dies_once)
    # The app's dispatcher is held: polling meanwhile, it would run the credit first and
    # meet the lost notice itself, and the test's pass would succeed.
    dispatcher = Dispatcher(db, clock)
    dispatcher.register_all(leaderboards_handlers.handlers(runtime))
    async with services.outbox.paused():
        await approve_sale(db, clock, tenant, partner=1, amount=500_00)
        with pytest.raises(redis.exceptions.ConnectionError):  # transient: the pass ends
            await dispatcher.dispatch_pending()  # the credit is applied, its notice fails
        await dispatcher.dispatch_pending()  # re-run: the credit is a duplicate now

    live = await runtime.boards.page(contest, "all", 0, 10)
    assert [r.score for r in live.rows] == [500_00, 300_00]  # Redis has it

    async def cache_caught_up() -> bool:
        page = await runtime.pages.page(contest, "all", 0, 10)
        return [r.score for r in page.rows] == [500_00, 300_00]

    await eventually(cache_caught_up, within=5)
