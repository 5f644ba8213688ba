"""``signals`` and ``signalDefinitions`` over GraphQL: who reads which partner and which
signals, and the coded refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from signals.definitions import DEFINITIONS, PARTNER_VISIBLE, Visibility
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale, gid
from tests.signals.scenarios import settle
from tests.support import GQL, error_codes

SIGNALS = """
query($partnerId: ID, $from: Date!, $to: Date!) {
  signals(partnerId: $partnerId, from: $from, to: $to) {
    day currency values { name unit number flag money { amountMinor currency } }
  }
}"""
DEFINITIONS_QUERY = "{ signalDefinitions { name label description unit visibility windowDays } }"


def by_name(day: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in day["values"]}


async def test_partner_users_read_their_own_partner_signals_without_vendor_only_ones(
    services: Services, db: Database, clock: OffsetClock, gql: GQL, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    await approve_sale(db, clock, tenant, amount=1_000_00, sku="NW-AP-6E")
    await settle(services)
    today = clock.now().date()
    week = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    mine = gid("Partner", tenant.partners[0].id)

    # The partner admin reads the organisation's figures. (A partner rep reads its own,
    # never the organisation's: tests/signals/test_reps_read_their_own_figures.py.)
    admin = tenant.user(Role.PARTNER_ADMIN)
    data = await gql.data(SIGNALS, week, as_user=admin)  # own by default
    [day] = data["signals"]
    assert day["day"] == today.isoformat()
    values = by_name(day)
    assert set(values) == PARTNER_VISIBLE
    assert values["revenue_7d"]["money"] == {"amountMinor": 100_000, "currency": "USD"}
    assert values["activated"]["flag"] is True
    assert values["revenue_growth_wow"]["number"] is None
    data = await gql.data(SIGNALS, {**week, "partnerId": mine}, as_user=admin)
    assert by_name(data["signals"][0]) == values

    for user in (tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.FINANCE),
                 tenant.user(Role.CHANNEL_MANAGER)):  # fmt: skip
        data = await gql.data(SIGNALS, {**week, "partnerId": mine}, as_user=user)
        values = by_name(data["signals"][0])
        assert set(values) == set(DEFINITIONS)
        assert values["gross_margin"]["number"] is not None
        assert values["payout_ratio"]["number"] is not None

    # Another partner's, another vendor's, or one the manager is not assigned: null, as a
    # partner that does not exist.
    theirs = gid("Partner", tenant.partners[1].id)
    invisible = [
        (tenant.user(Role.PARTNER_ADMIN, 1), mine),
        (tenant.user(Role.PARTNER_REP, 1), mine),
        (tenant.user(Role.CHANNEL_MANAGER), theirs),
        (other_tenant.user(Role.VENDOR_ADMIN), mine),
        (other_tenant.user(Role.PARTNER_ADMIN), mine),
        (tenant.user(Role.VENDOR_ADMIN), "not-a-global-id"),
    ]
    for user, partner_id in invisible:
        data = await gql.data(SIGNALS, {**week, "partnerId": partner_id}, as_user=user)
        assert data["signals"] is None, (user.role, partner_id)
    # Partner 1 sold nothing: at most the daily job's snapshot (its loop runs beside the
    # dispatcher), with nothing in it.
    data = await gql.data(
        SIGNALS, {**week, "partnerId": theirs}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert all(by_name(d)["revenue_7d"]["money"]["amountMinor"] == 0 for d in data["signals"])
    assert error_codes(await gql(SIGNALS, week)) == ["UNAUTHENTICATED"]


async def test_bad_ranges_are_coded(gql: GQL, tenant: Tenant, clock: OffsetClock) -> None:
    today = clock.now().date()
    admin = tenant.user(Role.VENDOR_ADMIN)
    mine = gid("Partner", tenant.partners[0].id)
    cases = [
        ({"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat(),
          "partnerId": mine}, "INVALID_RANGE"),
        ({"from": (today - timedelta(days=366)).isoformat(), "to": today.isoformat(),
          "partnerId": mine}, "RANGE_TOO_LONG"),
        ({"from": today.isoformat(), "to": today.isoformat()}, "PARTNER_REQUIRED"),
    ]  # fmt: skip
    for variables, code in cases:
        payload = await gql(SIGNALS, variables, as_user=admin)
        assert error_codes(payload) == [code]
        assert payload["data"]["signals"] is None
    payload = await gql(SIGNALS, {"from": "yesterday", "to": today.isoformat()}, as_user=admin)
    assert payload.get("errors")


async def test_definitions_partners_see_only_theirs(gql: GQL, tenant: Tenant) -> None:
    partner = await gql.data(DEFINITIONS_QUERY, as_user=tenant.user(Role.PARTNER_ADMIN))
    vendor = await gql.data(DEFINITIONS_QUERY, as_user=tenant.user(Role.CHANNEL_MANAGER))
    seen = {d["name"] for d in partner["signalDefinitions"]}
    assert seen == PARTNER_VISIBLE
    assert {d["name"] for d in vendor["signalDefinitions"]} == set(DEFINITIONS)
    assert all(d["visibility"] == Visibility.PARTNER.value for d in partner["signalDefinitions"])
    [growth] = [d for d in vendor["signalDefinitions"] if d["name"] == "revenue_growth_wow"]
    assert growth["unit"] == "RATIO"
    assert growth["windowDays"] == 14
    assert "week" in growth["description"]
    assert error_codes(await gql(DEFINITIONS_QUERY)) == ["UNAUTHENTICATED"]
