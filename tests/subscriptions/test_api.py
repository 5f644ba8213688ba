"""Subscriptions through GraphQL: who may report billing changes and who sees what (the
subscriptions, renewals due with their probability, net revenue retention); every bad
input coded, and a refused or bad call changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from subscriptions.models import Subscription, SubscriptionChange
from tests.factories import Tenant, gid
from tests.subscriptions import scenarios as ss
from tests.support import GQL, count_rows, error_codes


@pytest.fixture
async def world(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, services: Services
) -> dict[str, Subscription]:
    clock.freeze(ss.T0)
    await ss.seed(db, clock, tenant)
    await ss.seed(db, clock, other_tenant)
    _, mine = await ss.first_sale(db, clock, tenant, services)
    _, theirs = await ss.first_sale(db, clock, tenant, services, partner=1, customer="Globex AG")
    _, foreign = await ss.first_sale(db, clock, other_tenant, services, customer="Umbrella")
    await ss.settle(services)
    return {"mine": mine, "theirs": theirs, "foreign": foreign}


def sid(sub: Subscription) -> str:
    return gid("CustomerSubscription", sub.id)


async def snapshot(db: Database, sub: Subscription) -> tuple[Any, ...]:
    async with db.session() as session:
        row = await session.get(Subscription, sub.id)
    assert row is not None
    return (row.amount_minor, row.renewals, row.ends_at, row.status, row.cancelled_at,
            await count_rows(db, SubscriptionChange))  # fmt: skip


async def test_billing_changes_are_for_finance_and_vendor_admins_of_the_vendor(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant, world: dict[str, Subscription]
) -> None:
    mine = world["mine"]
    before = await snapshot(db, mine)
    variables = {"input": {"subscriptionId": sid(mine), "externalId": "inv-1"}}
    assert error_codes(await gql(ss.RENEW, variables)) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(ss.RENEW, variables, as_user=tenant.user(role))) == [
            "FORBIDDEN"
        ], role
    # Another vendor's finance: answered as if the subscription did not exist.
    other = await gql.data(ss.RENEW, variables, as_user=other_tenant.user(Role.FINANCE))
    assert other["subscriptionRenew"]["userErrors"] == [
        {"field": "id", "code": "NOT_FOUND", "message": "No such subscription."}
    ]
    assert await snapshot(db, mine) == before
    for role, key in ((Role.FINANCE, "inv-1"), (Role.VENDOR_ADMIN, "inv-2")):
        data = await gql.data(
            ss.RENEW, {"input": {"subscriptionId": sid(mine), "externalId": key}},
            as_user=tenant.user(role),
        )  # fmt: skip
        assert data["subscriptionRenew"]["userErrors"] == []
    assert data["subscriptionRenew"]["subscription"]["renewals"] == 2
    # The same billing id again: the same answer, nothing changed.
    again = await gql.data(ss.RENEW, variables, as_user=tenant.user(Role.FINANCE))
    assert again["subscriptionRenew"]["subscription"]["renewals"] == 2


@pytest.mark.parametrize(
    ("mutation", "fields", "code", "field"),
    [
        ("RENEW", {"subscriptionId": "bm90LWFuLWlk"}, "NOT_FOUND", "id"),
        ("CANCEL", {"effectiveAt": "2026-01-04T00:00:00+00:00"}, "BEFORE_START", "effectiveAt"),
        ("EXPAND", {"amount": {"amount": "1500.00", "currency": "EUR"}}, "CURRENCY_MISMATCH",
         "amount.currency"),
        ("EXPAND", {"amount": {"amount": "-1.00", "currency": "USD"}}, "NEGATIVE_AMOUNT",
         "amount.amount"),
        ("RENEW", {"amount": {"amount": "10.00", "currency": "XXQ"}}, "INVALID_CURRENCY",
         "amount.currency"),
        ("EXPAND", {"amount": {"amount": "ten", "currency": "USD"}}, "INVALID_AMOUNT",
         "amount.amount"),
        ("EXPAND", {"amount": {"amount": "100.00", "currency": "USD"}}, "NOT_AN_EXPANSION",
         "amount.amount"),
        ("CONTRACT", {"amount": {"amount": "5000.00", "currency": "USD"}},
         "NOT_A_CONTRACTION", "amount.amount"),
        ("RENEW", {"termMonths": 0}, "INVALID_TERM", "termMonths"),
        ("RENEW", {"externalId": " "}, "REQUIRED", "externalId"),
    ],
)  # fmt: skip
async def test_bad_input_is_coded_and_changes_nothing(
    gql: GQL, db: Database, tenant: Tenant, world: dict[str, Subscription],
    mutation: str, fields: dict[str, Any], code: str, field: str,
) -> None:  # fmt: skip
    mine = world["mine"]
    before = await snapshot(db, mine)
    name = {
        "RENEW": "subscriptionRenew", "CANCEL": "subscriptionCancel",
        "EXPAND": "subscriptionExpand", "CONTRACT": "subscriptionContract",
    }[mutation]  # fmt: skip
    variables = {"input": {"subscriptionId": sid(mine), "externalId": "bad-1", **fields}}
    data = await gql.data(getattr(ss, mutation), variables, as_user=tenant.user(Role.FINANCE))
    assert [(e["code"], e["field"]) for e in data[name]["userErrors"]] == [(code, field)]
    assert data[name]["subscription"] is None
    assert await snapshot(db, mine) == before


async def test_each_role_sees_its_own_subscriptions(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, world: dict[str, Subscription]
) -> None:
    def ids(data: dict[str, Any]) -> set[str]:
        return {e["node"]["id"] for e in data["subscriptions"]["edges"]}

    mine, theirs = sid(world["mine"]), sid(world["theirs"])
    assert error_codes(await gql(ss.SUBSCRIPTIONS)) == ["UNAUTHENTICATED"]
    seen = {
        role: ids(await gql.data(ss.SUBSCRIPTIONS, as_user=tenant.user(role)))
        for role in (Role.VENDOR_ADMIN, Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN,
                     Role.PARTNER_REP)
    }  # fmt: skip
    assert seen == {
        Role.VENDOR_ADMIN: {mine, theirs}, Role.FINANCE: {mine, theirs},
        Role.CHANNEL_MANAGER: {mine},  # assigned to partner 0 only
        Role.PARTNER_ADMIN: {mine},
        Role.PARTNER_REP: set(),  # the sales were not its own
    }  # fmt: skip
    other_admin = tenant.user(Role.PARTNER_ADMIN, 1)
    assert ids(await gql.data(ss.SUBSCRIPTIONS, as_user=other_admin)) == {theirs}
    assert ids(await gql.data(ss.SUBSCRIPTIONS, as_user=other_tenant.user(Role.VENDOR_ADMIN))) == {
        sid(world["foreign"])
    }
    node = "query($id: ID!) { node(id: $id) { ... on CustomerSubscription { sku } } }"
    assert (await gql.data(node, {"id": theirs}, as_user=tenant.user(Role.PARTNER_ADMIN)))[
        "node"
    ] is None
    assert (await gql.data(node, {"id": mine}, as_user=tenant.user(Role.PARTNER_ADMIN)))[
        "node"
    ] == {"sku": "NW-CLOUD-1Y"}


async def test_renewals_due_by_window_with_an_explained_probability(
    gql: GQL, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    world: dict[str, Subscription],
) -> None:  # fmt: skip
    partner_admin = tenant.user(Role.PARTNER_ADMIN)
    # Renew partner 0's once (its history: 1 renewed of 1) and contract it.
    finance = tenant.user(Role.FINANCE)
    mine = sid(world["mine"])
    await gql.data(
        ss.RENEW, {"input": {"subscriptionId": mine, "externalId": "r1"}}, as_user=finance
    )
    await gql.data(
        ss.CONTRACT,
        {"input": {"subscriptionId": mine, "externalId": "c1",
                   "amount": {"amount": "1000.00", "currency": "USD"}}},
        as_user=finance,
    )  # fmt: skip
    clock.advance(timedelta(days=320))  # partner 1's ends in 45 days, partner 0's in 410
    assert error_codes(await gql(ss.RENEWALS_DUE, {"days": 30})) == ["UNAUTHENTICATED"]
    bad = await gql(ss.RENEWALS_DUE, {"days": 45}, as_user=partner_admin)
    assert error_codes(bad) == ["INVALID_WINDOW"]
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert (await gql.data(ss.RENEWALS_DUE, {"days": 30}, as_user=admin))["renewalsDue"] == []
    due = (await gql.data(ss.RENEWALS_DUE, {"days": 60}, as_user=admin))["renewalsDue"]
    assert [d["subscription"]["id"] for d in due] == [sid(world["theirs"])]
    # Partner 1 has no history; the program's is 1 renewed, 0 not: prior (1+1)/(2+1) = 2/3,
    # so partner 1 starts at 2/3 = 66.67%.
    assert due[0]["baseProbabilityBp"] == 6_667
    assert due[0]["probabilityBp"] == 6_667
    assert due[0]["expectedAmount"]["amountMinor"] == 80_004  # 1,200.00 x 66.67%
    assert "renewed 0 of 0 times" in due[0]["factors"][0]["explanation"]
    # Partner 0 sees none of partner 1's; the other vendor sees nothing of this one.
    assert (await gql.data(ss.RENEWALS_DUE, {"days": 90}, as_user=partner_admin))[
        "renewalsDue"
    ] == []
    other = other_tenant.user(Role.VENDOR_ADMIN)
    foreign_due = (await gql.data(ss.RENEWALS_DUE, {"days": 90}, as_user=other))["renewalsDue"]
    assert [d["subscription"]["id"] for d in foreign_due] == [sid(world["foreign"])]
    # A year later partner 0's is due: its contraction lowers, its renewal raises the odds.
    clock.advance(timedelta(days=380))
    own = (await gql.data(ss.RENEWALS_DUE, {"days": 30}, as_user=partner_admin))["renewalsDue"]
    assert [d["subscription"]["id"] for d in own] == [mine]
    assert [f["code"] for f in own[0]["factors"]] == ["TRACK_RECORD", "CONTRACTION", "TENURE"]
    assert own[0]["probabilityBp"] < own[0]["baseProbabilityBp"]


async def test_net_revenue_retention_of_the_partners_accounts(
    gql: GQL, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    world: dict[str, Subscription],
) -> None:  # fmt: skip
    finance = tenant.user(Role.FINANCE)
    clock.advance(timedelta(days=100))
    await gql.data(
        ss.EXPAND,
        {"input": {"subscriptionId": sid(world["mine"]), "externalId": "x1",
                   "amount": {"amount": "1500.00", "currency": "USD"}}},
        as_user=finance,
    )  # fmt: skip
    await gql.data(
        ss.CANCEL, {"input": {"subscriptionId": sid(world["theirs"]), "externalId": "c1"}},
        as_user=finance,
    )  # fmt: skip
    clock.advance(timedelta(days=300))  # both started more than 12 months ago
    await gql.data(
        ss.RENEW, {"input": {"subscriptionId": sid(world["mine"]), "externalId": "r1"}},
        as_user=finance,
    )  # fmt: skip
    assert error_codes(await gql(ss.NRR)) == ["UNAUTHENTICATED"]
    own = (await gql.data(ss.NRR, as_user=tenant.user(Role.PARTNER_ADMIN)))["netRevenueRetention"]
    assert own == [{
        "currency": "USD", "accounts": 1, "subscriptions": 1,
        "startingArr": {"amountMinor": 120_000}, "expansion": {"amountMinor": 30_000},
        "contraction": {"amountMinor": 0}, "churn": {"amountMinor": 0},
        "endingArr": {"amountMinor": 150_000}, "nrrBp": 12_500,
        "explanation": own[0]["explanation"],
    }]  # fmt: skip
    assert "125.0% net revenue retention" in own[0]["explanation"]
    vendor = (await gql.data(ss.NRR, as_user=tenant.user(Role.VENDOR_ADMIN)))["netRevenueRetention"]
    # 2,400.00 at the start; 1,500.00 now: +300.00 expansion, -1,200.00 churn: 62.5%.
    assert (vendor[0]["startingArr"]["amountMinor"], vendor[0]["churn"]["amountMinor"],
            vendor[0]["nrrBp"]) == (240_000, 120_000, 6_250)  # fmt: skip
    other = other_tenant.user(Role.PARTNER_ADMIN)
    foreign = (await gql.data(ss.NRR, as_user=other))["netRevenueRetention"]
    assert [r["startingArr"]["amountMinor"] for r in foreign] == [120_000]
