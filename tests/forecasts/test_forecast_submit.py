"""Partner forecasts through GraphQL (issue 14, item 3): a partner admin submits and revises
its quarterly forecast per product line until the quarter starts, each revision kept; the
draft pre-fills it from open deals by stage probability; bad input is coded and changes
nothing; other roles, partners and vendors are refused or see nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from deal_registration.events import Line
from deal_registration.registrations.models import DealStatus
from forecasts.models import ForecastRevision, PartnerForecast
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Product, Tenant, add_products, approve_sale, dispatch, gid
from tests.forecasts.scenarios import SUBMIT, add_deal, line, next_quarter, usd
from tests.support import GQL, error_codes

CATALOGUE = (
    Product("NW-ROUTER-X1", 100_000, category="Routing"),
    Product("NW-SWITCH-48", 300_000, category="Switching"),
    Product("NW-AP-6E", 50_000),
    Product("NW-CARE-1Y", 120_000, category="Services", subscription_term_months=12),
)
DRAFT = """query($q: String!) { forecastDraft(quarter: $q) { quarter currency renewalsIncluded
  lines { productLine commit { amountMinor } bestCase { amountMinor } deals renewals } } }"""
FORECASTS = """query($q: String, $p: ID) { forecasts(quarter: $q, partnerId: $p) {
  totalCount edges { node { id quarter partnerId commit { amountMinor } revision } } } }"""


async def counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        forecasts = await session.scalar(select(func.count()).select_from(PartnerForecast))
        revisions = await session.scalar(select(func.count()).select_from(ForecastRevision))
        return int(forecasts or 0), int(revisions or 0)


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, tenant, CATALOGUE)


async def submit(gql: GQL, tenant: Tenant, partner: int = 0, **input: Any) -> dict[str, Any]:
    data = await gql(SUBMIT, {"input": input}, as_user=tenant.user(Role.PARTNER_ADMIN, partner))
    assert "errors" not in data, data
    result: dict[str, Any] = data["data"]["forecastSubmit"]
    return result


@pytest.mark.usefixtures("catalogue")
async def test_a_partner_admin_submits_and_revises_until_the_quarter_starts(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database
) -> None:
    q = next_quarter(clock).key
    first = await submit(
        gql, tenant, quarter=q, lines=[line("routing", "1000.00", "1500.00"),
                                       line("Switching", "500.00", "500.00")],
        note="first cut",
    )  # fmt: skip
    assert first["userErrors"] == []
    forecast = first["forecast"]
    assert forecast["revision"] == 1
    assert forecast["commit"] == {"amountMinor": 150_000, "currency": "USD"}
    assert forecast["bestCase"] == {"amountMinor": 200_000}
    assert [ln["productLine"] for ln in forecast["lines"]] == ["Routing", "Switching"]

    clock.advance(timedelta(days=1))
    second = await submit(gql, tenant, quarter=q, lines=[line("Other", "20.00", "30.00")])
    assert second["userErrors"] == []
    revised = second["forecast"]
    assert revised["id"] == forecast["id"]
    assert revised["revision"] == 2
    assert revised["commit"]["amountMinor"] == 2_000
    assert [(r["number"], r["commit"]["amountMinor"], r["note"]) for r in revised["revisions"]] == [
        (1, 150_000, "first cut"), (2, 2_000, ""),
    ]  # fmt: skip
    assert await counts(db) == (1, 2)

    # The quarter starts: no more revisions, and nothing changes.
    clock.advance(next_quarter(clock).starts_at - clock.now() + timedelta(seconds=1))
    late = await submit(gql, tenant, quarter=q, lines=[line("Other", "1.00", "1.00")])
    assert late["userErrors"] == [{"field": "quarter", "code": "QUARTER_STARTED"}]
    clock.advance(timedelta(days=95))
    closed = await submit(gql, tenant, quarter=q, lines=[line("Other", "1.00", "1.00")])
    assert closed["userErrors"] == [{"field": "quarter", "code": "QUARTER_CLOSED"}]
    assert await counts(db) == (1, 2)


R = "Routing"
EUR_COMMIT = {"productLine": R, "commit": {"amount": "1.00", "currency": "EUR"},
              "bestCase": usd("1.00")}  # fmt: skip
BAD_INPUT: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"quarter": "2027Q1"}, [("quarter", "INVALID_QUARTER")]),
    ({"quarter": "٢٠٢٧-Q1"}, [("quarter", "INVALID_QUARTER")]),  # ASCII digits only
    ({"lines": [line(R, "-1.00", "5.00")]}, [("lines.0.commit.amount", "NEGATIVE_AMOUNT")]),
    ({"lines": [line(R, "1.001", "5.00")]}, [("lines.0.commit.amount", "INVALID_AMOUNT")]),
    ({"lines": [line(R, "5.00", "1.00")]},
     [("lines.0.bestCase.amount", "BEST_CASE_BELOW_COMMIT")]),
    ({"lines": [line("Storage", "1.00", "1.00")]},
     [("lines.0.productLine", "UNKNOWN_PRODUCT_LINE")]),
    ({"lines": [line(R, "1.00", "1.00"), line("ROUTING", "1.00", "1.00")]},
     [("lines.1.productLine", "DUPLICATE_PRODUCT_LINE")]),
    ({"lines": [EUR_COMMIT]}, [("lines.0.commit.currency", "CURRENCY_MISMATCH")]),
    ({"currency": "XXY"}, [("currency", "INVALID_CURRENCY")]),
    ({"lines": []}, [("lines", "NO_LINES")]),
]  # fmt: skip


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(("input", "errors"), BAD_INPUT)
async def test_bad_input_is_coded_and_changes_nothing(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database,
    input: dict[str, Any], errors: list[tuple[str, str]],
) -> None:  # fmt: skip
    values = {"quarter": next_quarter(clock).key, "lines": [line("Routing", "1.00", "2.00")]}
    result = await submit(gql, tenant, **{**values, **input})
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == errors
    assert result["forecast"] is None
    assert await counts(db) == (0, 0)


@pytest.mark.usefixtures("catalogue")
async def test_the_draft_prefills_from_open_deals_and_renewals_due(
    gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database, services: Services
) -> None:
    q = next_quarter(clock)
    inside = q.starts_at.date() + timedelta(days=10)
    # A yearly subscription sold a year before the quarter's 10th day comes up for renewal
    # in it (the subscriptions domain starts it from the sale); one of partner 1 does not
    # count.
    sold = q.starts_at + timedelta(days=10) - timedelta(days=365)
    care = [Line("NW-CARE-1Y", 1, 1_200_00)]
    await approve_sale(db, clock, tenant, amount=1_200_00, lines=care, sold_at=sold)
    await approve_sale(db, clock, tenant, partner=1, amount=1_200_00, lines=care, sold_at=sold)
    while await dispatch(services):
        pass
    # 1 router (1,000.00) + 1 switch (3,000.00): a 10,000.00 deal splits 2,500 / 7,500.
    await add_deal(db, clock, tenant, value=10_000_00, closes=inside,
                   lines=[("NW-ROUTER-X1", 1), ("NW-SWITCH-48", 1)])  # fmt: skip
    await add_deal(db, clock, tenant, status=DealStatus.SUBMITTED, value=2_000_00, closes=inside)
    # Not in the draft: another quarter, a lost deal, a draft, another partner's deal.
    await add_deal(db, clock, tenant, value=9_999_00, closes=q.ends_at.date())
    await add_deal(db, clock, tenant, status=DealStatus.LOST, value=9_999_00, closes=inside)
    await add_deal(db, clock, tenant, status=DealStatus.DRAFT, value=9_999_00, closes=inside)
    await add_deal(db, clock, tenant, partner=1, value=9_999_00, closes=inside)

    data = await gql.data(DRAFT, {"q": q.key}, as_user=tenant.user(Role.PARTNER_ADMIN))
    draft = data["forecastDraft"]
    assert draft["renewalsIncluded"] is True
    services_line = next(ln for ln in draft["lines"] if ln["productLine"] == "Services")
    # The renewal at its probability (the subscriptions domain's model), in full as best case.
    assert services_line["renewals"] == 1
    assert services_line["deals"] == 0
    assert services_line["bestCase"] == {"amountMinor": 120_000}
    assert 0 < services_line["commit"]["amountMinor"] < 120_000
    assert [ln for ln in draft["lines"] if ln["productLine"] != "Services"] == [
        # SUBMITTED: 10 % of 2,000.00; no product lines: Other.
        {"productLine": "Other", "commit": {"amountMinor": 20_000},
         "bestCase": {"amountMinor": 200_000}, "deals": 1, "renewals": 0},
        # APPROVED: 60 %.
        {"productLine": "Routing", "commit": {"amountMinor": 150_000},
         "bestCase": {"amountMinor": 250_000}, "deals": 1, "renewals": 0},
        {"productLine": "Switching", "commit": {"amountMinor": 450_000},
         "bestCase": {"amountMinor": 750_000}, "deals": 1, "renewals": 0},
    ]  # fmt: skip

    # Submitting with prefill keeps the lines given and fills the others from the draft.
    result = await submit(gql, tenant, quarter=q.key, prefill=True,
                          lines=[line("Routing", "100.00", "200.00")])  # fmt: skip
    assert result["userErrors"] == []
    lines = {ln["productLine"]: ln["commit"]["amountMinor"] for ln in result["forecast"]["lines"]}
    assert lines == {
        "Other": 20_000, "Routing": 10_000, "Services": services_line["commit"]["amountMinor"],
        "Switching": 450_000,
    }  # fmt: skip
    assert result["forecast"]["revisions"][0]["prefilled"] is True


@pytest.mark.usefixtures("catalogue")
async def test_who_may_submit_and_read(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, clock: OffsetClock, db: Database
) -> None:
    q = next_quarter(clock).key
    input = {"quarter": q, "lines": [line("Routing", "1.00", "2.00")]}
    anonymous = await gql(SUBMIT, {"input": input})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    for role in (Role.PARTNER_REP, Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE):
        refused = await gql(SUBMIT, {"input": input}, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"], role
        draft = await gql(DRAFT, {"q": q}, as_user=tenant.user(role))
        assert error_codes(draft) == ["FORBIDDEN"], role
    assert await counts(db) == (0, 0)

    mine = (await submit(gql, tenant, **input))["forecast"]
    theirs = (await submit(gql, tenant, partner=1, **input))["forecast"]
    assert mine["id"] != theirs["id"]

    async def visible(user: Any, **variables: Any) -> list[str]:
        data = await gql.data(FORECASTS, variables, as_user=user)
        return sorted(e["node"]["id"] for e in data["forecasts"]["edges"])

    # A partner admin reads its own (not the other partner's, not even by id or filter).
    assert await visible(tenant.user(Role.PARTNER_ADMIN)) == [mine["id"]]
    assert await visible(tenant.user(Role.PARTNER_ADMIN), p=gid(tenant.partners[1])) == []
    node = "query($id: ID!) { node(id: $id) { id } }"
    other = await gql.data(node, {"id": theirs["id"]}, as_user=tenant.user(Role.PARTNER_ADMIN))
    assert other["node"] is None
    # Reps are refused; the channel manager reads its assigned partner's; admins and
    # finance all.
    rep = await gql(FORECASTS, {}, as_user=tenant.user(Role.PARTNER_REP))
    assert error_codes(rep) == ["FORBIDDEN"]
    assert await visible(tenant.user(Role.CHANNEL_MANAGER)) == [mine["id"]]
    assert await visible(tenant.user(Role.FINANCE)) == sorted([mine["id"], theirs["id"]])
    assert await visible(tenant.user(Role.VENDOR_ADMIN), q=q) == sorted([mine["id"], theirs["id"]])
    # Another vendor sees nothing.
    assert await visible(other_tenant.user(Role.VENDOR_ADMIN)) == []
    gone = await gql.data(node, {"id": mine["id"]}, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert gone["node"] is None
    bad = await gql(FORECASTS, {"q": "Q1"}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(bad) == ["INVALID_QUARTER"]
