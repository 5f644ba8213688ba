"""Idempotency keys expire, through GraphQL: a retry within the retention replays the first
result; from the retention on, a request under the key is a new request (whatever it asks),
which takes over the key's row; concurrent retries at the boundary make one record; the
pruning deletes expired keys only, in batches; and the demo, whose reruns leaned on its keys,
stays idempotent after they expire. The app under test keeps keys for 48 hours
(``CHANNELBOARD_IDEMPOTENCY_KEY_RETENTION_HOURS``), so each mutation is seen to read the
setting, not the 7-day default."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import col, delete, select
from starlette.applications import Starlette

from api.app import create_app
from api.cli.demo import seed_demo
from api.settings import Settings
from deal_registration.attachments import Attachment
from deal_registration.registrations.models import (
    DealRegistration,
    DealRegistrationLine,
    DealTransition,
)
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.models import SaleClaim
from infra import idempotency
from infra.clock import OffsetClock
from infra.db import Database
from infra.idempotency import IdempotencyKey
from partners.roles import Role
from tests.deal_registration.test_proof_retries import (
    OWNERS,
    attach,
    files_of,
    new_owner,
    result,
    targets,
)
from tests.earnings.scenarios import tax_form
from tests.earnings.test_api import APPROVE, GENERATE, PAY, decision_count, world
from tests.factories import Tenant, gid
from tests.infra.test_idempotency import IDS, SPECS, Spec, _counts
from tests.support import GQL, SHUTDOWN_WITHIN, eventually, pg_value

RETENTION = timedelta(hours=48)
SECOND = timedelta(seconds=1)

__all__ = ["targets", "world"]  # fixtures, imported from the attach and payout tests


@pytest.fixture(scope="module")
async def short_app(
    settings: Settings, clock: OffsetClock, migrated: str
) -> AsyncIterator[Starlette]:
    # External dispatch: the session's app dispatches what this one commits (one dispatcher,
    # one set of clock jobs, which the cleanup between tests pauses).
    short = settings.with_overrides(idempotency_key_retention_hours=48, dispatch="external")
    app = create_app(short, clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def short(
    short_app: Starlette, settings: Settings, clock: OffsetClock, app: Starlette
) -> AsyncIterator[GQL]:
    """A client of the app that keeps keys 48 hours (same database, same clock)."""
    transport = httpx.ASGITransport(app=short_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield GQL(client=client, settings=settings, clock=clock)


async def _key_rows(db: Database) -> list[IdempotencyKey]:
    async with db.session() as session:
        return list(await session.exec(select(IdempotencyKey)))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
async def test_a_key_replays_within_the_retention_and_is_a_new_request_after_it(
    short: GQL, db: Database, clock: OffsetClock, tenant: Tenant, spec: Spec
) -> None:
    await spec.setup(db, clock, tenant)
    user = tenant.user(*spec.first)
    body = spec.body(clock, tenant, 0)

    async def send(sent: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = (await short.data(spec.query, {"input": sent}, as_user=user))[
            spec.mutation
        ]
        return out

    clock.freeze()
    first = await send(body)
    assert first["userErrors"] == []
    kept = await _counts(db, spec)

    # One second short of the retention: the first result, nothing written.
    clock.advance(RETENTION - SECOND)
    assert await send(body) == first
    assert await _counts(db, spec) == kept

    # The retention has passed: the same request is a new request, under the same row.
    clock.advance(SECOND)
    renewed = await send(body)
    assert renewed["userErrors"] == []
    assert renewed[spec.record]["id"] != first[spec.record]["id"]
    assert await _counts(db, spec) == (kept[0] + 1, kept[1])
    [row] = [r for r in await _key_rows(db) if r.key == "shared-key"]
    assert row.created_at == clock.now()
    # ... which its retries now answer.
    clock.advance(RETENTION - SECOND)
    assert await send(body) == renewed

    # Expired again: another request under the key is new, not IDEMPOTENCY_KEY_REUSED.
    clock.advance(SECOND)
    other = await send(spec.body(clock, tenant, 1))
    assert other["userErrors"] == []
    assert other[spec.record]["id"] not in {first[spec.record]["id"], renewed[spec.record]["id"]}
    assert await _counts(db, spec) == (kept[0] + 2, kept[1])
    reused = await send(body)
    assert [e["code"] for e in reused["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert await _counts(db, spec) == (kept[0] + 2, kept[1])


async def test_the_default_retention_is_seven_days(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    spec = SPECS[2]  # an adjustment: no setup
    user = tenant.user(*spec.first)
    body = {"input": spec.body(clock, tenant, 0)}
    clock.freeze()
    first = await gql.data(spec.query, body, as_user=user)
    clock.advance(timedelta(days=7) - SECOND)
    assert await gql.data(spec.query, body, as_user=user) == first
    clock.advance(SECOND)
    again = await gql.data(spec.query, body, as_user=user)
    assert again[spec.mutation][spec.record]["id"] != first[spec.mutation][spec.record]["id"]


async def _attachments(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Attachment)) or 0)


@pytest.mark.parametrize("owner", OWNERS)
async def test_an_upload_retried_after_the_retention_is_a_new_upload(
    short: GQL, db: Database, clock: OffsetClock, tenant: Tenant, targets: None, owner: str
) -> None:
    target = await new_owner(short, db, clock, tenant, owner)
    rep = tenant.user(Role.PARTNER_REP, 0)
    files = files_of("a", "b")
    clock.freeze()
    first = result(owner, await attach(short, owner, target, files, rep, key="upload"))
    assert first["userErrors"] == []
    clock.advance(RETENTION - SECOND)
    assert result(owner, await attach(short, owner, target, files, rep, key="upload")) == first
    assert await _attachments(db) == 2
    clock.advance(SECOND)
    renewed = result(owner, await attach(short, owner, target, files, rep, key="upload"))
    assert renewed["userErrors"] == []
    assert await _attachments(db) == 4
    assert len([r for r in await _key_rows(db) if r.key == "upload"]) == 1


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
async def test_concurrent_retries_at_the_boundary_make_one_new_record(
    short: GQL, db: Database, clock: OffsetClock, tenant: Tenant, spec: Spec
) -> None:
    """Four retries of an expired key at once: one takes the key over and makes one record,
    the others answer with it; the key keeps one row."""
    await spec.setup(db, clock, tenant)
    user = tenant.user(*spec.first)
    body = {"input": spec.body(clock, tenant, 0)}
    clock.freeze()
    first = await short.data(spec.query, body, as_user=user)
    kept = await _counts(db, spec)
    clock.advance(RETENTION)
    answers = await asyncio.gather(*(short.data(spec.query, body, as_user=user) for _ in range(4)))
    ids = {a[spec.mutation][spec.record]["id"] for a in answers}
    assert len(ids) == 1
    assert ids != {first[spec.mutation][spec.record]["id"]}
    assert all(a[spec.mutation]["userErrors"] == [] for a in answers)
    assert await _counts(db, spec) == (kept[0] + 1, kept[1])


async def _insert_keys(db: Database, clock: OffsetClock, tenant: Tenant, ages: list[int]) -> None:
    """One key per age (in hours), of one caller."""
    async with db.transaction() as session:
        for n, hours in enumerate(ages):
            session.add(
                IdempotencyKey(
                    vendor_id=tenant.vendor.id,
                    caller="user:pruned",
                    scope="saleClaimCreate",
                    key=f"k{n}-{hours}h",
                    fingerprint="f" * 64,
                    result_id=uuid.uuid4(),
                    created_at=clock.now() - timedelta(hours=hours),
                )  # fmt: skip
            )


async def test_pruning_deletes_expired_keys_only_in_batches(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.freeze()
    live = [0, 1, 47]
    expired = [48] * 5 + [49, 500]
    await _insert_keys(db, clock, tenant, live + expired)
    removed = await idempotency.prune(db, clock, retention=RETENTION, batch=3)
    # The app's own pruning job may have taken some first; none of the live ones.
    assert removed <= len(expired)
    left = sorted(int(r.key.rsplit("-", 1)[1][:-1]) for r in await _key_rows(db))
    assert left == live
    assert await idempotency.prune(db, clock, retention=RETENTION, batch=3) == 0


async def test_a_pruned_key_is_a_new_request_and_a_live_one_still_replays(
    short: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    spec = SPECS[2]
    user = tenant.user(*spec.first)
    old = {"input": {**spec.body(clock, tenant, 0), "idempotencyKey": "old"}}
    new = {"input": {**spec.body(clock, tenant, 1), "idempotencyKey": "new"}}
    clock.freeze()
    first_old = await short.data(spec.query, old, as_user=user)
    clock.advance(timedelta(hours=30))
    first_new = await short.data(spec.query, new, as_user=user)
    clock.advance(timedelta(hours=18))  # "old" is 48 hours old, "new" 18
    await idempotency.prune(db, clock, retention=RETENTION)
    assert {r.key for r in await _key_rows(db)} == {"new"}
    assert await short.data(spec.query, new, as_user=user) == first_new
    again = await short.data(spec.query, old, as_user=user)
    assert again[spec.mutation][spec.record]["id"] != first_old[spec.mutation][spec.record]["id"]


async def test_payouts_retried_after_the_retention_are_new_requests_that_change_nothing(
    short: GQL, world: Tenant, db: Database, clock: OffsetClock
) -> None:
    """A lost answer retried after its key expired is a new request: generating the month
    again makes nothing (an empty list), paying again is INVALID_STATUS; nothing is made or
    paid twice."""
    await tax_form(db, clock, world, 1)
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    finance = world.user(Role.FINANCE)
    march = {"month": "2026-03-15T00:00:00Z", "key": "gen"}
    made = (await short.data(GENERATE, march, as_user=finance))["payoutStatementsGenerate"]
    ready = next(s for s in made["statements"] if s["partnerId"] == gid(world.partners[1]))
    approved = await short.data(APPROVE, {"id": ready["id"]}, as_user=finance)
    assert approved["payoutApprove"]["userErrors"] == []
    pay = {"id": ready["id"], "ref": "TX-1", "key": "pay"}
    paid = (await short.data(PAY, pay, as_user=finance))["payoutMarkPaid"]
    assert paid["statement"]["status"] == "PAID"
    decided = await decision_count(db)

    clock.advance(RETENTION - SECOND)
    replayed = (await short.data(GENERATE, march, as_user=finance))["payoutStatementsGenerate"]
    assert [s["id"] for s in replayed["statements"]] == [s["id"] for s in made["statements"]]
    assert (await short.data(PAY, pay, as_user=finance))["payoutMarkPaid"] == paid
    clock.advance(SECOND)
    assert (await short.data(GENERATE, march, as_user=finance))["payoutStatementsGenerate"] == {
        "statements": [],
        "userErrors": [],
    }
    assert (await short.data(PAY, pay, as_user=finance))["payoutMarkPaid"] == {
        "statement": None,
        "userErrors": [{"code": "INVALID_STATUS", "field": "statementId"}],
    }
    assert await decision_count(db) == decided


async def test_the_demo_stays_idempotent_after_its_keys_expire(
    db: Database, settings: Settings, clock: OffsetClock
) -> None:
    """`channelboard demo` runs at every `./dev serve`: its claims and registrations were
    found again by their idempotency keys, which now expire."""
    await seed_demo(settings, clock)

    async def counts() -> tuple[int, int]:
        async with db.session() as session:
            return (
                int(await session.scalar(select(func.count()).select_from(SaleClaim)) or 0),
                int(await session.scalar(select(func.count()).select_from(DealRegistration)) or 0),
            )

    seeded = await counts()
    clock.advance(timedelta(days=8))
    await idempotency.prune(db, clock)
    await seed_demo(settings, clock)
    assert await counts() == seeded


async def test_a_replay_whose_record_is_gone_says_to_use_a_new_key(
    short: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A draft registered under a key, then deleted (no mutation deletes one today; an
    operator may, and a draft deletion would): the retry cannot answer with it, and must
    not make it again (the first request did): NOT_FOUND on the key, saying to send a new
    one, nothing written. Once the key has expired, the request is new and makes a draft."""
    spec = SPECS[1]
    await spec.setup(db, clock, tenant)
    user = tenant.user(*spec.first)
    body = {"input": {**spec.body(clock, tenant, 0), "asDraft": True}}
    query = spec.query.replace("userErrors { code field }", "userErrors { code field message }")
    clock.freeze()
    first = await short.data(query, body, as_user=user)
    assert first[spec.mutation]["userErrors"] == []
    async with db.transaction() as session:
        [draft] = await session.exec(select(DealRegistration))
        for table in (DealRegistrationLine, DealTransition):
            await session.execute(delete(table).where(col(table.registration_id) == draft.id))
        await session.delete(draft)
    kept = await _counts(db, spec)

    retry = (await short.data(query, body, as_user=user))[spec.mutation]
    assert retry[spec.record] is None
    [error] = retry["userErrors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", "idempotencyKey")
    assert "new key" in error["message"]
    assert await _counts(db, spec) == kept

    clock.advance(RETENTION)
    late = (await short.data(query, body, as_user=user))[spec.mutation]
    assert late["userErrors"] == []
    assert await _counts(db, spec) == (kept[0] + 1, kept[1])


