"""An error a Subscription field raises is the field's error, as a Query field's is over
HTTP (GraphQL spec 7.1.2): it carries the field's `locations` and a `path` of its response
key (the alias, when the client gave one), on both websocket protocols, for every
subscription served by strawberry (schema.stream_errors; the leaderboard's fast path is
compared with strawberry's in test_ws_refusal_shapes). Errors that are not a field's (a
variable refused) have no `path`.

Our subscription resolvers are async generators: they raise as their stream is first read,
and graphql-core let such an error out unlocated; it came with neither."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, live_server, ws_client

pytestmark = pytest.mark.slow

PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
ALIAS = "watched"

# A subscription raising as it starts: the document (``%s``: where an alias goes), the
# caller, the variables, and the error's code.
CASES: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "a deal registration unknown": (
        "subscription($id: ID) { %s dealRegistrationStatusChanged(id: $id) { status } }",
        "rep",
        {"id": gid("DealRegistration", uuid.uuid4())},
        "NOT_FOUND",
    ),
    "another partner's earnings": (
        "subscription($id: ID) { %s earningsChanged(partnerId: $id) { earned { amountMinor } } }",
        "partner admin",
        {"id": "other partner"},
        "NOT_FOUND",
    ),
    "another partner's next actions": (
        "subscription($id: ID) { %s nextActionsChanged(partnerId: $id) { __typename } }",
        "stranger",
        {"id": "partner"},
        "NOT_FOUND",
    ),
    "sale claims, to a role that may not watch them": (
        "subscription { %s saleClaimStateChanged { id } }",
        "stranger",
        {},
        "FORBIDDEN",
    ),
    "a contest unknown": (
        "subscription($id: ID!) { %s leaderboardChanged(contestId: $id) { version } }",
        "rep",
        {"id": gid("Contest", uuid.uuid4())},
        "NOT_FOUND",
    ),
}


def callers(tenant: Tenant, other_tenant: Tenant) -> dict[str, Any]:
    return {
        "rep": tenant.user(Role.PARTNER_REP, 0),
        "partner admin": tenant.user(Role.PARTNER_ADMIN, 0),
        "stranger": other_tenant.user(Role.VENDOR_ADMIN),
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("aliased", [False, True])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_subscription_field_error_carries_the_fields_locations_and_path(
    app: Starlette, gql: GQL, tenant: Tenant, other_tenant: Tenant, protocol: str,
    aliased: bool, case: str,
) -> None:  # fmt: skip
    document, caller, variables, code = CASES[case]
    query = document % (f"{ALIAS}:" if aliased else "")
    field = document.split("%s ")[1].split("(")[0].split(" ")[0]
    key = ALIAS if aliased else field
    named = {"other partner": tenant.partners[1], "partner": tenant.partners[0]}
    variables = {k: gid(named[v]) if v in named else v for k, v in variables.items()}
    token = gql.token(callers(tenant, other_tenant)[caller])
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        op_id = await client.subscribe(query, variables)
        result = await client.receive()
        end = await client.receive()
    push = "next" if protocol == "graphql-transport-ws" else "data"
    assert result["type"] == push, result
    assert end == {"id": op_id, "type": "complete"}
    [error] = result["payload"]["errors"]
    assert result["payload"]["data"] is None
    assert error["extensions"]["code"] == code, error
    # Where the field starts (at its alias, when it has one) and its response key.
    column = query.index(f"{ALIAS}:" if aliased else field) + 1
    assert error["locations"] == [{"line": 1, "column": column}], error
    assert error["path"] == [key], error


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_variable_refused_is_told_as_a_result_without_a_path(
    app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    """As graphql-ws's reference server tells what subscribe() returned (it was an `error`
    message): `next` (legacy: `data`) with the errors, then `complete`; each error is the
    variable's (its definition's `locations`, no `path`), coded as over HTTP."""
    query = "subscription($id: ID) { watched: dealRegistrationStatusChanged(id: $id) { status } }"
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        op_id = await client.subscribe(query, {"id": ["not", "an", "id"]})
        result = await client.receive()
        end = await client.receive()
    push = "next" if protocol == "graphql-transport-ws" else "data"
    assert result["type"] == push, result
    assert end == {"id": op_id, "type": "complete"}
    [error] = result["payload"]["errors"]
    assert result["payload"]["data"] is None
    assert "path" not in error
    assert error["locations"] == [{"line": 1, "column": 14}]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["message"].startswith("Variable '$id' has invalid value")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_invalid_document_is_still_refused_before_it_runs(
    app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    """A validation error: an `error` message (its `locations`, no `path`), nothing after."""
    query = "subscription { watched: dealRegistrationStatusChanged { nope } }"
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        op_id = await client.subscribe(query, {})
        refused = await client.receive()
    assert refused["type"] == "error", refused
    assert refused["id"] == op_id
    payload = refused["payload"]
    [error] = payload if protocol == "graphql-transport-ws" else [payload]
    assert "path" not in error
    assert error["locations"] == [{"line": 1, "column": 57}]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
