"""The audit log as its readers get it: `auditLog` (newest first, filtered, paged) and
`auditLogExport` (CSV) for a vendor admin (every entry of its vendor) and finance (entries
about money settings only); every other role is refused, and no one reads another
vendor's entries. `channelboard audit export` writes the same CSV for an operator."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from api.settings import Settings
from infra.audit import AuditEntry, record
from infra.clock import OffsetClock
from infra.db import Database
from partners.audit_log import (
    MONEY_ENTITY_TYPES,
    AuditEntity,
    export_pages,
    readable_audit_entries,
    vendor_entries,
)
from partners.roles import Role
from tests.factories import Tenant
from tests.processes import process_env
from tests.support import GQL, error_codes

LOG = """query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id at actor action entityType entityId before after reason } }
  }
}"""
EXPORT = """query($filter: AuditLogFilter) {
  auditLogExport(filter: $filter) { csv rowCount truncated }
}"""


async def _seed(db: Database, clock: OffsetClock, tenant: Tenant) -> list[AuditEntry]:
    """Four entries a minute apart: an API key, a program, a contest, a payout policy."""
    actor = tenant.principal(Role.VENDOR_ADMIN).caller
    made = []
    for entity, action in (
        (AuditEntity.API_KEY, "api_key.created"),
        (AuditEntity.PROGRAM, "program.created"),
        (AuditEntity.CONTEST, "contest.published"),
        (AuditEntity.PAYOUT_POLICY, "payout_policy.updated"),
    ):
        clock.advance(timedelta(minutes=1))
        async with db.transaction() as session:
            made.append(
                await record(
                    session,
                    vendor_id=tenant.vendor.id,
                    actor=actor,
                    action=action,
                    entity_type=entity,
                    entity_id=f"{entity}-{tenant.vendor.slug}",
                    before={"status": "DRAFT"},
                    after={"status": "=SCHEDULED"},
                    reason='=HYPERLINK("x")' if entity is AuditEntity.CONTEST else None,
                    at=clock.now(),
                )  # fmt: skip
            )
    return made


def _actions(data: dict[str, Any]) -> list[str]:
    return [e["node"]["action"] for e in data["auditLog"]["edges"]]


async def test_a_vendor_admin_reads_every_entry_of_its_vendor_newest_first(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, gql: GQL
) -> None:
    await _seed(db, clock, tenant)
    await _seed(db, clock, other_tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)
    data = await gql.data(LOG, as_user=admin)
    assert data["auditLog"]["totalCount"] == 4
    assert _actions(data) == [
        "payout_policy.updated", "contest.published", "program.created", "api_key.created",
    ]  # fmt: skip
    node = data["auditLog"]["edges"][0]["node"]
    assert node["actor"] == f"user:{admin.id}"
    assert node["entityId"] == f"payout_policy-{tenant.vendor.slug}"
    assert (node["before"], node["after"]) == ({"status": "DRAFT"}, {"status": "=SCHEDULED"})

    # Pages follow the same order.
    first = await gql.data(LOG, {"first": 3}, as_user=admin)
    assert first["auditLog"]["pageInfo"]["hasNextPage"] is True
    rest = await gql.data(
        LOG, {"first": 3, "after": first["auditLog"]["pageInfo"]["endCursor"]}, as_user=admin
    )
    assert _actions(first) + _actions(rest) == _actions(data)
    assert rest["auditLog"]["pageInfo"]["hasNextPage"] is False


async def test_filters(db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL) -> None:
    made = await _seed(db, clock, tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)

    async def actions(**f: Any) -> list[str]:
        return _actions(await gql.data(LOG, {"filter": f}, as_user=admin))

    assert await actions(entityType="contest") == ["contest.published"]
    assert await actions(entityId=made[1].entity_id) == ["program.created"]
    assert await actions(actionPrefix="pro") == ["program.created"]
    assert await actions(actionPrefix="%") == []  # a prefix, not a pattern
    assert await actions(actor=f"user:{admin.id}") == [e.action for e in reversed(made)]
    assert await actions(actor="api_key:nobody") == []
    since, until = made[1].at.isoformat(), made[3].at.isoformat()
    assert await actions(since=since, until=until) == ["contest.published", "program.created"]
    naive = made[3].at.replace(tzinfo=None).isoformat()  # read as UTC
    assert await actions(since=naive) == ["payout_policy.updated"]


@pytest.mark.parametrize("query", [LOG, EXPORT])
@pytest.mark.parametrize("until", ["2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z"])
async def test_a_time_range_that_ends_at_or_before_its_start_is_refused(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL, query: str, until: str
) -> None:
    """It was an empty log (or CSV), read as "nothing changed then"."""
    await _seed(db, clock, tenant)
    f = {"since": "2026-12-01T00:00:00Z", "until": until}
    response = await gql(query, {"filter": f}, as_user=tenant.user(Role.VENDOR_ADMIN))
    [error] = response["errors"]
    assert error["extensions"] == {"code": "INVALID_RANGE", "field": "filter.until"}
    assert error["message"] == "`since` must be before `until`."


async def test_finance_reads_only_entries_about_money_settings(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, gql: GQL
) -> None:
    await _seed(db, clock, tenant)
    await _seed(db, clock, other_tenant)
    data = await gql.data(LOG, as_user=tenant.user(Role.FINANCE))
    assert _actions(data) == ["payout_policy.updated", "program.created"]
    # Asking for what it may not read finds nothing (not an error).
    hidden = await gql.data(
        LOG, {"filter": {"entityType": "api_key"}}, as_user=tenant.user(Role.FINANCE)
    )
    assert hidden["auditLog"]["totalCount"] == 0
    exported = await gql.data(EXPORT, as_user=tenant.user(Role.FINANCE))
    assert exported["auditLogExport"]["rowCount"] == 2


def test_the_money_settings_finance_reads_are_named_explicitly() -> None:
    assert {str(t) for t in MONEY_ENTITY_TYPES} == {
        "program", "program_version", "payout_policy", "payout_profile", "adjustment",
        "payout_hold", "payout_statement", "sale_claim_settings", "deal_program_settings",
        "contest_prize",
        "incentive_rule", "rule_firing",
    }  # fmt: skip


@pytest.mark.parametrize(
    "role", [Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP], ids=lambda r: r.value
)
async def test_other_roles_are_refused(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL, role: Role
) -> None:
    await _seed(db, clock, tenant)
    for query in (LOG, EXPORT):
        payload = await gql(query, as_user=tenant.user(role))
        assert error_codes(payload) == ["FORBIDDEN"]
        assert payload["data"] is None or all(v is None for v in payload["data"].values())
    assert (await db_statement_count(db, tenant, role)) == 0


async def db_statement_count(db: Database, tenant: Tenant, role: Role) -> int:
    async with db.session() as session:
        return len((await session.exec(readable_audit_entries(tenant.principal(role)))).all())


async def test_anonymous_is_refused(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    await _seed(db, clock, tenant)
    for query in (LOG, EXPORT):
        assert error_codes(await gql(query)) == ["UNAUTHENTICATED"]


async def test_an_entry_of_another_vendor_is_not_a_node(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, gql: GQL
) -> None:
    [entry, *_] = await _seed(db, clock, other_tenant)
    own = (await _seed(db, clock, tenant))[0]
    query = "query($id: ID!) { node(id: $id) { ... on AuditEntry { action } } }"
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert (await gql.data(query, {"id": _gid(entry)}, as_user=admin))["node"] is None
    found = await gql.data(query, {"id": _gid(own)}, as_user=admin)
    assert found["node"] == {"action": "api_key.created"}
    finance = tenant.user(Role.FINANCE)  # an API key's entry is not finance's to read
    assert (await gql.data(query, {"id": _gid(own)}, as_user=finance))["node"] is None


def _gid(entry: AuditEntry) -> str:
    from tests.factories import gid  # noqa: PLC0415

    return gid("AuditEntry", entry.id)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_export_is_csv_oldest_first_and_safe_for_spreadsheets(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, gql: GQL
) -> None:
    made = await _seed(db, clock, tenant)
    await _seed(db, clock, other_tenant)
    data = await gql.data(EXPORT, as_user=tenant.user(Role.VENDOR_ADMIN))
    export = data["auditLogExport"]
    assert (export["rowCount"], export["truncated"]) == (4, False)
    rows = _rows(export["csv"])
    assert [r["id"] for r in rows] == [str(e.id) for e in made]
    assert list(rows[0]) == [
        "id", "at", "actor", "action", "entity_type", "entity_id", "before", "after", "reason",
    ]  # fmt: skip
    assert json.loads(rows[0]["after"]) == {"status": "=SCHEDULED"}  # JSON starts with '{'
    assert rows[2]["reason"] == '\'=HYPERLINK("x")'  # a formula is defused
    filtered = await gql.data(
        EXPORT, {"filter": {"actionPrefix": "contest."}}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert [r["action"] for r in _rows(filtered["auditLogExport"]["csv"])] == ["contest.published"]


async def _export_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "audit", "export", *args, env=process_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_the_operator_exports_one_vendors_log_from_the_command_line(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    made = await _seed(db, clock, tenant)
    await _seed(db, clock, other_tenant)
    code, out, err = await _export_cli(settings, "--vendor", tenant.vendor.slug)
    assert code == 0, err
    assert [r["id"] for r in _rows(out)] == [str(e.id) for e in made]
    since = made[2].at.isoformat()
    code, out, err = await _export_cli(settings, "--vendor", tenant.vendor.slug, "--since", since)
    assert code == 0, err
    assert [r["action"] for r in _rows(out)] == ["contest.published", "payout_policy.updated"]
    code, out, err = await _export_cli(settings)  # two vendors: which one?
    assert (code, out) == (1, "")
    assert "--vendor" in err
    code, _out, err = await _export_cli(settings, "--vendor", "no-such-vendor")
    assert code == 1
    code, _out, err = await _export_cli(settings, "--vendor", tenant.vendor.slug, "--since", "x")
    assert code == 2


async def test_reading_the_log_writes_nothing(
    db: Database, clock: OffsetClock, tenant: Tenant, gql: GQL
) -> None:
    await _seed(db, clock, tenant)
    await gql.data(LOG, as_user=tenant.user(Role.VENDOR_ADMIN))
    await gql.data(EXPORT, as_user=tenant.user(Role.VENDOR_ADMIN))
    async with db.session() as session:
        assert len((await session.exec(select(AuditEntry))).all()) == 4


async def test_the_operators_export_reads_the_log_in_pages(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await _seed(db, clock, tenant)
    await _seed(db, clock, other_tenant)
    async with db.session() as session:
        pages = [
            [e.id for e in page]
            async for page in export_pages(session, vendor_entries(tenant.vendor.id), page=3)
        ]
    assert pages == [[e.id for e in made[:3]], [made[3].id]]
