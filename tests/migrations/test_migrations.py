"""The migration history upgrades and downgrades on the test's database kind (SQLite by
default, PostgreSQL in CI), and matches the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import BigInteger, inspect
from sqlalchemy.engine import Connection

from api import migrations
from infra.db import create_engine
from migrations.metadata import target_metadata


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            return names - {"alembic_version"}
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    engine = create_engine(url)

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, target_metadata()))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_history_upgrades_and_downgrades_step_by_step(scratch_url: str) -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions, "no migrations"
    for revision in revisions:
        await migrations.upgrade(scratch_url, revision)
        assert await migrations.database_revision(scratch_url) == revision
    assert await _tables(scratch_url) == set(target_metadata().tables)
    for revision in reversed(revisions[:-1]):
        await migrations.downgrade(scratch_url, revision)
        assert await migrations.database_revision(scratch_url) == revision
    await migrations.downgrade(scratch_url, "base")
    assert await _tables(scratch_url) == set()
    await migrations.upgrade(scratch_url)  # and up again from nothing
    assert await migrations.database_revision(scratch_url) == migrations.head_revision()


async def test_models_and_migrations_agree(scratch_url: str) -> None:
    await migrations.upgrade(scratch_url)
    assert await _drift(scratch_url) == []


def test_every_amount_in_minor_units_has_64_bits() -> None:
    """Amounts are accepted up to 10^12 minor units and more (a list price, a deal's value,
    a budget cap, a forecast) and sum into totals: a 32-bit column (PostgreSQL's INTEGER)
    refused anything above 21,474,836.47 USD with a database error."""
    narrow = [
        f"{table.name}.{column.name}"
        for table in target_metadata().tables.values()
        for column in table.columns
        if column.name.endswith("_minor") and not isinstance(column.type, BigInteger)
    ]
    assert narrow == []


def test_one_head_and_dated_file_names() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert len(script.get_heads()) == 1, "branched history: add a merge or re-chain"
    for path in (Path(migrations.MIGRATIONS_DIR) / "versions").glob("*.py"):
        assert path.name[:16].replace("-", "").replace("_", "")[:12].isdigit(), path.name


async def test_keys_made_before_the_idempotency_table_still_replay(
    scratch_url: str, tmp_path: Path
) -> None:
    """0007 copies the per-partner claim keys and per-partner registration keys to
    `idempotency_key`, each as its creator's: a retry by that caller still answers with the
    first record; a colleague's use of the key string is no longer tied to it."""
    from datetime import UTC, date, datetime  # noqa: PLC0415

    from deal_registration.registrations.models import DealRegistration, DealStatus  # noqa: PLC0415
    from deal_registration.registrations.submission import (  # noqa: PLC0415
        RegistrationInput,
        submit_registration,
    )
    from deal_registration.sales.models import ClaimState, SaleClaim  # noqa: PLC0415
    from deal_registration.sales.submission import claim_by_idempotency_key  # noqa: PLC0415
    from deal_registration.storage import LocalStorage  # noqa: PLC0415
    from infra.clock import FrozenClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from partners.roles import Role  # noqa: PLC0415
    from tests.factories import principal_of  # noqa: PLC0415

    await migrations.upgrade(scratch_url, "0006_contests")
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    clock = FrozenClock(now)
    db = Database(scratch_url)
    try:
        async with db.transaction() as session:
            tenant = await _old_tenant(session, now)
            rep, admin = tenant.user(Role.PARTNER_REP), tenant.user(Role.PARTNER_ADMIN)
            vendor, partner = tenant.vendor, tenant.partners[0]
            claim = SaleClaim(
                vendor_id=vendor.id, partner_id=partner.id,
                rep_user_id=rep.id, customer_name="Initech", invoice_number="INV-1",
                sale_date=date(2026, 11, 29), amount_minor=100_00, currency="USD",
                region="EMEA", state=ClaimState.UNDER_REVIEW, idempotency_key="old-claim",
                created_at=now, updated_at=now,
            )  # fmt: skip
            deal = DealRegistration(
                vendor_id=vendor.id, partner_id=partner.id,
                registered_by_id=rep.id, status=DealStatus.DRAFT, customer_name="Acme",
                customer_name_key="acme", customer_domain="acme.com", customer_country="US",
                estimated_value_minor=1_000_00, currency="USD",
                expected_close_date=date(2027, 1, 31), idempotency_key="old-deal",
                request_hash="0" * 64, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add_all([claim, deal])
        await migrations.upgrade(scratch_url)
        async with db.transaction() as session:
            found = await claim_by_idempotency_key(session, principal_of(rep), "old-claim")
            assert found is not None
            assert found.id == claim.id
            assert await claim_by_idempotency_key(session, principal_of(admin), "old-claim") is None
            data = RegistrationInput(
                customer_name="Acme", customer_domain="acme.com", customer_country="US",
                estimated_value_minor=1_000_00, currency="USD",
                expected_close_date=date(2027, 1, 31),
            )  # fmt: skip
            again = await submit_registration(
                session, principal_of(rep), clock, data=data, draft=True,
                idempotency_key="old-deal", storage=LocalStorage(tmp_path),
            )  # fmt: skip
            assert again.id == deal.id
    finally:
        await db.dispose()


async def _old_tenant(session: Any, now: Any) -> Any:
    """A vendor, a partner and its admin and rep, written with only the columns the
    database has at an old revision (today's models may have more: each later migration
    adds its own)."""
    from partners.models import Partner, User, Vendor  # noqa: PLC0415
    from partners.roles import Role  # noqa: PLC0415
    from tests.factories import Tenant  # noqa: PLC0415

    vendor = Vendor(name="Old vendor", slug="old-vendor", created_at=now)
    partner = Partner(vendor_id=vendor.id, name="Old partner", region="EMEA", created_at=now)
    users = {
        (role, 0): User(
            vendor_id=vendor.id,
            partner_id=partner.id,
            email=f"{role.value.lower()}@old.example",
            display_name=role.value.title(),
            role=role,
            created_at=now,
        )  # fmt: skip
        for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP)
    }
    await _insert_old(session, [vendor, partner, *users.values()])
    return Tenant(vendor=vendor, partners=[partner], users=dict(users))


async def _insert_old(session: Any, rows: list[Any]) -> None:
    """Insert model rows with only the columns the database has at an old revision."""
    from sqlalchemy import Column, MetaData, Table  # noqa: PLC0415

    connection = await session.connection()
    for row in rows:
        table = type(row).__table__
        present = await connection.run_sync(
            lambda sync, name=table.name: {c["name"] for c in inspect(sync).get_columns(name)}
        )
        columns = [c for c in table.columns if c.name in present]
        # A table of those columns alone: the model's defaults for newer columns stay out.
        old = Table(table.name, MetaData(), *(Column(c.name, c.type) for c in columns))
        await connection.execute(
            old.insert().values({c.name: getattr(row, c.name) for c in columns})
        )


async def test_firings_made_before_activations_keep_the_current_activations_key(
    scratch_url: str,
) -> None:
    """0031 keys firings by (version, activation, partner, period): the rules and firings
    there were are activation 0, so what the active version fired this period still holds
    its key (nothing fires twice after the upgrade); a later activation may fire anew, and
    then a downgrade to the old key refuses, naming the firing it cannot keep."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import delete, select  # noqa: PLC0415
    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    from incentives.models import (  # noqa: PLC0415
        IncentiveRule,
        IncentiveRuleVersion,
        Period,
        RuleFiring,
        RuleRecommendation,
        RuleStatus,
        VersionStatus,
    )
    from infra.append_only import PURGE  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415

    await migrations.upgrade(scratch_url, "0030_decision_partner")
    now = datetime(2026, 12, 5, 9, tzinfo=UTC)
    db = Database(scratch_url)

    def firing(rule: IncentiveRule, version: IncentiveRuleVersion, **extra: Any) -> RuleFiring:
        return RuleFiring(
            vendor_id=rule.vendor_id, rule_id=rule.id, version_id=version.id,
            version_number=version.number, partner_id=partner_id, period_key="2026-12",
            signal_day="2026-12-05", values={}, outcomes=[], trigger="DAILY", fired_at=now,
            **extra,
        )  # fmt: skip

    try:
        async with db.transaction() as session:
            tenant = await _old_tenant(session, now)
            partner_id = tenant.partners[0].id
            rule = IncentiveRule(
                vendor_id=tenant.vendor.id, name="Old rule", status=RuleStatus.ACTIVE,
                created_at=now, updated_at=now,
            )  # fmt: skip
            version = IncentiveRuleVersion(
                vendor_id=tenant.vendor.id, rule_id=rule.id, number=1, condition="true",
                period=Period.MONTH, status=VersionStatus.APPROVED, created_at=now,
            )  # fmt: skip
            rule.active_version_id = version.id
            old = firing(rule, version)
            # A row that references the firing: SQLite rebuilds the firings' table to change
            # its key, and the drop failed on it with foreign keys enforced.
            tip = RuleRecommendation(
                vendor_id=rule.vendor_id, partner_id=partner_id, firing_id=old.id, title="Go",
                text="Sell more.", created_at=now, expires_at=now,
            )  # fmt: skip
            await _insert_old(session, [rule, version, old])
            await _insert_old(session, [tip])
        # To 0031 only: on SQLite (no transactional DDL) Alembic commits each step, so a
        # downgrade from a later head would undo the later steps before 0031 refuses.
        await migrations.upgrade(scratch_url, "0031_rule_activations")
        async with db.session() as session:
            found = (await session.execute(select(IncentiveRule.activation))).scalars().all()
            fired = (await session.execute(select(RuleFiring.activation))).scalars().all()
        assert (found, fired) == ([0], [0])
        # (Inserted with 0031's columns: the model has newer ones.)
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                await _insert_old(session, [firing(rule, version, activation=0)])  # same key
        async with db.transaction() as session:
            await _insert_old(session, [firing(rule, version, activation=1)])  # a later one
        with pytest.raises(RuntimeError, match="fired twice"):
            await migrations.downgrade(scratch_url, "0030_decision_partner")
        assert await migrations.database_revision(scratch_url) == "0031_rule_activations"
        async with db.transaction() as session:
            await session.execute(
                delete(RuleFiring).where(RuleFiring.activation == 1),
                execution_options={PURGE: True},  # (rows of the test's own making)
            )
        await migrations.downgrade(scratch_url, "0030_decision_partner")  # the tip kept
        async with db.session() as session:
            kept = (await session.execute(select(RuleRecommendation.firing_id))).scalars().all()
        assert kept == [old.id]
    finally:
        await db.dispose()


async def _partner_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("partner")}
            )
    finally:
        await engine.dispose()


async def test_partner_name_keys_are_backfilled_and_look_alikes_refused(scratch_url: str) -> None:
    """0039 stores each partner's name key (partners.names.name_key, computed in Python
    from the names there are) and makes it unique per vendor; a downgrade drops it."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import select  # noqa: PLC0415
    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    from infra.db import Database  # noqa: PLC0415
    from partners.models import Partner  # noqa: PLC0415
    from partners.names import name_key  # noqa: PLC0415

    await migrations.upgrade(scratch_url, "0038_idempotency_key_expiry")
    now = datetime(2026, 12, 7, 9, tzinfo=UTC)
    names = ["\uff21cme", "Globex\u200b Systems", "Straße", *(f"Partner {i}" for i in range(5))]
    db = Database(scratch_url)
    try:
        async with db.transaction() as session:
            tenant = await _old_tenant(session, now)
            vendor_id = tenant.vendor.id
            rows = [
                Partner(vendor_id=vendor_id, name=n, region="EMEA", created_at=now) for n in names
            ]
            await _insert_old(session, rows)
        await migrations.upgrade(scratch_url, "0039_partner_name_key")
        async with db.session() as session:
            stored = dict((await session.execute(select(Partner.name, Partner.name_key))).all())
        assert stored == {n: name_key(n) for n in [*names, "Old partner"]}
        assert stored["\uff21cme"] == "acme"
        assert stored["Straße"] == "strasse"
        look_alike = Partner(vendor_id=vendor_id, name="STRASSE", region="NA", created_at=now)
        with pytest.raises(IntegrityError):  # noqa: PT012 (raised as the block commits)
            async with db.transaction() as session:
                session.add(look_alike)
        await migrations.downgrade(scratch_url, "0038_idempotency_key_expiry")
        assert "name_key" not in await _partner_columns(scratch_url)
    finally:
        await db.dispose()


