"""A poison event (a handler that keeps failing on it) does not stop the outbox: the events
around it are dispatched, it is retried with backoff, dead-lettered, shown in /readyz and
to its vendor's admins, and re-queued or discarded with `channelboard outbox`."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlmodel import col, select

from api.settings import Settings, SettingsError
from deal_registration.events import SaleApproved
from earnings.models import CreditedSource
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import Dispatcher, Handler, OutboxEvent, backoff, describe, record_event
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale
from tests.processes import cli_process
from tests.support import GQL, batch_handler_of, error_codes, eventually

POISON_TYPE = "ProbePoisonRun"
OUTBOX = """
query($states: [OutboxEventState!]) {
  outboxEvents(states: $states) {
    totalCount
    edges { node { id aggregateId type state attempts lastErrorType lastError deadAt
                   retriedBy discardedBy } }
  }
}"""


@dataclass
class Probe:
    """A batch handler that fails on every event marked poison while ``broken``."""

    broken: bool = True
    calls: list[list[str]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)

    async def __call__(self, events: list[OutboxEvent]) -> None:
        names = [e.payload["name"] for e in events]
        self.calls.append(names)
        if self.broken and any(e.payload.get("poison") for e in events):
            # A message that carries a credential: it must not be stored as is.
            raise ValueError("cannot load postgresql://app:s3cret@db.internal/x for poison")
        self.applied.extend(names)


def probe(services: Services) -> Probe:
    """The app's probe, reset for this test."""
    found = batch_handler_of(services, [POISON_TYPE], "poison-probe", Probe)
    found.broken, found.calls, found.applied = True, [], []
    return found


async def _record(db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, OutboxEvent]:
    """good-1, poison, good-2, then a later event of the poison's aggregate."""
    poisoned = uuid.uuid4()
    events: dict[str, OutboxEvent] = {}
    async with db.transaction() as session:
        for name, aggregate, poison in [
            ("good-1", uuid.uuid4(), False), ("poison", poisoned, True),
            ("good-2", uuid.uuid4(), False), ("after-poison", poisoned, False),
        ]:  # fmt: skip
            events[name] = await record_event(
                session, clock, vendor_id=tenant.vendor.id, type=POISON_TYPE,
                aggregate_id=aggregate, payload={"name": name, "poison": poison},
            )  # fmt: skip
    return events


async def _row(db: Database, event: OutboxEvent) -> OutboxEvent:
    async with db.session() as session:
        return (await session.exec(select(OutboxEvent).where(OutboxEvent.id == event.id))).one()


async def _dead_letter(services: Services, clock: OffsetClock, event: OutboxEvent) -> None:
    """Fail it until it is dead: each attempt only once its backoff has passed."""
    max_attempts = services.outbox.max_attempts
    for attempt in range(1, max_attempts + 1):
        await services.outbox.dispatch_pending()
        row = await _row(services.db, event)
        assert row.attempts == attempt
        if attempt < max_attempts:
            assert row.dead_at is None
            wait = backoff(attempt, services.outbox.backoff_cap)
            assert row.next_attempt_at == clock.now() + wait
            # Not due yet: another pass leaves it alone.
            await services.outbox.dispatch_pending()
            assert (await _row(services.db, event)).attempts == attempt
            clock.advance(wait)
    assert (await _row(services.db, event)).dead_at == clock.now()


