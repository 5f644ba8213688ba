"""Currency, country and time-zone codes are checked against the real lists (ISO 4217,
ISO 3166-1, IANA) on every input that takes one: a userError in a mutation, a coded error
in a query, never an internal error; amounts follow the currency's ISO 4217 minor units."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import submit_input
from tests.factories import Tenant, add_products, gid
from tests.support import GQL


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


def contest(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "name": "Spring sprint",
        "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=7)).isoformat(),
        **extra,
    }


def claim(clock: OffsetClock, currency: str) -> dict[str, Any]:
    return {
        "serials": ["SN-000001"], "customerName": "Acme", "invoiceNumber": "INV-1",
        "saleDate": clock.now().date().isoformat(),
        "amount": {"amount": "100.00", "currency": currency},
    }  # fmt: skip


def program(currency: str) -> dict[str, Any]:
    return {"name": "Rewards", "currency": currency, "rules": {"baseRates": [{"rateBp": 800}]}}


def money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


# (case, mutation, input type, role, input(tenant, clock), field, code)
MUTATION_CASES: list[tuple[str, str, str, Role, Any, str, str]] = [
    ("registration country ZZ", "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     Role.PARTNER_REP,
     lambda t, c: submit_input(c, customer={"name": "Acme", "domain": "acme.com",
                                            "country": "ZZ"}),
     "customer.country", "INVALID_COUNTRY"),
    ("registration country UK", "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     Role.PARTNER_REP,
     lambda t, c: submit_input(c, customer={"name": "Acme", "domain": "acme.com",
                                            "country": "UK"}),
     "customer.country", "INVALID_COUNTRY"),
    ("registration currency ABC", "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     Role.PARTNER_REP, lambda t, c: submit_input(c, estimatedValue=money("10.00", "ABC")),
     "estimatedValue.currency", "INVALID_CURRENCY"),
    ("registration currency XXX", "dealRegistrationSubmit", "DealRegistrationSubmitInput",
     Role.PARTNER_REP, lambda t, c: submit_input(c, estimatedValue=money("10.00", "XXX")),
     "estimatedValue.currency", "INVALID_CURRENCY"),
    ("deal program currency", "dealProgramSettingsUpdate", "DealProgramSettingsUpdateInput",
     Role.VENDOR_ADMIN, lambda t, c: {"bigDealThreshold": money("10.00", "ABC")},
     "currency", "INVALID_CURRENCY"),
    ("product currency", "productUpsert", "ProductUpsertInput", Role.VENDOR_ADMIN,
     lambda t, c: {"sku": "NW-X", "name": "X", "listPrice": money("10.00", "ABC")},
     "listPrice.currency", "INVALID_CURRENCY"),
    ("product XOF has no cents", "productUpsert", "ProductUpsertInput", Role.VENDOR_ADMIN,
     lambda t, c: {"sku": "NW-X", "name": "X", "listPrice": money("10.50", "XOF")},
     "listPrice.amount", "INVALID_PRICE"),
    ("claim currency", "saleClaimCreate", "SaleClaimCreateInput", Role.PARTNER_REP,
     lambda t, c: claim(c, "ABC"), "amount.currency", "INVALID_CURRENCY"),
    ("auto-approve currency", "salesSettingsUpdate", "SalesSettingsUpdateInput",
     Role.VENDOR_ADMIN, lambda t, c: {"autoApproveLimit": money("10.00", "ABC")},
     "autoApproveLimit.currency", "INVALID_SETTING"),
    ("adjustment currency", "earningAdjustmentCreate", "EarningAdjustmentCreateInput",
     Role.FINANCE,
     lambda t, c: {"partnerId": gid(t.partners[0]), "amount": money("-12.50", "ABC"), "note": "fix",
                   "idempotencyKey": "adj-1"},
     "amount.currency", "INVALID_CURRENCY"),
    ("program currency", "earningProgramCreate", "EarningProgramCreateInput",
     Role.VENDOR_ADMIN, lambda t, c: program("ABC"), "currency", "INVALID_CURRENCY"),
    ("contest currency", "contestCreate", "ContestCreateInput", Role.VENDOR_ADMIN,
     lambda t, c: contest(c, currency="ABC"), "currency", "INVALID_CURRENCY"),
    ("contest zone localtime", "contestCreate", "ContestCreateInput", Role.VENDOR_ADMIN,
     lambda t, c: contest(c, timeZone="localtime"), "timeZone", "INVALID_TIME_ZONE"),
    ("contest zone Factory", "contestCreate", "ContestCreateInput", Role.VENDOR_ADMIN,
     lambda t, c: contest(c, timeZone="Factory"), "timeZone", "INVALID_TIME_ZONE"),
    ("contest zone path", "contestCreate", "ContestCreateInput", Role.VENDOR_ADMIN,
     lambda t, c: contest(c, timeZone="posix/Europe/Berlin"), "timeZone", "INVALID_TIME_ZONE"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "input_type", "role", "make", "field", "code"),
    [case[1:] for case in MUTATION_CASES],
    ids=[case[0] for case in MUTATION_CASES],
)
async def test_a_code_not_on_the_list_is_a_user_error(
    gql: GQL,
    clock: OffsetClock,
    catalogue: Tenant,
    mutation: str,
    input_type: str,
    role: Role,
    make: Any,
    field: str,
    code: str,
) -> None:
    document = (
        f"mutation($input: {input_type}!) {{ {mutation}(input: $input) "
        "{ userErrors { field code } } }"
    )
    payload = await gql(document, {"input": make(catalogue, clock)}, as_user=catalogue.user(role))
    assert "errors" not in payload, payload
    assert {"field": field, "code": code} in payload["data"][mutation]["userErrors"]


async def test_an_amount_beyond_32_bits_is_stored_and_read_back(
    gql: GQL, catalogue: Tenant
) -> None:
    """100,000,000.00 USD: within what the API accepts, beyond a 32-bit column (PostgreSQL
    refused it with a database error, an INTERNAL_SERVER_ERROR to the caller)."""
    upsert = """mutation($input: ProductUpsertInput!) { productUpsert(input: $input) {
      product { listPrice { amountMinor amount } } userErrors { field code } } }"""
    variables = {"input": {"sku": "NW-BIG", "name": "Core router",
                           "listPrice": money("100000000.00", "USD")}}  # fmt: skip
    data = await gql.data(upsert, variables, as_user=catalogue.user(Role.VENDOR_ADMIN))
    assert data["productUpsert"] == {
        "product": {"listPrice": {"amountMinor": 10_000_000_000, "amount": "100000000.00"}},
        "userErrors": [],
    }


async def test_real_codes_and_their_minor_units_are_accepted(
    gql: GQL, clock: OffsetClock, catalogue: Tenant
) -> None:
    admin = catalogue.user(Role.VENDOR_ADMIN)
    upsert = """mutation($input: ProductUpsertInput!) { productUpsert(input: $input) {
      product { listPrice { amountMinor currency } } userErrors { field code } } }"""
    for amount, currency, minor in (("1.234", "IQD", 1234), ("500", "XOF", 500)):
        variables = {"input": {"sku": f"NW-{currency}", "name": "X",
                               "listPrice": money(amount, currency)}}  # fmt: skip
        data = await gql.data(upsert, variables, as_user=admin)
        assert data["productUpsert"] == {
            "product": {"listPrice": {"amountMinor": minor, "currency": currency}},
            "userErrors": [],
        }
    create = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
      contest { timeZone currency } userErrors { field code } } }"""
    variables = {"input": contest(clock, timeZone="America/Argentina/Buenos_Aires",
                                  currency="jpy")}  # fmt: skip
    data = await gql.data(create, variables, as_user=admin)
    assert data["contestCreate"] == {
        "contest": {"timeZone": "America/Argentina/Buenos_Aires", "currency": "JPY"},
        "userErrors": [],
    }
    submitted = await gql.data(
        "mutation($input: DealRegistrationSubmitInput!) { dealRegistrationSubmit(input: $input)"
        " { dealRegistration { customer { country } } userErrors { code } } }",
        {"input": submit_input(clock, customer={"name": "Acme", "domain": "acme.com",
                                                "country": "de"})},
        as_user=catalogue.user(Role.PARTNER_REP),
    )  # fmt: skip
    assert submitted["dealRegistrationSubmit"] == {
        "dealRegistration": {"customer": {"country": "DE"}}, "userErrors": []
    }  # fmt: skip


