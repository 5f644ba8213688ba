"""JSON that is no text: bytes that are not UTF-8 and lone surrogates ("\\ud800" with no
pair) are malformed JSON, a 400 with a code (close 4400 over websockets). They used to
reach the app: a plain-text 500, or an internal error where the string was written."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.applications import Starlette

from infra.db import Database
from partners.group_models import PartnerGroup
from partners.roles import Role
from tests.api.test_auth import closed_with, ws_open
from tests.factories import Tenant
from tests.support import GQL, count_rows, error_codes, live_server

CREATE_GROUP = (
    '{"query": "mutation($i: PartnerGroupCreateInput!) { partnerGroupCreate(input: $i) '
    '{ partnerGroup { name } userErrors { code } } }", "variables": {"i": {"name": NAME, '
    '"description": "", "rule": [{"attribute": "region", "op": "IN", "values": ["EMEA"]}]}}}'
)


async def post(gql: GQL, tenant: Tenant, body: bytes) -> httpx.Response:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    return await gql.client.post(
        "/graphql", content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        b'"a\\ud800b"',  # a lone high surrogate
        b'"\\udfff"',  # a lone low surrogate
        b'"\\ude00\\ud83d"',  # a pair in the wrong order
        b'"a\xed\xa0\x80b"',  # a surrogate encoded as UTF-8 bytes
        b'"a\xffb"',  # not UTF-8 at all
    ],
    ids=["high", "low", "reversed", "utf8-surrogate", "not-utf8"],
)
async def test_json_that_is_no_text_is_a_400_and_writes_nothing(
    gql: GQL, db: Database, tenant: Tenant, name: bytes
) -> None:
    response = await post(gql, tenant, CREATE_GROUP.encode().replace(b"NAME", name))
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await count_rows(db, PartnerGroup) == 0


async def test_a_surrogate_pair_is_text(gql: GQL, tenant: Tenant) -> None:
    response = await post(gql, tenant, CREATE_GROUP.encode().replace(b"NAME", b'"a\\ud83d\\ude00"'))
    assert response.json() == {
        "data": {"partnerGroupCreate": {"partnerGroup": {"name": "a\U0001f600"}, "userErrors": []}}
    }


DIGITS = b"1" + b"0" * 5000  # beyond the 4300 digits Python converts an integer from


async def test_an_integer_of_more_digits_than_python_reads_is_a_400(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """json.loads raises a plain ValueError for it, not a JSONDecodeError: it escaped the
    view, a 500 with no JSON body (found by tests/api/test_fuzz.py's probes)."""
    body = CREATE_GROUP.encode().replace(b"NAME", b'"a", "size": ' + DIGITS)
    response = await post(gql, tenant, body)
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await count_rows(db, PartnerGroup) == 0


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
async def test_python_s_number_constants_are_not_json(
    gql: GQL, db: Database, tenant: Tenant, constant: bytes
) -> None:
    """RFC 8259 has no NaN or Infinity; Python's decoder reads them (JavaScript's does not),
    so a body no JSON client could send ran (found probing from outside). By POST, in a
    GET's `variables`, in a multipart request's `operations`: a 400 like any malformed JSON."""
    body = CREATE_GROUP.encode().replace(b"NAME", b'"a", "size": ' + constant)
    response = await post(gql, tenant, body)
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await count_rows(db, PartnerGroup) == 0
    query = "query($n: Float) { __typename @include(if: true) }"
    response = await gql.client.get(
        "/graphql", params={"query": query, "variables": '{"n": ' + constant.decode() + "}"}
    )
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    response = await gql.client.post(
        "/graphql",
        data={"operations": body.decode(), "map": "{}"},
        files={"unused": ("a.txt", b"a", "text/plain")},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await count_rows(db, PartnerGroup) == 0


@pytest.mark.parametrize(
    "variables",
    [
        '{"id": "\\ud800"}',  # a lone surrogate
        # json.loads raises a plain ValueError for it, not a JSONDecodeError (found by
        # tests/api/test_fuzz.py's probes)
        '{"n": ' + DIGITS.decode() + "}",
        '{"n": NaN}',  # not JSON (RFC 8259), read by Python's decoder
    ],
    ids=["lone-surrogate", "integer-of-too-many-digits", "nan"],
)
async def test_malformed_json_over_websockets_closes_with_4400(
    app: Starlette, gql: GQL, tenant: Tenant, variables: str
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address:
        ws, reply = await ws_open(
            address, "graphql-transport-ws", {"Authorization": f"Bearer {token}"}
        )
        assert reply == {"type": "connection_ack"}
        query = "subscription($id: ID) { dealRegistrationStatusChanged(id: $id) { id } }"
        message = {"id": "1", "type": "subscribe", "payload": {"query": query}}
        await ws.send(json.dumps(message)[:-2] + ', "variables": ' + variables + "}}")
        assert await closed_with(ws) == 4400
