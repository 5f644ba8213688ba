"""A DateTime or Date input is a UTC instant (or date) every layer can use: one at the edge
of Python's range with an offset, or beyond year 9998, is refused before the operation
runs with a coded error naming the variable; one without an offset is read as UTC. Both
failed with an INTERNAL_SERVER_ERROR (OverflowError converting to UTC; the database layer
refusing a naive value), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from partners.roles import Role
from schema.instants import instant_of, parse_instant
from tests.factories import Tenant
from tests.support import GQL

MARK = """mutation($before: DateTime!) { notificationMarkAllRead(input: {before: $before}) {
  marked userErrors { field code } } }"""
LOOKUP = 'query($day: Date!) { serialLookup(serial: "NONE-1", saleDate: $day) { __typename } }'


@pytest.mark.parametrize(
    "instant",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "9999-06-01T00:00:00Z"],
)
async def test_an_instant_out_of_range_is_refused_with_a_code(
    gql: GQL, tenant: Tenant, instant: str
) -> None:
    refused = await gql(MARK, {"before": instant}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert refused.get("data") is None
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
    assert "$before" in error["message"]


async def test_an_instant_without_an_offset_is_read_as_utc(gql: GQL, tenant: Tenant) -> None:
    user = tenant.user(Role.VENDOR_ADMIN)
    for before in ("2027-01-15T00:00:00", "0001-01-01T00:00:00+00:00"):
        done = await gql.data(MARK, {"before": before}, as_user=user)
        assert done["notificationMarkAllRead"]["userErrors"] == []


async def test_a_date_beyond_year_9998_is_refused_with_a_code(gql: GQL, tenant: Tenant) -> None:
    rep = tenant.user(Role.PARTNER_REP)
    refused = await gql(LOOKUP, {"day": "9999-12-31"}, as_user=rep)
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    assert (await gql.data(LOOKUP, {"day": "2027-01-15"}, as_user=rep))["serialLookup"]


@pytest.mark.parametrize(
    ("before", "utc"),
    [
        # What the DateTime scalar accepted before it judged the range (strawberry's
        # parser, dateutil's isoparse) stays accepted: RFC 3339's lower-case "t" and "z",
        # ISO 8601's end of day, reduced precision and ordinal dates.
        ("2027-01-15t09:30:00z", "2027-01-15T09:30:00+00:00"),
        ("2027-01-15T24:00:00Z", "2027-01-16T00:00:00+00:00"),
        ("2027-01", "2027-01-01T00:00:00+00:00"),
        ("2027-015T09:00Z", "2027-01-15T09:00:00+00:00"),
    ],
)
def test_an_instant_accepted_before_is_accepted_still(before: str, utc: str) -> None:
    assert parse_instant(before).isoformat() == utc


async def test_an_end_of_day_at_the_edge_is_refused_with_a_code(gql: GQL, tenant: Tenant) -> None:
    refused = await gql(
        MARK, {"before": "9999-12-31T24:00:00Z"}, as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert refused.get("data") is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize(
    ("before", "utc"),
    [
        # What datetime.fromisoformat accepted (the CSV export's since/until, the CLI's
        # --since/--until, and this scalar just before): an offset with seconds, a space
        # before the offset.
        ("2027-01-15T09:30:00+01:00:00", "2027-01-15T08:30:00+00:00"),
        ("2027-01-15T09:30:00 +01:00", "2027-01-15T08:30:00+00:00"),
        ("2027-01-15T09:30:00-00:00:30", "2027-01-15T09:30:30+00:00"),
    ],
)
def test_an_instant_fromisoformat_accepted_is_accepted_still(before: str, utc: str) -> None:
    assert instant_of(before).isoformat() == utc
    assert parse_instant(before).isoformat() == utc