QUERY_CASES = [
    ("earnings x", '{ earnings(currency: "x") { earned { amountMinor } } }', Role.PARTNER_ADMIN),
    ("earnings ABC", '{ earnings(partnerId: "PARTNER", currency: "ABC") { currency } }',
     Role.VENDOR_ADMIN),
    ("metrics empty", '{ earningsMetrics(currency: "") { currency } }', Role.VENDOR_ADMIN),
    ("metrics ABC", '{ earningsMetrics(currency: "ABC") { currency } }', Role.FINANCE),
    ("forecast ABC",
     '{ earningsForecast(additionalRevenue: {amount: "10.00", currency: "ABC"}) '
     "{ projectedEarning { amountMinor } } }", Role.PARTNER_ADMIN),
]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "role"), [case[1:] for case in QUERY_CASES], ids=[case[0] for case in QUERY_CASES]
)
async def test_a_query_with_a_code_not_on_the_list_is_a_coded_error(
    gql: GQL, tenant: Tenant, query: str, role: Role
) -> None:
    payload = await gql(
        query.replace("PARTNER", gid(tenant.partners[0])), as_user=tenant.user(role)
    )
    [error] = payload["errors"]
    assert error["extensions"]["code"] == "INVALID_CURRENCY", error
    assert "ISO 4217" in error["message"]