async def _readyz_outbox(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    outbox: dict[str, float] = response.json()["outbox"]
    return outbox


async def _cli(settings: Settings, *args: str) -> str:
    async with cli_process(settings, "outbox", *args) as process:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.mark.slow
async def test_a_poison_event_is_set_aside_and_retried_once_its_handler_is_fixed(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant, gql: GQL, client: httpx.AsyncClient, settings: Settings,
) -> None:  # fmt: skip
    clock.freeze()  # only the test moves time: each retry happens when the test says
    handler = probe(services)
    events = await _record(db, clock, tenant)
    poison = events["poison"]

    await _dead_letter(services, clock, poison)

    # The good events around it were applied, each once: the failed run was re-run in
    # halves down to single events (the later event of the poison's aggregate held back
    # once the poison event failed alone), so only the poison event was charged; its
    # retries ran alone.
    assert handler.calls[:5] == [
        ["good-1", "poison", "good-2", "after-poison"], ["good-1", "poison"], ["good-1"],
        ["poison"], ["good-2"],
    ]  # fmt: skip
    assert handler.calls[5:] == [["poison"]] * (services.outbox.max_attempts - 1)
    assert sorted(handler.applied) == ["good-1", "good-2"]
    for name in ("good-1", "good-2"):
        assert (await _row(db, events[name])).dispatched_at is not None
        assert (await _row(db, events[name])).attempts == 0
    dead = await _row(db, poison)
    assert dead.dispatched_at is None
    assert dead.last_error_type == "ValueError"
    assert dead.last_error == "cannot load postgresql://***@db.internal/x for poison"
    # The later event of the same aggregate waits behind it, uncharged.
    follower = await _row(db, events["after-poison"])
    assert (follower.dispatched_at, follower.attempts) == (None, 0)

    waited = (clock.now() - poison.recorded_at).total_seconds()  # 1 + 2 + 4 + ... + 256 s
    assert await _readyz_outbox(client) == {
        "pending": 1, "oldestSeconds": waited, "deadLetters": 1,
    }  # fmt: skip

    # Who sees it: the vendor's admins only.
    anonymous = await gql(OUTBOX)
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    for role in (Role.PARTNER_REP, Role.PARTNER_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE):
        denied = await gql(OUTBOX, as_user=tenant.user(role))
        assert error_codes(denied) == ["FORBIDDEN"], role
        assert denied["data"] is None or denied["data"]["outboxEvents"] is None
    stranger = await gql.data(
        OUTBOX, {"states": ["DEAD", "PENDING", "RETRYING", "DISPATCHED"]},
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert stranger["outboxEvents"] == {"totalCount": 0, "edges": []}
    seen = await gql.data(OUTBOX, as_user=tenant.user(Role.VENDOR_ADMIN))
    [node] = [e["node"] for e in seen["outboxEvents"]["edges"]]
    assert node["aggregateId"] == str(poison.aggregate_id)
    assert (node["type"], node["state"], node["attempts"]) == (
        POISON_TYPE, "DEAD", services.outbox.max_attempts,
    )  # fmt: skip
    assert node["lastErrorType"] == "ValueError"
    assert "s3cret" not in node["lastError"]

    listed = await _cli(settings, "list")
    assert str(poison.id) in listed
    assert str(events["good-1"].id) not in listed

    # Fixed and re-queued: applied, and then the event that waited behind it.
    handler.broken = False
    handler.applied.clear()
    assert "re-queued" in await _cli(settings, "retry", str(poison.id), "--by", "ops@example")
    retried = await _row(db, poison)
    assert (retried.retried_by, retried.retried_at, retried.dead_at) == (
        "ops@example", retried.retried_at, None,
    )  # fmt: skip
    assert retried.retried_at is not None
    await services.outbox.dispatch_pending()
    assert handler.applied == ["poison", "after-poison"]
    assert (await _row(db, poison)).dispatched_at is not None
    assert await _readyz_outbox(client) == {"pending": 0, "oldestSeconds": 0.0, "deadLetters": 0}
    # Dispatched now: not re-queued twice.
    async with cli_process(settings, "outbox", "retry", str(poison.id)) as process:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, output.decode()


@pytest.mark.slow
async def test_a_discarded_poison_event_is_never_applied_and_lets_its_aggregate_go_on(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL,
    client: httpx.AsyncClient, settings: Settings,
) -> None:  # fmt: skip
    clock.freeze()
    handler = probe(services)
    events = await _record(db, clock, tenant)
    poison = events["poison"]
    await _dead_letter(services, clock, poison)

    assert "discarded" in await _cli(settings, "discard", str(poison.id), "--by", "ops@example")
    await services.outbox.dispatch_pending()
    assert sorted(handler.applied) == ["after-poison", "good-1", "good-2"]
    row = await _row(db, poison)
    assert (row.dispatched_at, row.discarded_by) == (None, "ops@example")
    assert row.discarded_at is not None
    assert await _readyz_outbox(client) == {"pending": 0, "oldestSeconds": 0.0, "deadLetters": 0}
    shown = await gql.data(
        OUTBOX, {"states": ["DISCARDED"]}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    [node] = [e["node"] for e in shown["outboxEvents"]["edges"]]
    assert (node["state"], node["discardedBy"]) == ("DISCARDED", "ops@example")


async def test_two_dispatchers_never_dispatch_the_same_event(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    handled: list[tuple[str, uuid.UUID]] = []
    started, release = asyncio.Event(), asyncio.Event()

    def handler(name: str) -> Handler:
        async def handle(event: OutboxEvent) -> None:
            handled.append((name, event.id))
            started.set()
            await release.wait()

        return handle

    first, second = Dispatcher(db, clock), Dispatcher(db, clock)
    first.register("ProbeLeased", handler("first"))
    second.register("ProbeLeased", handler("second"))
    async with services.outbox.paused():  # the app's own dispatcher stays out of it
        async with db.transaction() as session:
            event = await record_event(
                session, clock, vendor_id=tenant.vendor.id, type="ProbeLeased",
                aggregate_id=uuid.uuid4(), payload={},
            )  # fmt: skip
        running = asyncio.create_task(first.dispatch_pending())
        await asyncio.wait_for(started.wait(), 10)
        # The first is inside its handler: the second finds the lease taken and leaves.
        assert await asyncio.wait_for(second.dispatch_pending(wait=False), 10) == 0
        release.set()
        assert await running == 1
        assert await second.dispatch_pending() == 0  # and nothing is left for it
    assert handled == [("first", event.id)]
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent.dispatched_at).where(col(OutboxEvent.type) == "ProbeLeased")
        )
        assert [at is not None for at in rows] == [True]


@asynccontextmanager
async def probed(
    services: Services, clock: OffsetClock, tenant: Tenant, event_type: str, handler: Handler
) -> AsyncIterator[tuple[Dispatcher, OutboxEvent]]:
    """A dispatcher of the test's own with ``handler`` for ``event_type``, and one such event
    recorded, while the app's own dispatcher is paused (its poll would dispatch it too)."""
    dispatcher = Dispatcher(services.db, clock)
    dispatcher.register(event_type, handler)
    async with services.outbox.paused():
        async with services.db.transaction() as session:
            event = await record_event(
                session, clock, vendor_id=tenant.vendor.id, type=event_type,
                aggregate_id=uuid.uuid4(), payload={},
            )  # fmt: skip
        yield dispatcher, event


async def test_an_outage_is_not_charged_to_the_events(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    redis_down = True

    async def handler(event: OutboxEvent) -> None:
        if redis_down:
            raise redis.exceptions.ConnectionError("Error 111 connecting to redis:6379.")

    async with probed(services, clock, tenant, "ProbeOutage", handler) as (dispatcher, event):
        for _ in range(dispatcher.max_attempts + 1):
            with pytest.raises(redis.exceptions.ConnectionError):
                await dispatcher.dispatch_pending()
        row = await _row(db, event)
        assert (row.attempts, row.next_attempt_at, row.dead_at, row.dispatched_at) == (
            0, None, None, None,
        )  # fmt: skip
        redis_down = False
        assert await dispatcher.dispatch_pending() == 1
        assert (await _row(db, event)).dispatched_at is not None


async def test_a_transaction_the_database_rolled_back_is_retried_uncharged(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """PostgreSQL kills one side of a deadlock (or a serialization conflict): the handler's
    transaction is gone, not wrong, and runs again on the next pass without counting
    towards the dead letter. asyncpg's adapter reports it as a bare DBAPIError."""
    if not db.url.startswith("postgresql"):
        pytest.skip("a PostgreSQL rollback (SQLSTATE 40P01, 40001)")
    rolled_back = ["40P01", "40001"]

    async def handler(event: OutboxEvent) -> None:
        async with db.transaction() as session:
            if rolled_back:
                code = rolled_back.pop(0)
                raise_it = f"RAISE EXCEPTION 'rolled back' USING ERRCODE = '{code}'"
                await session.execute(text(f"DO $$ BEGIN {raise_it}; END $$"))

    async with probed(services, clock, tenant, "ProbeRolledBack", handler) as (dispatcher, event):
        for _ in range(2):
            with pytest.raises(sa_exc.DBAPIError, match="rolled back"):
                await dispatcher.dispatch_pending()
            row = await _row(db, event)
            assert (row.attempts, row.dead_at, row.dispatched_at) == (0, None, None)
        assert await dispatcher.dispatch_pending() == 1
        assert (await _row(db, event)).dispatched_at is not None


def test_errors_are_stored_without_sql_or_credentials() -> None:
    error = sa_exc.IntegrityError(
        "INSERT INTO contest_credit VALUES (?)", ("secret-param",),
        Exception("UNIQUE constraint failed: contest_credit.event_id"),
    )  # fmt: skip
    assert describe(error) == (
        "IntegrityError", "UNIQUE constraint failed: contest_credit.event_id",
    )  # fmt: skip
    assert describe(OSError("connect to host=db password=hunter2 token: abc failed")) == (
        "OSError", "connect to host=db password=*** token: *** failed",
    )  # fmt: skip
    assert describe(ValueError("redis://:pw@cache:6379/0 down\n  twice")) == (
        "ValueError", "redis://***@cache:6379/0 down twice",
    )  # fmt: skip


def test_the_outbox_settings_are_checked() -> None:
    defaults = Settings.from_env({})
    assert (defaults.outbox_max_attempts, defaults.outbox_backoff_cap_seconds) == (10, 300)
    assert Settings.from_env({"CHANNELBOARD_OUTBOX_MAX_ATTEMPTS": "3"}).outbox_max_attempts == 3
    with pytest.raises(SettingsError, match="OUTBOX_MAX_ATTEMPTS"):
        Settings.from_env({"CHANNELBOARD_OUTBOX_MAX_ATTEMPTS": "0"})
    assert backoff(1, timedelta(seconds=300)) == timedelta(seconds=1)
    assert backoff(4, timedelta(seconds=300)) == timedelta(seconds=8)
    assert backoff(40, timedelta(seconds=300)) == timedelta(seconds=300)


async def _credited(db: Database, event: OutboxEvent) -> bool:
    async with db.session() as session:
        found = await session.exec(
            select(CreditedSource.id).where(col(CreditedSource.source_event_id) == event.id)
        )
        return found.first() is not None


@pytest.mark.slow
async def test_a_dispatcher_process_sets_a_malformed_event_aside(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    client: httpx.AsyncClient, settings: Settings,
) -> None:  # fmt: skip
    """CHANNELBOARD_DISPATCH=external: the real handlers, a real malformed event."""
    sale = SaleApproved.parse((await approve_sale(db, clock, tenant, partner=1)).payload)
    await services.outbox.dispatch_pending()  # the set-up's own events
    async with db.transaction() as session:
        poison = await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=SaleApproved.type,
            aggregate_id=uuid.uuid4(),
            payload={**sale.to_payload(), "claim_id": str(uuid.uuid4()), "amount_minor": "12,00"},
        )  # fmt: skip
    good_2 = await approve_sale(db, clock, tenant, partner=1)
    good_1 = await approve_sale(db, clock, tenant, partner=0)

    async def dead() -> bool:
        return (await _row(db, poison)).dead_at is not None

    # Only the process below dispatches; its poll is 10 minutes, so only its backoff timer
    # and the CLI's wake-up explain what it does in time.
    async with services.outbox.paused(), cli_process(
        settings, "dispatch", "--poll-interval", "600", OUTBOX_MAX_ATTEMPTS="2"
    ) as worker:  # fmt: skip
        await eventually(dead, within=30)
        assert (await _row(db, good_1)).dispatched_at is not None
        assert await _credited(db, good_1)
        # The same partner's later sale waits behind it, uncharged: it is credited at the
        # tier the partner's earlier sales reach (tests/earnings/test_crediting_order.py).
        waiting = await _row(db, good_2)
        assert (waiting.dispatched_at, waiting.attempts) == (None, 0)
        row = await _row(db, poison)
        assert (row.attempts, row.last_error_type) == (2, "ValueError")
        assert not await _credited(db, poison)
        assert (await _readyz_outbox(client))["deadLetters"] == 1

        await _cli(settings, "retry", str(poison.id), "--by", "ops@example")
        await eventually(dead, within=30)  # tried again at once, failed twice again
        assert (await _row(db, poison)).retried_by == "ops@example"

        await _cli(settings, "discard", str(poison.id), "--by", "ops@example")
        assert (await _readyz_outbox(client))["deadLetters"] == 0

        async def credited() -> bool:
            return await _credited(db, good_2)

        await eventually(credited, within=30)  # (the discard woke the dispatcher)
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 0, output.decode()