async def test_partner_names_that_read_alike_stop_the_upgrade_changing_nothing(
    scratch_url: str,
) -> None:
    """Look-alike names stored before 0039 (the rule was a check in Python, passed by two
    requests at once) cannot take the unique key: the upgrade refuses, naming each group of
    look-alikes with its vendor and ids, and leaves the database as it was (no column, the
    old revision); once they are renamed it goes through. It never renames them itself."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import column, table, update  # noqa: PLC0415

    from infra.db import Database  # noqa: PLC0415
    from partners.models import Partner, Vendor  # noqa: PLC0415

    await migrations.upgrade(scratch_url, "0038_idempotency_key_expiry")
    now = datetime(2026, 12, 7, 9, tzinfo=UTC)
    db = Database(scratch_url)
    try:
        async with db.transaction() as session:
            tenant = await _old_tenant(session, now)
            vendor_id = tenant.vendor.id
            other = Vendor(name="Other vendor", slug="other-vendor", created_at=now)
            acme, shouting = (
                Partner(vendor_id=vendor_id, name=n, region="EMEA", created_at=now)
                for n in ("Acme", "ACME")
            )
            elsewhere = Partner(vendor_id=other.id, name="acme", region="EMEA", created_at=now)
            await _insert_old(session, [other, acme, shouting, elsewhere])
        with pytest.raises(RuntimeError) as refused:
            await migrations.upgrade(scratch_url, "0039_partner_name_key")
        message = str(refused.value)
        assert "1 group(s)" in message, message
        assert "vendor old-vendor:" in message, message
        assert f"'Acme' ({acme.id})" in message, message
        assert f"'ACME' ({shouting.id})" in message, message
        assert str(elsewhere.id) not in message  # another vendor's "acme" is no duplicate
        assert await migrations.database_revision(scratch_url) == "0038_idempotency_key_expiry"
        assert "name_key" not in await _partner_columns(scratch_url)
        # Renamed through the table as it is at 0038 (the model's statements write name_key).
        old = table("partner", column("id", Partner.__table__.c.id.type), column("name"))
        async with db.transaction() as session:
            await session.execute(
                update(old).where(old.c.id == shouting.id).values(name="ACME Two")
            )
        await migrations.upgrade(scratch_url, "0039_partner_name_key")
        assert "name_key" in await _partner_columns(scratch_url)
    finally:
        await db.dispose()
