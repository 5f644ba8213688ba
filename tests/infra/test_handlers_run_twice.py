"""Every outbox handler, run again over events it has handled: what a dispatcher killed
after its handlers committed and before the mark committed leaves to the next pass. The
app's whole wiring (earnings, subscriptions, signals, forecasts, incentives, boards,
notifications, webhooks, …) handles a mixed history once; then every event is made pending
again and handled a second time: no SQL row and no board score changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel import select as sqlmodel_select

from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.models import Period
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from migrations.metadata import target_metadata
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.earnings.scenarios import PRODUCTS, make_program, seed_products, worked_rules
from tests.factories import (
    Tenant,
    add_products,
    approve_sale,
    create_contest,
    dispatch,
    reverse_sale,
    win_deal,
)
from tests.incentives.rules import active_rule
from tests.incentives.scenarios import GROWTH, settle, shop
from tests.subscriptions.scenarios import CLOUD
from webhooks import endpoints
from webhooks.event_types import EVENT_TYPES
from webhooks.targets import TargetPolicy

# What a second pass may change: the dispatcher's own bookkeeping, and the ceiling of the
# board versions (a contest's change handled again rebuilds its board from the ledger, the
# same scores at a version above the ceiling, which rises: a guard, never domain state).
_BOOKKEEPING = {"outbox_event", "outbox_lease", "outbox_partition", "contest_board_version"}
# When a derived row was last computed (a signal snapshot recomputed to the same values).
_STAMPS = {"computed_at"}


async def _rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    async with db.read_session() as session:
        for table in target_metadata().sorted_tables:
            if table.name in _BOOKKEEPING:
                continue
            columns = [c for c in table.columns if c.name not in _STAMPS]
            rows = (await session.execute(select(*columns))).all()
            found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


async def _boards(services: Services) -> dict[str, Any]:
    boards: dict[str, Any] = {}
    async for key in services.redis.scan_iter(match=services.keys("*"), count=1000):
        if await services.redis.type(key) in (b"zset", "zset"):
            boards[str(key)] = await services.redis.zrange(key, 0, -1, withscores=True)
    return boards


async def _drain(services: Services, db: Database) -> None:
    """Dispatch until nothing is pending; every event was handled (none failed, none
    waits for a retry: a handler that fails on a re-run fails here)."""
    while await dispatch(services):
        pass
    async with db.read_session() as session:
        pending = sqlmodel_select(OutboxEvent).where(col(OutboxEvent.dispatched_at).is_(None))
        left = list(await session.exec(pending))
    assert [(e.type, e.attempts, e.last_error) for e in left] == []


async def _handled_again_changes_nothing(services: Services, db: Database) -> None:
    """Everything pending dispatched; then every event pending again and dispatched again:
    no row (but the dispatcher's bookkeeping) and no board score changed.

    Today's daily rule run is done first: it is a clock job of the app (every minute), not
    a handler, and on a loaded machine its first run of the day fell between the two
    snapshots of the rows (a CI run failed on its ``incentive_daily_run`` row). Done, it
    does nothing more today."""
    await run_due(db, services.clock)
    await _drain(services, db)
    rows, boards = await _rows(db), await _boards(services)
    async with db.transaction() as session:
        await session.execute(update(OutboxEvent).values(dispatched_at=None))
    await _drain(services, db)
    again = await _rows(db)
    assert {t: r for t, r in again.items() if r != rows[t]} == {}
    assert await _boards(services) == boards


async def _webhook_endpoint(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await endpoints.create_endpoint(
            session, tenant.principal(Role.VENDOR_ADMIN), clock,
            policy=TargetPolicy(allow_private=True), url="http://127.0.0.1:9/hook",
            event_types=sorted(EVENT_TYPES),
        )  # fmt: skip


async def test_handling_every_event_again_changes_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Sales (base rates, tiers, a spiff, a subscription product), reversals, a won deal,
    a live contest, a webhook endpoint subscribed to everything."""
    await seed_products(db, clock, tenant)
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (CLOUD,))
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    await create_contest(db, clock, tenant)
    await _webhook_endpoint(db, clock, tenant)
    async with services.webhooks.paused():
        sales = []
        for i, product in enumerate((*PRODUCTS, CLOUD, *PRODUCTS)):
            sales.append(
                await approve_sale(
                    db,
                    clock,
                    tenant,
                    partner=i % 2,
                    amount=product.list_price_minor * (i + 1),
                    units=i + 1,
                    sku=product.sku,
                )  # fmt: skip
            )
        await reverse_sale(db, clock, tenant, sales[0])
        await reverse_sale(db, clock, tenant, sales[4], amount=1_000)
        await win_deal(db, clock, tenant, partner=1)
        await _drain(services, db)
        reached = {t for t, r in (await _rows(db)).items() if r}
        assert {"webhook_delivery", "earning_entry", "contest_credit", "notification",
                "signal_snapshot", "subscription"} <= reached  # fmt: skip
        await _handled_again_changes_nothing(services, db)


async def test_handling_rule_firings_again_changes_nothing(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Active rules that fire on the signals (a rate overlay, a group window, a payout
    hold, a recommendation, a staff notice), and their effects on the earnings."""
    await _webhook_endpoint(db, clock, tenant)
    async with services.webhooks.paused():
        s = await shop(db, clock, tenant, services)
        await active_rule(db, clock, s, condition=GROWTH, period=Period.WEEK, actions=[
            Action(ActionKind.RATE_OVERLAY, program_id=s.base_program_id, delta_bp=100,
                   partner_reason="Growth."),
            Action(ActionKind.GROUP_WINDOW, group_id=s.boost_group_id, partner_reason="Growth."),
            Action(ActionKind.RECOMMEND, title="Go", text="Sell more."),
            Action(ActionKind.NOTIFY_STAFF, message="Look."),
        ])  # fmt: skip
        await active_rule(db, clock, s, name="Watch", condition="revenue_7d > 0",
                          period=Period.DAY, actions=[
            Action(ActionKind.PAYOUT_HOLD, partner_reason="A review."),
        ])  # fmt: skip
        await settle(services)
        await es.sale(db, clock, tenant, 300_00, partner_index=0)
        await es.sale(db, clock, tenant, 200_00, partner_index=1)
        await _drain(services, db)
        reached = {t for t, r in (await _rows(db)).items() if r}
        assert {"incentive_rule_firing", "earning_rate_overlay"} <= reached, reached
        await _handled_again_changes_nothing(services, db)
