"""The billing CSV import: applied in file order, idempotent by external_id, line-numbered
errors with nothing written, progress over the file's bytes; and `channelboard
subscriptions import` as a real process."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError, Forbidden
from infra.outbox import OutboxEvent
from infra.outbox_partitions import slot_of
from partners.roles import Role
from schema.context import Services
from subscriptions import imports
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionStatus
from tests.factories import Tenant, gid
from tests.subscriptions import scenarios as ss
from tests.support import count_rows

HEADER = "external_id,subscription,kind,effective_at,amount,currency,term_months\n"


@pytest.fixture(autouse=True)
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    clock.freeze(ss.T0)
    await ss.seed(db, clock, tenant)


async def run_import(
    db: Database, clock: OffsetClock, tenant: Tenant, body: str, role: Role = Role.VENDOR_ADMIN,
    **kw: object,
) -> imports.ImportReport:  # fmt: skip
    data = (HEADER + body).encode()
    seen: list[int] = []
    async with db.transaction() as session:
        report = await imports.import_changes(
            session, tenant.principal(role), clock, source=io.BytesIO(data),
            filename="billing.csv", progress=seen.append, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    assert sum(seen) == len(data)  # the progress bar covers the whole file
    return report


async def state(db: Database, sub: Subscription) -> Subscription:
    async with db.session() as session:
        found = await session.get(Subscription, sub.id)
    assert found is not None
    return found


async def imported_events(db: Database) -> int:
    """The outbox's subscription events (the app's dispatcher, running beside the test,
    records events of its own as it handles them: signals, forecasts)."""
    async with db.session() as session:
        rows = await session.exec(
            select(func.count()).where(col(OutboxEvent.type).startswith("Subscription"))
        )
        return int(rows.one())


async def test_rows_apply_in_order_and_a_rerun_changes_nothing(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    _, a = await ss.first_sale(db, clock, tenant, services)
    _, b = await ss.first_sale(db, clock, tenant, services, partner=1, customer="Globex AG")
    await ss.settle(services)
    events_before = await imported_events(db)
    body = (
        f"r-1,{a.id},RENEWED,2026-12-20,,,\n"
        f"x-1,{gid('CustomerSubscription', a.id)},expanded,2027-02-01,1500.00,USD,\n"
        f"r-2,{b.id},RENEWED,2026-12-28T10:00:00Z,1300.00,,24\n"
        f"c-1,{b.id},CANCELLED,2027-03-01,,,\n"
    )
    clock.freeze(ss.T0 + timedelta(days=500))
    report = await run_import(db, clock, tenant, body)
    assert (report.rows, report.inserted, report.updated, report.unchanged, report.rejected) == (
        4, 4, 2, 0, 0,
    )  # fmt: skip
    a2, b2 = await state(db, a), await state(db, b)
    assert (a2.amount_minor, a2.renewals, a2.ends_at) == (150_000, 1, ss.T0.replace(year=2028))
    assert (b2.amount_minor, b2.term_months, b2.status) == (
        130_000,
        24,
        SubscriptionStatus.CANCELLED,
    )
    assert b2.ends_at == ss.T0.replace(year=2029)
    assert await imported_events(db) == events_before + 4
    async with db.session() as session:
        events = list(
            await session.exec(
                select(OutboxEvent).where(OutboxEvent.aggregate_id == b.id).order_by(OutboxEvent.id)  # type: ignore[arg-type]
            )
        )
    types = [e.type for e in events]
    assert types == ["SubscriptionStarted", "SubscriptionRenewed", "SubscriptionCancelled"]
    # Imported like recorded: in its partner's slot (its partition, with several dispatchers).
    assert {e.partition_slot for e in events} == {slot_of(b.partner_id)}

    again = await run_import(db, clock, tenant, body)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    assert await count_rows(db, SubscriptionChange) == 6
    assert await imported_events(db) == events_before + 4


async def test_bad_rows_are_reported_by_line_and_nothing_is_written(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, other_tenant: Tenant
) -> None:
    _, sub = await ss.first_sale(db, clock, tenant, services)
    await ss.settle(services)
    async with db.transaction() as session:
        await ss.add_products(session, clock, other_tenant, (ss.CLOUD,))
    _, foreign = await ss.first_sale(db, clock, other_tenant, services)
    await ss.settle(services)
    changes_before = await count_rows(db, SubscriptionChange)
    events_before = await imported_events(db)
    s = sub.id
    body = (
        f"ok-1,{s},RENEWED,2026-06-01,,,\n"  # line 2: fine
        f"bad-1,{s},RENEWED,2026-06-01\n"  # 3: four columns
        f"bad-2,{s},UPGRADED,2026-06-01,,,\n"  # 4
        f"bad-3,{s},RENEWED,next week,,,\n"  # 5
        f"bad-4,{s},RENEWED,2026-06-01,,,0\n"  # 6
        f",{s},RENEWED,2026-06-01,,,\n"  # 7: no billing id
        f"bad-6,{foreign.id},RENEWED,2026-06-01,,,\n"  # 8: another vendor's: unknown
        f"bad-7,not-an-id,RENEWED,2026-06-01,,,\n"  # 9
        f"bad-8,{s},EXPANDED,2026-06-01,-5.00,,\n"  # 10
        f"bad-9,{s},EXPANDED,2026-06-01,1500.00,EUR,\n"  # 11
        f"bad-10,{s},CANCELLED,2025-12-31,,,\n"  # 12: before the start
        f"bad-11,{s},EXPANDED,2026-06-01,100.00,,\n"  # 13: lower
        f"bad-12,{s},CONTRACTED,2026-06-01,9000.00,,\n"  # 14: higher
        f"bad-13,{s},EXPANDED,2026-06-01,12.345,,\n"  # 15: three decimals
        f"ok-1,{s},RENEWED,2026-06-01,,,\n"  # 16: same billing id as line 2
    )
    with pytest.raises(imports.ImportRejected) as refused:
        await run_import(db, clock, tenant, body)
    report = refused.value.report
    assert [(e.line, e.code.value) for e in report.errors] == [
        (3, "WRONG_COLUMN_COUNT"), (4, "INVALID_KIND"), (5, "INVALID_DATE"),
        (6, "INVALID_TERM"), (7, "REQUIRED"), (8, "UNKNOWN_SUBSCRIPTION"),
        (9, "UNKNOWN_SUBSCRIPTION"), (10, "NEGATIVE_AMOUNT"), (11, "CURRENCY_MISMATCH"),
        (12, "BEFORE_START"), (13, "NOT_AN_EXPANSION"), (14, "NOT_A_CONTRACTION"),
        (15, "INVALID_AMOUNT"), (16, "DUPLICATE_IN_FILE"),
    ]  # fmt: skip
    assert await count_rows(db, SubscriptionChange) == changes_before
    assert await imported_events(db) == events_before
    assert (await state(db, sub)).renewals == 0

    good_only = await run_import(db, clock, tenant, body, good_rows_only=True)
    assert (good_only.inserted, good_only.rejected) == (1, 14)
    assert (await state(db, sub)).renewals == 1
    cancelled = await run_import(db, clock, tenant, f"c-9,{s},CANCELLED,2026-07-01,,,\n")
    assert cancelled.inserted == 1
    with pytest.raises(imports.ImportRejected) as late:
        await run_import(db, clock, tenant, f"r-9,{s},RENEWED,2026-08-01,,,\n")
    assert [e.code.value for e in late.value.report.errors] == ["ALREADY_CANCELLED"]


async def test_wrong_files_and_roles_are_refused(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    files = [
        (b"", "EMPTY_FILE"), (b"a,b\n1,2\n", "WRONG_HEADER"), (HEADER.encode(), "EMPTY_FILE"),
        (b"\xff\xfe\x00", "BAD_ENCODING"),
    ]  # fmt: skip
    for data, code in files:
        with pytest.raises(DomainError) as refused:
            async with db.transaction() as session:
                await imports.import_changes(
                    session, tenant.principal(Role.VENDOR_ADMIN), clock, source=io.BytesIO(data)
                )
        assert refused.value.code.value == code
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        with pytest.raises(Forbidden):
            await run_import(db, clock, tenant, "", role=role)


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {**os.environ, "CHANNELBOARD_DATABASE_URL": settings.database_url,
           "CHANNELBOARD_VAR_DIR": str(settings.var_dir), "COLUMNS": "200"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "subscriptions", "import", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


@pytest.mark.slow
async def test_cli_import_reports_by_line_and_is_idempotent(
    settings: Settings, db: Database, clock: OffsetClock, tenant: Tenant, services: Services,
    tmp_path: Path,
) -> None:  # fmt: skip
    clock.reset()  # the command runs on the real clock
    _, sub = await ss.first_sale(db, clock, tenant, services)
    good = tmp_path / "billing.csv"
    good.write_text(HEADER + f"r-1,{sub.id},RENEWED,{clock.now().isoformat()},,,\n")
    code, output = await _cli(settings, str(good), "--vendor", tenant.vendor.slug)
    assert code == 0, output
    assert "inserted" in output
    code, output = await _cli(settings, str(good), "--vendor", tenant.vendor.slug)
    assert code == 0, output
    assert (await state(db, sub)).renewals == 1
    assert await count_rows(db, SubscriptionChange) == 2

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"r-2,{sub.id},RENEWED,2020-01-01,,,\nr-3,{sub.id},NOPE,x,,,\n")
    code, output = await _cli(settings, str(bad), "--vendor", tenant.vendor.slug)
    assert code == 1
    assert "BEFORE_START" in output
    assert "INVALID_KIND" in output
    assert "nothing was imported" in output
    assert await count_rows(db, SubscriptionChange) == 2
    code, _ = await _cli(settings, str(good), "--vendor", "no-such-vendor")
    assert code == 2


async def test_an_external_id_with_controls_or_invisible_characters_is_refused_by_line(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """external_id is the billing system's reference, shown and exported: an identifier
    (infra.text). A control, bidi or format character is refused on its line with
    INVALID_CHARACTERS naming it, and nothing is written."""
    _, sub = await ss.first_sale(db, clock, tenant, services)
    await ss.settle(services)
    changes_before = await count_rows(db, SubscriptionChange)
    s = sub.id
    body = (
        f"ok-1,{s},RENEWED,2026-06-01,,,\n"  # line 2: fine
        f"r-\u202e1,{s},RENEWED,2026-06-01,,,\n"  # 3
        f"r-\u200b2,{s},RENEWED,2026-06-01,,,\n"  # 4: looks like r-2
        f'"r-\x1b[2J3",{s},RENEWED,2026-06-01,,,\n'  # 5
    )
    with pytest.raises(imports.ImportRejected) as refused:
        await run_import(db, clock, tenant, body)
    report = refused.value.report
    assert [(e.line, e.code.value) for e in report.errors] == [
        (3, "INVALID_CHARACTERS"), (4, "INVALID_CHARACTERS"), (5, "INVALID_CHARACTERS"),
    ]  # fmt: skip
    named = [
        n in e.message for n, e in zip(("U+202E", "U+200B", "U+001B"), report.errors, strict=True)
    ]
    assert named == [True, True, True]
    assert await count_rows(db, SubscriptionChange) == changes_before
    assert (await state(db, sub)).renewals == 0
