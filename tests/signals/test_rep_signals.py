"""``repSignals`` over GraphQL: each rep's signals from the sales, claims and deals that
name it, and who may read which rep (a partner rep itself, a partner admin its partner's
reps, vendor staff the reps of the partners they may see)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from deal_registration.registrations import outcome, submission
from infra.clock import OffsetClock
from infra.db import Database
from partners import service as partners_service
from partners.models import User
from partners.roles import Role
from schema.context import Services
from signals.definitions import DEFINITIONS, REP_NAMES
from tests.deal_registration.registrations.scenarios import register
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale, create_contest, gid, principal_of, reverse_sale
from tests.leaderboards.test_display_keys import create_key
from tests.signals.scenarios import settle
from tests.signals.test_api import by_name
from tests.support import GQL, error_codes

REP_SIGNALS = """
query($partnerId: ID, $repUserId: ID, $from: Date!, $to: Date!) {
  repSignals(partnerId: $partnerId, repUserId: $repUserId, from: $from, to: $to) {
    day currency values { name unit number flag money { amountMinor currency } }
  }
}"""
AP = [submission.LineInput(sku="NW-AP-6E", quantity=5)]
DEFINITIONS_QUERY = "{ signalDefinitions { name perRep visibility } }"


async def second_rep(db: Database, clock: OffsetClock, tenant: Tenant) -> User:
    async with db.transaction() as session:
        return await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, partner_id=tenant.partners[0].id,
            email=f"rep-b-{tenant.vendor.slug}@example.com", role=Role.PARTNER_REP,
            display_name="Rep B",
        )  # fmt: skip


async def two_reps(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> tuple[User, User]:
    """Partner 0's rep A: sales of 1,000.00 (credited eight days ago) and 400.00, a deal won and one
    lost. Rep B: sales of 300.00 and 200.00 (the latter refunded), a deal open (2,000.00).
    A sale naming no rep, and partner 1's rep's sale, count for neither."""
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    rep_a, rep_b = tenant.user(Role.PARTNER_REP), await second_rep(db, clock, tenant)
    admin = tenant.user(Role.VENDOR_ADMIN)
    await approve_sale(db, clock, tenant, amount=1_000_00, sku="NW-AP-6E", rep=rep_a.id)
    await settle(services)
    clock.advance(timedelta(days=8))
    await approve_sale(db, clock, tenant, amount=400_00, sku="NW-AP-6E", rep=rep_a.id)
    await approve_sale(db, clock, tenant, amount=300_00, sku="NW-AP-6E", rep=rep_b.id)
    refunded = await approve_sale(db, clock, tenant, amount=200_00, sku="NW-AP-6E", rep=rep_b.id)
    await approve_sale(db, clock, tenant, amount=50_00, sku="NW-AP-6E")
    await approve_sale(
        db, clock, tenant, partner=1, amount=70_00, sku="NW-AP-6E",
        rep=tenant.user(Role.PARTNER_REP, 1).id,
    )  # fmt: skip
    await settle(services)
    await reverse_sale(db, clock, tenant, refunded)
    won = await register(
        db,
        clock,
        rep_a,
        approve_as=admin,
        customer_domain="w.example",
        customer_name="W Co",
        lines=AP,
    )
    lost = await register(
        db,
        clock,
        rep_a,
        approve_as=admin,
        customer_domain="l.example",
        customer_name="L Co",
        lines=AP,
    )
    await register(
        db,
        clock,
        rep_b,
        customer_domain="o.example",
        customer_name="O Co",
        lines=AP,
        estimated_value_minor=200_000,
    )
    async with db.transaction() as session:
        await outcome.mark_won(session, principal_of(rep_a), clock, registration_id=won.id)
    async with db.transaction() as session:
        await outcome.mark_lost(session, principal_of(rep_a), clock, registration_id=lost.id)
    await settle(services)
    return rep_a, rep_b


def today_of(data: dict[str, Any], clock: OffsetClock) -> dict[str, Any]:
    days = data["repSignals"]
    assert days[-1]["day"] == clock.now().date().isoformat()
    return by_name(days[-1])


def money(value: dict[str, Any]) -> int | None:
    return None if value["money"] is None else int(value["money"]["amountMinor"])


async def test_each_rep_reads_its_own_signals_from_what_names_it(
    services: Services, db: Database, clock: OffsetClock, gql: GQL, tenant: Tenant
) -> None:
    rep_a, rep_b = await two_reps(services, db, clock, tenant)
    today = clock.now().date()
    month = {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}

    a = today_of(await gql.data(REP_SIGNALS, month, as_user=rep_a), clock)  # itself by default
    assert set(a) == set(REP_NAMES)
    assert money(a["revenue_7d"]) == 400_00
    assert money(a["revenue_30d"]) == money(a["revenue_90d"]) == 1_400_00
    assert a["deals_registered_30d"]["number"] == 2
    assert a["deals_won_90d"]["number"] == 1
    assert a["deals_lost_90d"]["number"] == 1
    assert a["win_rate"]["number"] == 0.5
    assert money(a["open_pipeline"]) == 0
    assert a["days_since_last_sale"]["number"] == 0
    assert a["days_since_first_sale"]["number"] == 8
    assert a["activated"]["flag"] is True

    b = today_of(await gql.data(REP_SIGNALS, month, as_user=rep_b), clock)
    assert money(b["revenue_7d"]) == money(b["revenue_90d"]) == 300_00  # 300 + 200 - 200
    assert b["deals_registered_30d"]["number"] == 1
    assert b["deals_won_90d"]["number"] == b["deals_lost_90d"]["number"] == 0
    assert b["win_rate"]["number"] is None
    assert money(b["open_pipeline"]) == 200_000
    assert b["days_since_first_sale"]["number"] == 0

    # Rep A's history starts with its first sale, eight days ago.
    days = (await gql.data(REP_SIGNALS, month, as_user=rep_a))["repSignals"]
    assert days[0]["day"] == (today - timedelta(days=8)).isoformat()
    assert by_name(days[0])["activated"]["flag"] is True
    days = (await gql.data(REP_SIGNALS, month, as_user=rep_b))["repSignals"]
    assert [d["day"] for d in days] == [today.isoformat()]

    # The partner's admin and the vendor's staff read both, with the same values.
    readers = [tenant.user(Role.PARTNER_ADMIN), tenant.user(Role.VENDOR_ADMIN),
               tenant.user(Role.FINANCE), tenant.user(Role.CHANNEL_MANAGER)]  # fmt: skip
    for reader in readers:
        for rep, expected in ((rep_a, a), (rep_b, b)):
            variables = {
                **month, "partnerId": gid("Partner", tenant.partners[0].id),
                "repUserId": gid("User", rep.id),
            }  # fmt: skip
            assert today_of(await gql.data(REP_SIGNALS, variables, as_user=reader), clock) == (
                expected
            ), reader.role


async def test_who_may_read_which_rep(
    services: Services, db: Database, clock: OffsetClock, gql: GQL, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    rep_a, rep_b = await two_reps(services, db, clock, tenant)
    today = clock.now().date()
    week = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    mine = gid("Partner", tenant.partners[0].id)

    def of(rep: User, partner: str = mine) -> dict[str, Any]:
        return {**week, "partnerId": partner, "repUserId": gid("User", rep.id)}

    # Null, as for a partner or rep that does not exist: another rep of the same partner,
    # another partner's users, a manager not assigned to the partner, another vendor.
    theirs = gid("Partner", tenant.partners[1].id)
    invisible = [
        (rep_a, of(rep_b)),
        (rep_b, of(rep_a)),
        (tenant.user(Role.PARTNER_ADMIN, 1), of(rep_a)),
        (tenant.user(Role.PARTNER_REP, 1), of(rep_a)),
        (tenant.user(Role.CHANNEL_MANAGER), of(tenant.user(Role.PARTNER_REP, 1), theirs)),
        (other_tenant.user(Role.VENDOR_ADMIN), of(rep_a)),
        (other_tenant.user(Role.PARTNER_ADMIN), of(rep_a)),
        (other_tenant.user(Role.PARTNER_REP), of(rep_a)),
    ]
    for user, variables in invisible:
        data = await gql.data(REP_SIGNALS, variables, as_user=user)
        assert data["repSignals"] is None, (user.role, variables)
    # Null too, for those who may see the partner, when the rep is not one of its users: a
    # rep of another partner or vendor, a vendor user, an id that names no user.
    admin = tenant.user(Role.VENDOR_ADMIN)
    not_its = [
        of(rep_a, theirs),
        of(tenant.user(Role.PARTNER_REP, 1)),
        of(other_tenant.user(Role.PARTNER_REP)),
        of(tenant.user(Role.CHANNEL_MANAGER)),
        {**week, "partnerId": mine, "repUserId": gid("User", uuid.uuid4())},
    ]
    for variables in not_its:
        assert (await gql.data(REP_SIGNALS, variables, as_user=admin))["repSignals"] is None
    # Allowed: the rep itself, its partner's admin, vendor staff who may see the partner.
    for user in (rep_a, tenant.user(Role.PARTNER_ADMIN), admin, tenant.user(Role.CHANNEL_MANAGER)):
        assert (await gql.data(REP_SIGNALS, of(rep_a), as_user=user))["repSignals"], user.role

    # Anonymous callers and display keys (an office screen) are refused.
    assert error_codes(await gql(REP_SIGNALS, of(rep_a))) == ["UNAUTHENTICATED"]
    _, secret = await create_key(gql, tenant, [await create_contest(db, clock, tenant)])
    refused = await gql(REP_SIGNALS, of(rep_a), token=secret)
    assert error_codes(refused) == ["FORBIDDEN"]
    assert refused["data"] is None or refused["data"]["repSignals"] is None

    # Who names no rep: vendor staff and partner admins must.
    payload = await gql(
        REP_SIGNALS, {**week, "partnerId": mine}, as_user=tenant.user(Role.PARTNER_ADMIN)
    )
    assert error_codes(payload) == ["REP_REQUIRED"]
    payload = await gql(REP_SIGNALS, {**week, "repUserId": gid("User", rep_a.id)},
                        as_user=tenant.user(Role.VENDOR_ADMIN))  # fmt: skip
    assert error_codes(payload) == ["PARTNER_REQUIRED"]


async def test_definitions_say_which_signals_exist_per_rep(gql: GQL, tenant: Tenant) -> None:
    for role in (Role.PARTNER_REP, Role.VENDOR_ADMIN):
        data = await gql.data(DEFINITIONS_QUERY, as_user=tenant.user(role))
        per_rep = {d["name"] for d in data["signalDefinitions"] if d["perRep"]}
        assert per_rep == set(REP_NAMES)
    assert all(DEFINITIONS[n].visibility.value == "PARTNER" for n in REP_NAMES)