async def _lock_waits(settings: Settings, statement: str) -> int:
    count: int = await pg_value(
        settings.database_url.replace("+asyncpg", ""),
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        f"{statement}%",
    )
    return count


async def _take(db: Database, clock: OffsetClock, tenant: Tenant) -> idempotency.Taken:
    async with db.transaction() as session:
        taken = await idempotency.take(
            session, vendor_id=tenant.vendor.id, caller="user:racer", scope="saleClaimCreate",
            key="race", request={"n": 1}, now=clock.now(), codes=SaleClaimErrorCode,
            retention=RETENTION,
        )  # fmt: skip
        assert taken is not None
        if taken.replay is None:
            await taken.done(session, uuid.uuid4())
        return taken


@pytest.mark.parametrize("winner_commits", [True, False], ids=["commits", "rolls-back"])
async def test_two_renewals_of_an_expired_key_on_postgresql(
    db: Database, clock: OffsetClock, tenant: Tenant, settings: Settings, winner_commits: bool
) -> None:
    """The second renewal waits on the row the first is renewing: it answers with the
    first's result once that commits, or takes the key itself if that rolls back. (SQLite's
    writers take turns: the second reads the renewed row.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL race")
    clock.freeze()
    async with db.transaction() as session:
        session.add(
            IdempotencyKey(
                vendor_id=tenant.vendor.id,
                caller="user:racer",
                scope="saleClaimCreate",
                key="race",
                fingerprint="f" * 64,
                result_id=uuid.uuid4(),
                created_at=clock.now() - timedelta(hours=49),
            )  # fmt: skip
        )
    first_result = uuid.uuid4()
    loser: asyncio.Task[idempotency.Taken] | None = None

    class RolledBack(Exception):
        pass

    with contextlib.suppress(RolledBack):
        async with db.transaction() as session:
            won = await idempotency.take(
                session, vendor_id=tenant.vendor.id, caller="user:racer",
                scope="saleClaimCreate", key="race", request={"n": 1}, now=clock.now(),
                codes=SaleClaimErrorCode, retention=RETENTION,
            )  # fmt: skip
            assert won is not None
            assert won.replay is None
            await won.done(session, first_result)
            loser = asyncio.create_task(_take(db, clock, tenant))
            await eventually(lambda: _waiting(settings, "UPDATE idempotency_key"))
            if not winner_commits:
                raise RolledBack
    assert loser is not None
    second = await loser
    [kept] = await _key_rows(db)
    if winner_commits:
        assert second.replay == first_result
        assert kept.result_id == first_result
    else:
        assert second.replay is None
        assert kept.result_id not in {first_result, None}
    assert kept.created_at == clock.now()


async def _waiting(settings: Settings, statement: str) -> bool:
    return await _lock_waits(settings, statement) > 0


async def test_pruning_skips_a_key_being_renewed_on_postgresql(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A prune meeting a row a request holds (renewing an expired key) goes past it rather
    than waiting for the request's commit: pruning never queues behind requests."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns")
    clock.freeze()
    await _insert_keys(db, clock, tenant, [49, 50, 51])
    async with db.transaction() as session:
        renewed = await idempotency.take(
            session, vendor_id=tenant.vendor.id, caller="user:pruned", scope="saleClaimCreate",
            key="k0-49h", request={"n": 2}, now=clock.now(), codes=SaleClaimErrorCode,
            retention=RETENTION,
        )  # fmt: skip
        assert renewed is not None
        assert renewed.replay is None
        # Bounded only against a hang: without SKIP LOCKED the prune waits for this commit.
        removed = await asyncio.wait_for(
            idempotency.prune(db, clock, retention=RETENTION), timeout=SHUTDOWN_WITHIN
        )
        assert removed == 2
        await renewed.done(session, uuid.uuid4())
    assert [r.key for r in await _key_rows(db)] == ["k0-49h"]
