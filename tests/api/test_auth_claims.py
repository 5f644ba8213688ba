"""Correctly signed tokens whose claims are malformed (wrong JSON types, NaN, dates no
datetime holds) are refused as INVALID_TOKEN, over HTTP and both websocket protocols, never
answered as if the database were down."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import websockets
from starlette.applications import Starlette

from api.settings import DEVELOPMENT_SECRET
from partners.models import User
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, live_server

ME = "{ me { role } }"
NOW = datetime.now(UTC)
HOUR = int((NOW + timedelta(hours=1)).timestamp())
MALFORMED: dict[str, dict[str, Any]] = {
    "exp_string": {"exp": "tomorrow"},
    "exp_numeric_string": {"exp": str(HOUR)},
    "exp_nan": {"exp": float("nan")},
    "exp_infinity": {"exp": float("inf")},
    "exp_huge_float": {"exp": 1e300},
    "exp_huge_int": {"exp": 10**400},
    "exp_past_year_9999": {"exp": 10**12},
    "exp_negative": {"exp": -1},
    "exp_bool": {"exp": True},
    "exp_list": {"exp": [HOUR]},
    "exp_object": {"exp": {"at": HOUR}},
    "iat_string": {"iat": "now"},
    "iat_nan": {"iat": float("nan")},
    "iat_huge_int": {"iat": 10**400},
    "iat_bool": {"iat": False},
    "iat_null": {"iat": None},
    "nbf_string": {"nbf": "now"},
    "nbf_huge_int": {"nbf": -(10**400)},
    "sub_number": {"sub": 12345},
    "sub_list": {"sub": ["x"]},
    "sub_object": {"sub": {"id": 1}},
}


def signed(user: User, **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "iss": "channelboard-dev",
        "aud": "channelboard",
        "iat": int(NOW.timestamp()),
        "exp": HOUR,
    }
    claims.update(overrides)
    return jwt.encode(claims, DEVELOPMENT_SECRET, "HS256")


def signed_payload(payload: bytes) -> str:
    return jwt.api_jws.encode(payload, DEVELOPMENT_SECRET, "HS256")


async def http_reason(gql: GQL, token: str) -> tuple[int, str | None]:
    response = await gql.post(ME, token=token)
    errors = response.json().get("errors") or [{}]
    extensions = errors[0].get("extensions", {})
    assert extensions.get("code") in ("UNAUTHENTICATED", None), response.text
    return response.status_code, extensions.get("reason")


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_claim_is_an_invalid_token(gql: GQL, tenant: Tenant, case: str) -> None:
    token = signed(tenant.user(Role.VENDOR_ADMIN), **MALFORMED[case])
    assert await http_reason(gql, token) == (200, "INVALID_TOKEN")


@pytest.mark.parametrize(
    "payload", [b"[1, 2]", b'"a string"', b"null", b"{not json", b"\xff\xfe", b"{}"]
)
async def test_a_signed_payload_that_is_no_claims_object_is_an_invalid_token(
    gql: GQL, payload: bytes
) -> None:
    assert await http_reason(gql, signed_payload(payload)) == (200, "INVALID_TOKEN")


async def test_a_well_formed_token_still_authenticates(gql: GQL, tenant: Tenant) -> None:
    assert await http_reason(gql, signed(tenant.user(Role.VENDOR_ADMIN))) == (200, None)
    float_times = signed(tenant.user(Role.VENDOR_ADMIN), exp=HOUR + 0.5, iat=NOW.timestamp())
    assert await http_reason(gql, float_times) == (200, None)


async def until_closed(ws: websockets.ClientConnection) -> tuple[list[Any], int | None]:
    """The messages received until the server closed the socket, and its close code."""
    messages: list[Any] = []
    try:
        async with asyncio.timeout(10):  # a safety net, not a measurement
            while True:
                messages.append(json.loads(await ws.recv()))
    except websockets.ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_malformed_claim_closes_the_websocket_with_4403(
    app: Starlette, tenant: Tenant, protocol: str
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    async with live_server(app) as address:
        for case in ("exp_string", "exp_nan", "exp_huge_int", "iat_huge_int", "sub_object"):
            token = signed(admin, **MALFORMED[case])
            async with websockets.connect(
                f"ws://{address}/graphql",
                subprotocols=[protocol],  # type: ignore[list-item]
            ) as ws:
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                await ws.send(json.dumps(init))
                messages, code = await until_closed(ws)
                assert code == 4403, case
                if protocol == "graphql-ws":
                    assert messages == [
                        {
                            "type": "connection_error",
                            "payload": {"code": "UNAUTHENTICATED", "reason": "INVALID_TOKEN"},
                        }
                    ], case
