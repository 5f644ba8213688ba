"""The audit log's table: ``record`` writes one JSON-safe entry in the caller's
transaction; entries are immutable."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from infra.append_only import AppendOnlyError
from infra.audit import AuditEntry, mask, record
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.factories import Tenant


async def test_record_writes_one_json_safe_entry(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    user = tenant.user(Role.PARTNER_REP)
    at = clock.now()
    async with db.transaction() as session:
        entry = await record(
            session, vendor_id=tenant.vendor.id, actor=tenant.principal(Role.VENDOR_ADMIN).caller,
            action="user.role_changed", entity_type="user", entity_id=str(user.id),
            before={"role": Role.PARTNER_REP}, after={"role": Role.PARTNER_ADMIN,
            "since": date(2026, 12, 5), "by": user.id}, reason="promoted", at=at,
        )  # fmt: skip
    async with db.session() as session:
        stored = (await session.exec(select(AuditEntry))).one()
    assert stored.id == entry.id
    assert stored.at == at
    assert stored.at.tzinfo == UTC
    assert stored.actor == f"user:{tenant.user(Role.VENDOR_ADMIN).id}"
    assert stored.before == {"role": "PARTNER_REP"}
    assert stored.after == {"role": "PARTNER_ADMIN", "since": "2026-12-05", "by": str(user.id)}
    assert stored.reason == "promoted"


async def test_an_entry_rolls_back_with_its_change(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async def change_that_fails() -> None:
        async with db.transaction() as session:
            await record(
                session, vendor_id=tenant.vendor.id, actor="operator:test", action="x.y",
                entity_type="x", entity_id="1", before=None, after={}, reason=None,
                at=clock.now(),
            )  # fmt: skip
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    async with db.session() as session:
        assert (await session.exec(select(AuditEntry))).all() == []


async def test_entries_cannot_be_updated_or_deleted(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    async with db.transaction() as session:
        await record(
            session, vendor_id=tenant.vendor.id, actor="operator:test", action="x.y",
            entity_type="x", entity_id=str(uuid.uuid4()), before=None, after={"a": 1},
            reason=None, at=datetime(2026, 12, 5, tzinfo=UTC),
        )  # fmt: skip
    async with db.session() as session:
        entry = (await session.exec(select(AuditEntry))).one()
        entry.actor = "operator:someone-else"
        session.add(entry)
        with pytest.raises(AppendOnlyError):
            await session.flush()
        await session.rollback()
        entry = (await session.exec(select(AuditEntry))).one()
        await session.delete(entry)
        with pytest.raises(AppendOnlyError):
            await session.flush()


def test_mask_keeps_only_the_tail() -> None:
    assert mask("DE89370400440532013000") == "****3000"
    assert mask("123") == "****"


async def test_the_database_refuses_an_update_the_orm_never_sees(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A bulk ``update()`` passes the ORM's events by: the table's trigger refuses it."""
    async with db.transaction() as session:
        await record(
            session, vendor_id=tenant.vendor.id, actor="operator:test", action="x.y",
            entity_type="x", entity_id="1", before=None, after={"a": 1}, reason=None,
            at=clock.now(),
        )  # fmt: skip
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.transaction() as session:
            await session.execute(update(AuditEntry).values(actor="operator:someone-else"))
    async with db.session() as session:
        assert (await session.exec(select(AuditEntry.actor))).all() == ["operator:test"]
