"""Programs target partner groups, and stacking is explicit (issue 12, item 8).

The report: a second rev-share program created as a pilot paid every partner on top of the
first (one 1,000.00 USD sale credited 80.00 at 8 % and 10.00 at 1 %). Now a second BASE
program for the same partners is refused, a pilot is a BONUS program for a group, and a
sale is credited under exactly the programs that applied to its partner on its date."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from earnings import programs
from earnings.models import EarningEntry, Program, ProgramKind
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners import groups
from partners.group_models import MemberMode
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EIGHT = es.Rules(base_rates=(es.BaseRate(rate_bp=800),))
ONE = es.Rules(base_rates=(es.BaseRate(rate_bp=100),))

CREATE = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id name kind targetGroups { name } } userErrors { code field message } } }"""


def program_input(name: str, rate_bp: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "currency": "USD", "rules": {"baseRates": [{"rateBp": rate_bp}]},
            "effectiveFrom": (T0 - timedelta(days=30)).isoformat(), **extra}  # fmt: skip


async def credited(db: Database, event_id: object) -> list[tuple[str, int, str]]:
    async with db.session() as session:
        rows = await session.exec(
            select(Program.name, EarningEntry.amount_minor, EarningEntry.rule)
            .join(Program, col(Program.id) == col(EarningEntry.program_id))
            .where(EarningEntry.source_event_id == event_id)
            .order_by(col(Program.name))
        )
        return [(name, amount, rule) for name, amount, rule in rows]


async def pilot_group(db: Database, clock: OffsetClock, tenant: Tenant) -> uuid.UUID:
    admin = tenant.principal(Role.VENDOR_ADMIN)

    async def make(session: Any) -> Any:
        group = await groups.create_group(session, admin, clock, name="Pilot")
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=[tenant.partners[0].id],
            mode=MemberMode.INCLUDE,
        )  # fmt: skip
        return group.id

    return await es.tx(db, make)  # type: ignore[no-any-return]


async def test_a_second_base_program_for_every_partner_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(T0)
    admin = tenant.user(Role.VENDOR_ADMIN)
    first = await gql.data(CREATE, {"input": program_input("Partner Rewards", 800)}, as_user=admin)
    assert first["earningProgramCreate"]["userErrors"] == []
    pilot = await gql.data(CREATE, {"input": program_input("Pilot", 100)}, as_user=admin)
    result = pilot["earningProgramCreate"]
    assert result["program"] is None
    [error] = result["userErrors"]
    assert (error["code"], error["field"]) == ("OVERLAPPING_BASE_PROGRAM", "targetGroupIds")
    assert "Partner Rewards" in error["message"]
    event = await es.sale(db, clock, tenant, 1_000_00)
    await dispatch(services)
    assert [(name, amount) for name, amount, _ in await credited(db, event.id)] == [
        ("Partner Rewards", 80_00)
    ]  # not 80.00 + 10.00 as reported


