"""Looking a serial up before claiming it, and the vendor's claim settings."""

from __future__ import annotations

from typing import Any

from deal_registration.sales.models import SaleClaim, SalesSettings
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant
from tests.support import GQL, count_rows, error_codes

LOOKUP = """query($serial: String!, $saleDate: Date) {
  serialLookup(serial: $serial, saleDate: $saleDate) { serial outcome sku } }"""
LOOKUP_RECORD = """query($serial: String!) {
  serialLookup(serial: $serial) { outcome record { serial status shippedTo { name } } } }"""


async def _outcome(gql: GQL, user: Any, serial: str, sale_date: str | None = None) -> Any:
    data = await gql.data(LOOKUP, {"serial": serial, "saleDate": sale_date}, as_user=user)
    return data["serialLookup"]


async def test_serial_lookup(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    rep0, rep1 = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)
    assert await _outcome(gql, rep0, "sn-000 002") == {
        "serial": "SN000002", "outcome": "VALID", "sku": "NW-WIDGET-1"
    }  # fmt: skip
    assert await _outcome(gql, rep1, "SN000002") == {
        "serial": "SN000002", "outcome": "NOT_SHIPPED_TO_YOUR_CHANNEL", "sku": None
    }  # fmt: skip
    assert (await _outcome(gql, rep0, "NOPE0001"))["outcome"] == "UNKNOWN_SERIAL"
    assert (await _outcome(gql, rep0, "?"))["outcome"] == "UNKNOWN_SERIAL"
    assert (await _outcome(gql, other_tenant.user(Role.PARTNER_REP, 0), "SN000002"))[
        "outcome"
    ] == "UNKNOWN_SERIAL"  # another vendor's registry does not exist for you
    early = (clock.now().date().replace(year=2000)).isoformat()
    assert (await _outcome(gql, rep0, "SN000002", early))["outcome"] == "SOLD_BEFORE_SHIPMENT"

    await gql.data(CREATE, {"input": claim_input(["SN000002"], clock)}, as_user=rep0)
    assert (await _outcome(gql, rep0, "SN000002"))["outcome"] == "ALREADY_CLAIMED"
    assert (await _outcome(gql, rep1, "SN000002"))["outcome"] == "NOT_SHIPPED_TO_YOUR_CHANNEL"

    vendor = await gql.data(
        LOOKUP_RECORD, {"serial": "SN000002"}, as_user=tenant.user(Role.FINANCE)
    )
    assert vendor["serialLookup"]["record"] == {
        "serial": "SN000002", "status": "SHIPPED",
        "shippedTo": {"name": tenant.partners[0].name},
    }  # fmt: skip
    partner = await gql(LOOKUP_RECORD, {"serial": "SN000002"}, as_user=rep0)
    assert error_codes(partner) == ["FORBIDDEN"]
    assert error_codes(await gql(LOOKUP, {"serial": "SN000002"})) == ["UNAUTHENTICATED"]


async def test_a_sale_date_at_the_end_of_the_range_is_judged_not_overflowed(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The claim window was checked as sale date + window days: from 9998-12-31 (the last
    date the Date scalar takes) plus a window of 3650 days (the longest) that is past
    Python's last date, an OverflowError, so
    a lookup of a real serial was an INTERNAL_SERVER_ERROR (found by reading the date
    arithmetic after the fuzz campaigns, which never send a serial that exists). A claim
    refuses a future sale date before it judges serials, and still does; the lookup says so
    (it answered VALID: "the outcome a claim would get now")."""
    await seed_registry(db, clock, tenant, 10)
    window = await gql.data(
        SETTINGS, {"input": {"claimWindowDays": 3650}}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert window["salesSettingsUpdate"]["userErrors"] == []
    rep = tenant.user(Role.PARTNER_REP, 0)
    latest = await gql(LOOKUP, {"serial": "SN000002", "saleDate": "9998-12-31"}, as_user=rep)
    assert latest == {
        "data": {
            "serialLookup": {
                "serial": "SN000002",
                "outcome": "SALE_DATE_IN_FUTURE",
                "sku": "NW-WIDGET-1",
            }
        }
    }
    claim = await gql.data(
        CREATE, {"input": {**claim_input(["SN000002"], clock), "saleDate": "9998-12-31"}},
        as_user=rep,
    )  # fmt: skip
    assert claim["saleClaimCreate"]["saleClaim"] is None
    assert [e["code"] for e in claim["saleClaimCreate"]["userErrors"]] == ["SALE_DATE_IN_FUTURE"]
    assert await count_rows(db, SaleClaim) == 0


SETTINGS = """
mutation($input: SalesSettingsUpdateInput!) {
  salesSettingsUpdate(input: $input) {
    settings { claimWindowDays proofRequired maxSerialsPerClaim
               autoApproveLimit { amount currency } }
    userErrors { field code }
  }
}"""
READ = "{ salesSettings { claimWindowDays proofRequired maxSerialsPerClaim } }"


async def test_settings_defaults_updates_and_roles(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    defaults = await gql.data(READ, as_user=tenant.user(Role.CHANNEL_MANAGER))
    assert defaults["salesSettings"] == {
        "claimWindowDays": 90, "proofRequired": True, "maxSerialsPerClaim": 500
    }  # fmt: skip
    for user in (tenant.user(Role.CHANNEL_MANAGER), tenant.user(Role.PARTNER_ADMIN, 0)):
        denied = await gql(SETTINGS, {"input": {"claimWindowDays": 5}}, as_user=user)
        assert error_codes(denied) == ["FORBIDDEN"]
    assert error_codes(await gql(READ, as_user=tenant.user(Role.PARTNER_ADMIN, 0))) == ["FORBIDDEN"]
    bad = await gql.data(
        SETTINGS,
        {"input": {"claimWindowDays": 0, "maxSerialsPerClaim": 501,
                   "autoApproveLimit": {"amount": "-1.00", "currency": "USD"}}},
        as_user=admin,
    )  # fmt: skip
    assert bad["salesSettingsUpdate"]["userErrors"] == [
        {"field": "claimWindowDays", "code": "INVALID_SETTING"},
        {"field": "autoApproveLimit.amount", "code": "INVALID_SETTING"},
        {"field": "maxSerialsPerClaim", "code": "INVALID_SETTING"},
    ]
    assert await count_rows(db, SalesSettings) == 0
    done = await gql.data(
        SETTINGS,
        {"input": {"claimWindowDays": 30, "autoApproveLimit": {"amount": "250.00",
                                                                "currency": "eur"}}},
        as_user=admin,
    )  # fmt: skip
    assert done["salesSettingsUpdate"]["settings"] == {
        "claimWindowDays": 30, "proofRequired": True, "maxSerialsPerClaim": 500,
        "autoApproveLimit": {"amount": "250.00", "currency": "EUR"},
    }  # fmt: skip
    # Another vendor keeps its defaults.
    theirs = await gql.data(READ, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert theirs["salesSettings"]["claimWindowDays"] == 90
