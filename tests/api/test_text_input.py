"""U+0000 in any string input (a variable, a key of a JSON value, a literal's escape) is
refused before the operation runs, with a coded error naming where, over HTTP and over
websockets, and nothing is written. PostgreSQL refuses the character in text, so it
failed the write with an INTERNAL_SERVER_ERROR there (SQLite stored it)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, live_server, ws_client

UPSERT = """mutation($input: ProductUpsertInput!) { productUpsert(input: $input) {
  product { name } userErrors { field code } } }"""
PRODUCT = "query($sku: String!) { product(sku: $sku) { name } }"


def upsert(name: str) -> dict[str, Any]:
    return {"input": {"sku": "NW-NUL", "name": name,
                      "listPrice": {"amount": "1.00", "currency": "USD"}}}  # fmt: skip


async def test_a_variable_or_a_literal_holding_u0000_is_refused_and_writes_nothing(
    gql: GQL, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    refused = await gql(UPSERT, upsert("Core\u0000router"), as_user=admin)
    assert refused.get("data") is None
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$input.name" in error["message"]
    literal = UPSERT.replace("($input: ProductUpsertInput!)", "").replace(
        "input: $input",
        'input: {sku: "NW-NUL", name: "Core\\u0000router", '
        'listPrice: {amount: "1.00", currency: "USD"}}',
    )
    refused = await gql(literal, as_user=admin)
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["BAD_USER_INPUT"]
    assert (await gql.data(PRODUCT, {"sku": "NW-NUL"}, as_user=admin)) == {"product": None}
    # Other control characters are the fields' own to judge; a plain name is stored.
    stored = await gql.data(UPSERT, upsert("Core router"), as_user=admin)
    assert stored["productUpsert"] == {"product": {"name": "Core router"}, "userErrors": []}


@pytest.mark.slow
async def test_over_websockets_too(app: Starlette, gql: GQL, tenant: Tenant) -> None:
    """(graphql-transport-ws: the legacy protocol runs no mutations.)"""
    admin = tenant.user(Role.VENDOR_ADMIN)
    async with live_server(app) as address, ws_client(address, gql.token(admin)) as client:
        await client.subscribe(UPSERT, upsert("Core\u0000router"))
        message = await client.receive()
        assert message["type"] == "error", message
        assert [e["extensions"]["code"] for e in message["payload"]] == ["BAD_USER_INPUT"]
    assert (await gql.data(PRODUCT, {"sku": "NW-NUL"}, as_user=admin)) == {"product": None}
