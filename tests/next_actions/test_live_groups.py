"""`nextActionsChanged` follows the partner's groups: the next tier is read from the BASE
program of the groups the partner is in, so joining or leaving a group (explicit members,
a rule re-evaluated after partnerUpdate, a timed window ending) pushes the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette

from earnings import programs
from earnings.programs import BaseRate, Rules, Tier
from infra.clock import OffsetClock
from partners import groups
from partners.group_models import MemberMode, PartnerGroup
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, dispatch, gid
from tests.support import GQL, live_server, ws_client

pytestmark = pytest.mark.slow
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MOVES = timedelta(days=30)
SUBSCRIPTION = "subscription { nextActionsChanged { actions { kind title } } }"
APAC = [("region", "IN", ["APAC"])]


async def elite_and_standard(
    services: Services,
    clock: OffsetClock,
    tenant: Tenant,
    elite_rule: list[tuple[str, str, list[str]]] | None = None,
) -> PartnerGroup:
    """Two BASE programs: "Elite Rewards" (next tier Platinum) for the group Elite, made
    first so that it wins for its members, and "Standard Rewards" (Silver) for partner 0's
    group Standard. Returns Elite."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    partner = tenant.partners[0]
    clock.freeze(T0)
    async with services.db.transaction() as session:
        elite = await groups.create_group(session, admin, clock, name="Elite", rule=elite_rule)
        standard = await groups.create_group(session, admin, clock, name="Standard")
        await groups.set_members(session, admin, clock, group_id=standard.id,
                                 partner_ids=[partner.id], mode=MemberMode.INCLUDE)  # fmt: skip
        start = clock.now() - timedelta(days=30)
        made = [
            ("Elite Rewards", elite, Tier("Platinum", 5_000_000, 300)),
            ("Standard Rewards", standard, Tier("Silver", 1_000_000, 100)),
        ]
        for name, group, tier in made:
            await programs.create_program(
                session, admin, clock, name=name, currency="USD", effective_from=start,
                rules=Rules(base_rates=(BaseRate(rate_bp=800),), window_days=30, tiers=(tier,)),
                target_group_ids=[group.id],
            )  # fmt: skip
    await dispatch(services)
    clock.freeze(T0 + timedelta(minutes=1))
    return elite


def next_tier(actions: list[dict[str, str]]) -> str:
    [action] = actions
    assert action["kind"] == "NEXT_TIER", action
    return action["title"].rsplit(" ", 1)[-1]


async def test_joining_a_group_whose_base_program_has_other_tiers_pushes_the_next_tier(
    app: Starlette, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    elite = await elite_and_standard(services, clock, tenant)
    partner_admin = tenant.user(Role.PARTNER_ADMIN, 0)
    async with (
        live_server(app) as address,
        ws_client(address, gql.token(partner_admin, ttl=MOVES)) as ws,
    ):
        await ws.subscribe(SUBSCRIPTION, {})
        assert next_tier((await ws.data())["nextActionsChanged"]["actions"]) == "Silver"
        async with services.db.transaction() as session:
            await groups.set_members(
                session, tenant.principal(Role.VENDOR_ADMIN), clock, group_id=elite.id,
                partner_ids=[tenant.partners[0].id], mode=MemberMode.INCLUDE,
            )  # fmt: skip
        await dispatch(services)
        fresh = await gql.data("{ nextActions { actions { kind title } } }", as_user=partner_admin)
        assert next_tier(fresh["nextActions"]["actions"]) == "Platinum"
        pushed = await ws.data()
        assert next_tier(pushed["nextActionsChanged"]["actions"]) == "Platinum"


async def test_a_partner_update_that_moves_it_into_a_rule_group_pushes_the_next_tier(
    app: Starlette, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await elite_and_standard(services, clock, tenant, elite_rule=APAC)
    async with (
        live_server(app) as address,
        ws_client(address, gql.token(tenant.user(Role.PARTNER_ADMIN, 0), ttl=MOVES)) as ws,
    ):
        await ws.subscribe(SUBSCRIPTION, {})
        assert next_tier((await ws.data())["nextActionsChanged"]["actions"]) == "Silver"
        updated = await gql.data(
            """mutation($input: PartnerUpdateInput!) { partnerUpdate(input: $input) {
                 userErrors { code } } }""",
            {"input": {"id": gid(tenant.partners[0]), "region": "APAC"}},
            as_user=tenant.user(Role.VENDOR_ADMIN),
        )
        assert updated["partnerUpdate"]["userErrors"] == []
        await dispatch(services)
        pushed = await ws.data()
        assert next_tier(pushed["nextActionsChanged"]["actions"]) == "Platinum"


async def test_a_timed_group_window_ending_moves_the_next_tier_by_itself(
    app: Starlette, gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A window (an incentive rule's promotion tier) ends with no event: its end is one of
    the instants the live list re-reads at."""
    elite = await elite_and_standard(services, clock, tenant)
    until = clock.now() + timedelta(days=2)
    async with services.db.transaction() as session:
        await groups.open_window(
            session, clock, group=elite, partner_id=tenant.partners[0].id, until=until,
            reason="promotion", by="test",
        )  # fmt: skip
    async with (
        live_server(app) as address,
        ws_client(address, gql.token(tenant.user(Role.PARTNER_ADMIN, 0), ttl=MOVES)) as ws,
    ):
        await ws.subscribe(SUBSCRIPTION, {})
        assert next_tier((await ws.data())["nextActionsChanged"]["actions"]) == "Platinum"
        clock.freeze(until + timedelta(seconds=1))
        pushed = await ws.data()
        assert next_tier(pushed["nextActionsChanged"]["actions"]) == "Silver"
