"""A partner rep reads its own figures, never its organisation's (``partners.access``:
``reads_organisation_records``): ``signals`` answers a rep with its own rep signals, as
``repSignals`` does, and ``signalDefinitions`` lists those only. The partner admin keeps
the organisation's view; other partners and vendors read nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from signals.definitions import PARTNER_VISIBLE, REP_NAMES
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale, gid
from tests.signals.scenarios import settle
from tests.signals.test_api import SIGNALS, by_name
from tests.signals.test_rep_signals import REP_SIGNALS, money, two_reps
from tests.support import GQL, error_codes

DEFINITIONS_QUERY = "{ signalDefinitions { name perRep visibility } }"
# Organisation-level figures a rep never reads: its money, its deals, its people.
ORGANISATION_ONLY = PARTNER_VISIBLE - set(REP_NAMES)


def today_of(days: list[dict[str, Any]], day: str) -> dict[str, Any]:
    assert days[-1]["day"] == day
    return by_name(days[-1])


async def test_a_rep_reads_its_own_signals_and_the_admin_the_organisations(
    services: Services, db: Database, clock: OffsetClock, gql: GQL, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    rep_a, rep_b = await two_reps(services, db, clock, tenant)
    today = clock.now().date()
    week = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    mine = gid("Partner", tenant.partners[0].id)

    # The rep: its own figures (400.00 of its own sales this week), under the same names
    # and days as repSignals of itself, with or without naming its partner.
    own = await gql.data(REP_SIGNALS, week, as_user=rep_a)
    for variables in (week, {**week, "partnerId": mine}):
        data = await gql.data(SIGNALS, variables, as_user=rep_a)
        assert data["signals"] == own["repSignals"]
        values = today_of(data["signals"], today.isoformat())
        assert set(values) == set(REP_NAMES)
        assert not set(values) & ORGANISATION_ONLY  # no earnings, no organisation's deals
        assert money(values["revenue_7d"]) == 400_00
    b = today_of((await gql.data(SIGNALS, week, as_user=rep_b))["signals"], today.isoformat())
    assert money(b["revenue_7d"]) == 300_00

    # The partner admin: the organisation's (both reps' sales, 300.00 + 200.00 - 200.00 +
    # 400.00, and the sale that names no rep, 50.00), every partner-visible signal.
    data = await gql.data(SIGNALS, week, as_user=tenant.user(Role.PARTNER_ADMIN))
    values = today_of(data["signals"], today.isoformat())
    assert set(values) == PARTNER_VISIBLE
    assert money(values["revenue_7d"]) == 750_00
    assert (money(values["earnings_7d"]) or 0) > 0

    # Another partner's users and another vendor's read nothing of partner 0.
    for user in (tenant.user(Role.PARTNER_ADMIN, 1), tenant.user(Role.PARTNER_REP, 1),
                 other_tenant.user(Role.VENDOR_ADMIN), other_tenant.user(Role.PARTNER_ADMIN),
                 other_tenant.user(Role.PARTNER_REP)):  # fmt: skip
        data = await gql.data(SIGNALS, {**week, "partnerId": mine}, as_user=user)
        assert data["signals"] is None, user.role
    assert error_codes(await gql(SIGNALS, week)) == ["UNAUTHENTICATED"]


async def test_a_rep_without_sales_of_its_own_reads_none_of_the_organisations(
    services: Services, db: Database, clock: OffsetClock, gql: GQL, tenant: Tenant
) -> None:
    """The reviewer's case: the organisation sold 5,000.00 through no rep; its rep's
    earnings say 0, and its signals must not say 5,000.00 either."""
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    await approve_sale(db, clock, tenant, amount=5_000_00, sku="NW-AP-6E")
    await settle(services)
    today = clock.now().date().isoformat()
    day = {"from": today, "to": today}

    rep = tenant.user(Role.PARTNER_REP)
    assert (await gql.data(SIGNALS, day, as_user=rep))["signals"] == []
    earnings = await gql.data("{ earnings { earned { amountMinor } } }", as_user=rep)
    assert earnings["earnings"]["earned"]["amountMinor"] == 0

    admin = await gql.data(SIGNALS, day, as_user=tenant.user(Role.PARTNER_ADMIN))
    values = today_of(admin["signals"], today)
    assert money(values["revenue_7d"]) == 5_000_00
    assert (money(values["earnings_7d"]) or 0) > 0  # what the rep must not read


async def test_definitions_tell_a_rep_what_it_reads(gql: GQL, tenant: Tenant) -> None:
    rep = await gql.data(DEFINITIONS_QUERY, as_user=tenant.user(Role.PARTNER_REP))
    assert {d["name"] for d in rep["signalDefinitions"]} == set(REP_NAMES)
    assert all(d["perRep"] for d in rep["signalDefinitions"])
    admin = await gql.data(DEFINITIONS_QUERY, as_user=tenant.user(Role.PARTNER_ADMIN))
    assert {d["name"] for d in admin["signalDefinitions"]} == PARTNER_VISIBLE
    assert error_codes(await gql(DEFINITIONS_QUERY)) == ["UNAUTHENTICATED"]
