"""Input scalars judge their values at coercion: a value of the wrong shape is a coded
validation error, never an internal error from deep inside a resolver."""

from __future__ import annotations

import pytest

from deal_registration.sales.models import SerialImport
from infra.db import Database
from leaderboards.models import Contest
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, count_rows, error_codes

SERIALS_IMPORT = """
mutation($file: Upload!) {
  serialsImport(input: {file: $file, goodRowsOnly: true}) { __typename }
}"""

MARK_ALL_READ_BEFORE = """
mutation($before: DateTime!) {
  notificationMarkAllRead(input: {before: $before}) { marked userErrors { field code } }
}"""


@pytest.mark.parametrize("file", ["x", {"filename": "a.csv"}, 1])
async def test_an_upload_sent_as_a_json_value_is_a_validation_error(
    gql: GQL, db: Database, tenant: Tenant, file: object
) -> None:
    payload = await gql(SERIALS_IMPORT, {"file": file}, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
    assert payload.get("data") is None
    assert await count_rows(db, SerialImport) == 0


@pytest.mark.parametrize("before", ["2026-01-01T00:00:00", "2026-01-01T00:00:00+02:00"])
async def test_a_date_time_without_an_offset_is_read_as_utc(
    gql: GQL, tenant: Tenant, before: str
) -> None:
    payload = await gql(
        MARK_ALL_READ_BEFORE, {"before": before}, as_user=tenant.user(Role.PARTNER_REP)
    )
    assert payload == {"data": {"notificationMarkAllRead": {"marked": 0, "userErrors": []}}}


@pytest.mark.parametrize("before", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_a_date_time_beyond_the_representable_instants_is_a_validation_error(
    gql: GQL, tenant: Tenant, before: str
) -> None:
    payload = await gql(
        MARK_ALL_READ_BEFORE, {"before": before}, as_user=tenant.user(Role.PARTNER_REP)
    )
    assert error_codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]


CONTEST_WITH_TARGET = """mutation { contestCreate(input: {name: "Q1", metric: REVENUE,
  startsAt: "2030-01-01T00:00:00Z", endsAt: "2030-02-01T00:00:00Z",
  targets: [{participantId: "PARTNER", target: TARGET}]}) { userErrors { field code } } }"""


@pytest.mark.parametrize(
    "target", ["1.5", '"5"', "true", str(2**53 + 1), "1" + "0" * 5000, "-" + "9" * 5000]
)
async def test_a_literal_a_scalar_refuses_is_a_validation_error_not_an_internal_one(
    gql: GQL, db: Database, tenant: Tenant, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A scalar's parse_literal raising a plain ValueError (Score's, or Int's for more
    digits than Python converts) left that exception on the validation error, and the
    masking took it for a bug: INTERNAL_SERVER_ERROR, logged (found by tests/api/test_fuzz.py)."""
    query = CONTEST_WITH_TARGET.replace("PARTNER", gid(tenant.partners[0]))
    payload = await gql(query.replace("TARGET", target), as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Expected value of type 'Score'" in payload["errors"][0]["message"]
    assert payload.get("data") is None
    assert await count_rows(db, Contest) == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # And an Int argument's literal.
    big = "{ partners(first: 1" + "0" * 5000 + ") { totalCount } }"
    payload = await gql(big, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert error_codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
