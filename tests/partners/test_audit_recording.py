"""Every administrative change in the tree writes exactly one audit entry, in the same
transaction, naming the caller, the action, and the changed fields before and after:
API keys, programs and versions, payout policy and profiles (a bank account masked),
adjustments, holds and releases, statement approval and payment, contests, claim and deal
program settings, serial imports, products, and the operator's outbox retry/discard."""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import service as catalogue
from deal_registration.registrations import program_settings
from deal_registration.sales import claim_settings, serials
from earnings import ledger, payouts, programs
from earnings.models import PayoutStatement, PayoutStatus
from infra.audit import AuditEntry, json_safe
from infra.clock import OffsetClock
from infra.db import Database, begin_write
from infra.errors import DomainError
from infra.outbox import discard_event, record_event, retry_event
from leaderboards import service as contests
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import WIDGET, csv_bytes, registry_rows
from tests.earnings import scenarios as es
from tests.factories import Tenant, add_products, dispatch, gid
from tests.support import GQL

T = TypeVar("T")


async def _tx(db: Database, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with db.transaction() as session:
        await begin_write(session)
        return await action(session)


async def _entries(db: Database, after: uuid.UUID | None = None) -> list[AuditEntry]:
    async with db.session() as session:
        stmt = select(AuditEntry).order_by(col(AuditEntry.id))
        if after is not None:
            stmt = stmt.where(col(AuditEntry.id) > after)
        return list(await session.exec(stmt))


class Log:
    """The entries written since the last ``one()``/``none()``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.mark: uuid.UUID | None = None

    async def new(self) -> list[AuditEntry]:
        found = await _entries(self.db, self.mark)
        if found:
            self.mark = found[-1].id
        return found

    async def one(self, action: str) -> AuditEntry:
        found = await self.new()
        assert [e.action for e in found] == [action]
        return found[0]

    async def none(self) -> None:
        assert await self.new() == []


@pytest.fixture
async def log(db: Database) -> Log:
    return Log(db)


async def test_api_keys(gql: GQL, tenant: Tenant, log: Log) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    created = await gql.data(
        """mutation { apiKeyCreate(input: {name: "ERP", role: FINANCE}) {
             apiKey { id prefix } secret } }""",
        as_user=admin,
    )
    key = created["apiKeyCreate"]
    entry = await log.one("api_key.created")
    assert (entry.actor, entry.entity_type, entry.vendor_id) == (
        f"user:{admin.id}", "api_key", tenant.vendor.id,
    )  # fmt: skip
    assert entry.before is None
    assert entry.after == {"name": "ERP", "role": "FINANCE", "prefix": key["apiKey"]["prefix"]}
    assert key["secret"] not in str(entry.after)

    revoke = "mutation($id: ID!) { apiKeyRevoke(input: {id: $id}) { userErrors { code } } }"
    await gql.data(revoke, {"id": key["apiKey"]["id"]}, as_user=admin)
    entry = await log.one("api_key.revoked")
    assert entry.before == {"revoked_at": None}
    assert entry.after is not None
    assert entry.after["revoked_at"] is not None
    # Refused (already revoked): nothing changed, nothing logged.
    again = await gql.data(revoke, {"id": key["apiKey"]["id"]}, as_user=admin)
    assert again["apiKeyRevoke"]["userErrors"] == [{"code": "ALREADY_REVOKED"}]
    await log.none()


async def test_a_change_made_with_an_api_key_names_the_key(
    gql: GQL, tenant: Tenant, log: Log
) -> None:
    created = await gql.data(
        """mutation { apiKeyCreate(input: {name: "Ops", role: VENDOR_ADMIN}) {
             apiKey { id } secret } }""",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    await log.new()
    secret = created["apiKeyCreate"]["secret"]
    payload = await gql(
        """mutation { salesSettingsUpdate(input: {claimWindowDays: 45}) {
             userErrors { code } } }""",
        token=secret,
    )
    assert "errors" not in payload, payload
    entry = await log.one("sale_claim_settings.updated")
    key_id = uuid.UUID(str(entry.actor).removeprefix("api_key:"))
    assert gid("ApiKey", key_id) == created["apiKeyCreate"]["apiKey"]["id"]
    assert entry.after == {"claim_window_days": 45}


async def test_programs_and_versions(
    db: Database, clock: OffsetClock, tenant: Tenant, log: Log
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    rules = es.Rules(base_rates=(es.BaseRate(500),))
    version = await _tx(db, lambda s: programs.create_program(
        s, admin, clock, name="Rewards", currency="USD", rules=rules,
    ))  # fmt: skip
    entry = await log.one("program.created")
    assert (entry.actor, entry.entity_type, entry.entity_id) == (
        admin.caller, "program", str(version.program_id),
    )  # fmt: skip
    assert entry.after is not None
    assert (entry.after["name"], entry.after["currency"]) == ("Rewards", "USD")
    assert entry.after["rules"] == json_safe(version.rules)

    changed = es.Rules(base_rates=(es.BaseRate(800),))
    newer = await _tx(db, lambda s: programs.create_version(
        s, admin, clock, program_id=version.program_id, rules=changed,
    ))  # fmt: skip
    entry = await log.one("program_version.created")
    assert entry.entity_id == str(newer.id)
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["number"], entry.after["number"]) == (1, 2)
    assert entry.after["program_id"] == str(version.program_id)
    assert entry.before["rules"] == json_safe(version.rules)
    assert entry.after["rules"] == json_safe(newer.rules)


async def test_payout_policy(db: Database, clock: OffsetClock, tenant: Tenant, log: Log) -> None:
    finance = tenant.principal(Role.FINANCE)
    await _tx(db, lambda s: payouts.set_policy(s, finance, clock, above_average_factor_bp=20_000))
    entry = await log.one("payout_policy.updated")
    assert entry.actor == finance.caller
    assert entry.before is None  # there was none: the defaults applied
    assert entry.after == {
        "above_average_factor_bp": 20_000, "trailing_statements": 3, "review_days": 14,
    }  # fmt: skip
    await _tx(db, lambda s: payouts.set_policy(
        s, finance, clock, above_average_factor_bp=20_000, review_days=30,
    ))  # fmt: skip
    entry = await log.one("payout_policy.updated")
    assert (entry.before, entry.after) == ({"review_days": 14}, {"review_days": 30})


async def test_payout_profile_never_logs_a_bank_account(
    db: Database, clock: OffsetClock, tenant: Tenant, log: Log
) -> None:
    finance = tenant.principal(Role.FINANCE)
    partner = tenant.partners[0]
    account = "DE89 3704 0044 0532 0130 00"
    await _tx(db, lambda s: payouts.set_profile(
        s, finance, clock, partner_id=partner.id, tax_form_on_file=True, bank_account=account,
    ))  # fmt: skip
    entry = await log.one("payout_profile.updated")
    assert entry.before is None
    assert entry.after == {
        "partner_id": str(partner.id), "tax_form_on_file": True, "bank_account": "****3000",
    }  # fmt: skip
    await _tx(db, lambda s: payouts.set_profile(
        s, finance, clock, partner_id=partner.id, bank_account="GB29NWBK60161331926819",
    ))  # fmt: skip
    entry = await log.one("payout_profile.updated")
    assert (entry.before, entry.after) == ({"bank_account": "****"}, {"bank_account": "****6819"})
    everything = str([(e.before, e.after) for e in await _entries(db)])
    for digits in ("37040044", "053201", "60161331926819"):
        assert digits not in everything


async def test_adjustments(db: Database, clock: OffsetClock, tenant: Tenant, log: Log) -> None:
    finance = tenant.principal(Role.FINANCE)
    partner = tenant.partners[0]

    async def adjust(s: AsyncSession) -> Any:
        return await ledger.adjust(
            s, finance, clock, partner_id=partner.id, amount_minor=-2_500, currency="USD",
            note="duplicate invoice", idempotency_key="adj-1",
        )  # fmt: skip

    made = await _tx(db, adjust)
    entry = await log.one("adjustment.created")
    assert (entry.entity_type, entry.entity_id, entry.reason) == (
        "adjustment", str(made.id), "duplicate invoice",
    )  # fmt: skip
    assert entry.after == {"partner_id": str(partner.id), "amount_minor": -2_500, "currency": "USD"}
    await _tx(db, adjust)  # the retry changes nothing
    await log.none()


async def test_statements_holds_and_releases(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, log: Log
) -> None:
    clock.freeze(datetime(2026, 10, 5, 9, 0, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.tax_form(db, clock, tenant)
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(datetime(2026, 11, 2, tzinfo=UTC))
    await log.new()
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)
    assert statement.status is PayoutStatus.PENDING
    entry = await log.one("payout_statements.generated")
    assert (entry.entity_id, entry.after) == (
        "2026-10", {"month": "2026-10", "statements": 1, "held": 0},
    )  # fmt: skip
    await es.generate(db, clock, tenant, services.claim_signals)  # made before: nothing new
    await log.none()
    finance = tenant.principal(Role.FINANCE)

    hold = await _tx(db, lambda s: payouts.hold(
        s, finance, clock, statement_id=statement.id, note="check the invoice",
    ))  # fmt: skip
    entry = await log.one("payout_hold.placed")
    assert (entry.actor, entry.entity_id, entry.reason) == (
        finance.caller, str(hold.id), "check the invoice",
    )  # fmt: skip
    assert entry.after == {
        "statement_id": str(statement.id), "reason": "MANUAL", "expected_release_at": None,
    }  # fmt: skip

    await _tx(db, lambda s: payouts.release(s, finance, clock, hold_id=hold.id, note="fine"))
    entry = await log.one("payout_hold.released")
    assert (entry.entity_id, entry.reason, entry.before) == (
        str(hold.id), "fine", {"released_at": None},
    )  # fmt: skip
    assert entry.after is not None
    assert entry.after["statement_id"] == str(statement.id)

    await _tx(db, lambda s: payouts.approve(s, finance, clock, statement_id=statement.id))
    entry = await log.one("payout_statement.approved")
    assert (entry.entity_type, entry.entity_id) == ("payout_statement", str(statement.id))
    assert (entry.before, entry.after) == ({"status": "PENDING"}, {"status": "APPROVED"})

    await _tx(db, lambda s: payouts.mark_paid(
        s, finance, clock, statement_id=statement.id, reference="WIRE-7",
    ))  # fmt: skip
    entry = await log.one("payout_statement.paid")
    assert (entry.before, entry.after) == (
        {"status": "APPROVED"}, {"status": "PAID", "paid_reference": "WIRE-7"},
    )  # fmt: skip

    # Refused (already paid): nothing logged.
    with pytest.raises(DomainError):
        await _tx(db, lambda s: payouts.approve(s, finance, clock, statement_id=statement.id))
    await log.none()
    async with db.session() as session:
        assert (await session.get(PayoutStatement, statement.id)) is not None


async def test_recording_a_tax_form_logs_the_holds_it_releases(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, log: Log
) -> None:
    clock.freeze(datetime(2026, 10, 5, 9, 0, tzinfo=UTC))
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(1_000),)))
    await es.sale(db, clock, tenant, 100_000)
    await dispatch(services)
    clock.freeze(datetime(2026, 11, 2, tzinfo=UTC))
    [statement] = await es.generate(db, clock, tenant, services.claim_signals)
    [hold] = await es.holds_of(db, statement)
    await log.new()
    await es.tax_form(db, clock, tenant)
    found = await log.new()
    assert [e.action for e in found] == ["payout_profile.updated", "payout_hold.released"]
    assert found[1].entity_id == str(hold.id)
    assert found[1].reason == payouts.TAX_FORM_RELEASE_NOTE


async def test_contests(db: Database, clock: OffsetClock, tenant: Tenant, log: Log) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    now = clock.now()
    settings = contests.ContestSettings(
        name="Q4 push", starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=30)
    )
    contest = await _tx(db, lambda s: contests.create_contest(s, admin, clock, settings=settings))
    entry = await log.one("contest.created")
    assert (entry.actor, entry.entity_type, entry.entity_id) == (
        admin.caller, "contest", str(contest.id),
    )  # fmt: skip
    assert entry.before is None
    assert entry.after is not None
    assert entry.after["name"] == "Q4 push"

    await _tx(db, lambda s: contests.update_contest(
        s, admin, clock, contest_id=contest.id, changes={"name": "Q4 sprint"},
    ))  # fmt: skip
    entry = await log.one("contest.updated")
    assert (entry.before, entry.after) == ({"name": "Q4 push"}, {"name": "Q4 sprint"})
    await _tx(db, lambda s: contests.update_contest(
        s, admin, clock, contest_id=contest.id, changes={"name": "Q4 sprint"},
    ))  # fmt: skip
    await log.none()  # no change, no entry

    await _tx(db, lambda s: contests.publish_contest(s, admin, clock, contest_id=contest.id))
    entry = await log.one("contest.published")
    assert (entry.before, entry.after) == ({"status": "DRAFT"}, {"status": "SCHEDULED"})

    await _tx(db, lambda s: contests.cancel_contest(s, admin, clock, contest_id=contest.id))
    entry = await log.one("contest.cancelled")
    assert (entry.before, entry.after) == ({"status": "SCHEDULED"}, {"status": "CANCELLED"})


async def test_claim_and_deal_program_settings(
    db: Database, clock: OffsetClock, tenant: Tenant, log: Log
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    await _tx(db, lambda s: claim_settings.update_settings(
        s, admin, clock, auto_approve_limit_minor=50_000, auto_approve_currency="usd",
    ))  # fmt: skip
    entry = await log.one("sale_claim_settings.updated")
    assert (entry.entity_type, entry.entity_id) == ("sale_claim_settings", str(tenant.vendor.id))
    assert entry.after == {"auto_approve_limit_minor": 50_000}
    assert entry.before is not None
    assert set(entry.before) == {"auto_approve_limit_minor"}

    change = program_settings.SettingsChange(protection_days=120, currency="EUR")
    await _tx(db, lambda s: program_settings.update_settings(s, admin, clock, change=change))
    entry = await log.one("deal_program_settings.updated")
    assert entry.after == {"protection_days": 120, "currency": "EUR"}
    assert entry.before is not None
    assert set(entry.before) == {"protection_days", "currency"}


async def test_serial_imports_log_one_entry_with_counts(
    db: Database, clock: OffsetClock, tenant: Tenant, log: Log
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    await _tx(db, lambda s: add_products(s, clock, tenant, (WIDGET,)))
    await log.new()
    body = csv_bytes(registry_rows(tenant, clock, 5))
    report = await _tx(db, lambda s: serials.import_serials(
        s, admin, clock, source=io.BytesIO(body), filename="ship.csv",
    ))  # fmt: skip
    entry = await log.one("serial_import.applied")
    assert entry.entity_id == str(report.import_id)
    assert entry.after is not None
    assert {k: entry.after[k] for k in ("filename", "rows", "inserted", "rejected")} == {
        "filename": "ship.csv", "rows": 5, "inserted": 5, "rejected": 0,
    }  # fmt: skip


async def test_products(db: Database, clock: OffsetClock, tenant: Tenant, log: Log) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)

    async def upsert(s: AsyncSession, price: int) -> Any:
        return await catalogue.upsert_product(
            s, admin, clock, sku="w-1", name="Widget", list_price_minor=price, currency="USD"
        )

    product = await _tx(db, lambda s: upsert(s, 10_000))
    entry = await log.one("product.created")
    assert entry.entity_id == str(product.id)
    assert entry.after is not None
    assert entry.after["list_price_minor"] == 10_000
    await _tx(db, lambda s: upsert(s, 12_000))
    entry = await log.one("product.updated")
    assert (entry.before, entry.after) == (
        {"list_price_minor": 10_000},
        {"list_price_minor": 12_000},
    )
    await _tx(db, lambda s: upsert(s, 12_000))
    await log.none()


async def test_outbox_retry_and_discard_name_the_operator(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services, log: Log
) -> None:
    async with services.outbox.paused():  # the dispatcher leaves the event undispatched
        async with db.transaction() as session:
            event = await record_event(
                session, clock, vendor_id=tenant.vendor.id, type="AuditProbe",
                aggregate_id=uuid.uuid4(), payload={},
            )  # fmt: skip
        await retry_event(db, clock, event.id, by="ops@example")
        entry = await log.one("outbox_event.retried")
        assert (entry.actor, entry.entity_type, entry.entity_id, entry.vendor_id) == (
            "operator:ops@example", "outbox_event", str(event.id), tenant.vendor.id,
        )  # fmt: skip
        assert entry.after == {"state": "PENDING", "attempts": 0}
        await discard_event(db, clock, event.id, by="ops@example")
        entry = await log.one("outbox_event.discarded")
        assert (entry.before, entry.after) == (
            {"state": "PENDING", "attempts": 0}, {"state": "DISCARDED", "attempts": 0},
        )  # fmt: skip
        assert await discard_event(db, clock, event.id, by="ops@example") is None
        await log.none()