async def test_a_bonus_pilot_pays_only_its_group_on_top_and_says_so(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(T0 - timedelta(days=40))
    group_id = await pilot_group(db, clock, tenant)
    clock.freeze(T0)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(CREATE, {"input": program_input("Partner Rewards", 800)}, as_user=admin)
    data = await gql.data(CREATE, {"input": program_input(
        "Pilot", 100, kind="BONUS", targetGroupIds=[gid("PartnerGroup", group_id)]
    )}, as_user=admin)  # fmt: skip
    assert data["earningProgramCreate"]["program"]["kind"] == "BONUS"
    assert data["earningProgramCreate"]["program"]["targetGroups"] == [{"name": "Pilot"}]
    in_pilot = await es.sale(db, clock, tenant, 1_000_00, partner_index=0)
    outside = await es.sale(db, clock, tenant, 1_000_00, partner_index=1)
    await dispatch(services)
    assert await credited(db, in_pilot.id) == [
        ("Partner Rewards", 80_00, "Partner Rewards: 8% of 1,000.00 USD (the sale)"),
        ("Pilot", 10_00, "Pilot (bonus program, paid on top of your base program): 1% of "
         "1,000.00 USD (the sale)"),
    ]  # fmt: skip
    assert [(n, a) for n, a, _ in await credited(db, outside.id)] == [("Partner Rewards", 80_00)]
    # The partner's summary names the programs its earnings came from.
    summary = await gql.data(
        """{ earnings { explanations { kind text } } }""",
        as_user=tenant.user(Role.PARTNER_ADMIN, 0),
    )
    texts = {e["kind"]: e["text"] for e in summary["earnings"]["explanations"]}
    assert texts["PROGRAMS"] == (
        "Your earnings came from Partner Rewards (base program): 80.00 USD; Pilot (bonus "
        "program, paid on top of your base program): 10.00 USD."
    )
    # Partner roles do not see whom a program targets.
    programs_seen = await gql(
        "{ earningPrograms { edges { node { name kind targetGroups { name } } } } }",
        as_user=tenant.user(Role.PARTNER_ADMIN, 0),
    )
    nodes = [e["node"] for e in programs_seen["data"]["earningPrograms"]["edges"]]
    assert all(n["targetGroups"] is None for n in nodes)


async def test_membership_at_the_sale_date_decides(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A sale made before the partner joined the targeted group is not credited under the
    group's program; one made while it was a member is, even after it left."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    clock.freeze(T0)
    group_id = await pilot_group(db, clock, tenant)
    await es.tx(db, lambda s: programs.create_program(
        s, admin, clock, name="EMEA base", currency="USD", rules=EIGHT,
        effective_from=T0 - timedelta(days=60), target_group_ids=[group_id],
    ))  # fmt: skip
    clock.freeze(T0 + timedelta(days=10))
    await es.tx(db, lambda s: groups.set_members(
        s, admin, clock, group_id=group_id, partner_ids=[tenant.partners[0].id],
        mode=MemberMode.EXCLUDE,
    ))  # fmt: skip
    before = await es.sale(db, clock, tenant, 1_000_00, sold_at=T0 - timedelta(days=1))
    during = await es.sale(db, clock, tenant, 1_000_00, sold_at=T0 + timedelta(days=5))
    after = await es.sale(db, clock, tenant, 1_000_00, sold_at=T0 + timedelta(days=11))
    await dispatch(services)
    assert await credited(db, before.id) == []
    assert [a for _, a, _ in await credited(db, during.id)] == [80_00]
    assert await credited(db, after.id) == []


async def test_base_programs_for_groups_that_share_a_partner_overlap(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    clock.freeze(T0)
    pilot = await pilot_group(db, clock, tenant)
    emea = await es.tx(db, lambda s: groups.create_group(
        s, admin, clock, name="EMEA", rule=[("region", "IN", ["emea"])]
    ))  # fmt: skip
    others = await es.tx(db, lambda s: groups.create_group(
        s, admin, clock, name="Nobody yet", rule=[("region", "EQ", ["APAC"])]
    ))  # fmt: skip
    await es.tx(db, lambda s: programs.create_program(
        s, admin, clock, name="Pilot base", currency="USD", rules=EIGHT, target_group_ids=[pilot]
    ))  # fmt: skip
    # EMEA holds partner 0, who is in the pilot: refused, naming the other program.
    with pytest.raises(DomainError) as refused:
        await es.tx(db, lambda s: programs.create_program(
            s, admin, clock, name="EMEA base", currency="USD", rules=ONE,
            target_group_ids=[emea.id],
        ))  # fmt: skip
    assert refused.value.code.value == "OVERLAPPING_BASE_PROGRAM"
    assert "Pilot base" in refused.value.message
    # Disjoint groups, another currency, and a bonus are all fine.
    await es.tx(db, lambda s: programs.create_program(
        s, admin, clock, name="APAC base", currency="USD", rules=ONE, target_group_ids=[others.id]
    ))  # fmt: skip
    await es.tx(db, lambda s: programs.create_program(
        s, admin, clock, name="EUR base", currency="EUR", rules=ONE
    ))  # fmt: skip
    await es.tx(db, lambda s: programs.create_program(
        s, admin, clock, name="EMEA bonus", currency="USD", rules=ONE, kind=ProgramKind.BONUS,
        target_group_ids=[emea.id],
    ))  # fmt: skip
    # A new version of a base program that overlaps nothing is accepted.
    async with db.session() as session:
        apac = (await session.exec(select(Program).where(Program.name == "APAC base"))).one()
    await es.tx(
        db, lambda s: programs.create_version(s, admin, clock, program_id=apac.id, rules=EIGHT)
    )


async def test_targets_must_be_the_vendors_live_groups(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    clock.freeze(T0)
    theirs = await pilot_group(db, clock, other_tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)
    targets = [gid("PartnerGroup", theirs), "not-an-id"]
    data = await gql.data(
        CREATE, {"input": program_input("Pilot", 100, targetGroupIds=targets)}, as_user=admin
    )
    result = data["earningProgramCreate"]
    assert result["program"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [
        ("NOT_FOUND", "targetGroupIds.0"), ("NOT_FOUND", "targetGroupIds.1"),
    ]  # fmt: skip
    async with db.session() as session:
        assert list(await session.exec(select(Program))) == []
