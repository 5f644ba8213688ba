"""Token time claims are judged by the injected clock, in both directions: a token issued
after the clock was moved forward is valid, one issued in the clock's future is not."""

from __future__ import annotations

from datetime import timedelta

import jwt

from infra.clock import OffsetClock
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, error_codes

ME = "{ me { role } }"


async def test_a_token_issued_after_moving_the_clock_forward_is_valid(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    clock.advance(timedelta(days=75))
    data = await gql.data(ME, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["me"]["role"] == "VENDOR_ADMIN"


async def test_a_token_issued_in_the_clocks_future_is_refused(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    user = tenant.user(Role.VENDOR_ADMIN)
    issued = clock.now() + timedelta(days=2)
    claims = {
        "sub": str(user.id), "iss": gql.settings.jwt.issuer, "aud": gql.settings.jwt.audience,
        "iat": int(issued.timestamp()), "exp": int((issued + timedelta(hours=1)).timestamp()),
    }  # fmt: skip
    token = jwt.encode(claims, gql.settings.jwt.secret, algorithm="HS256")
    payload = await gql(ME, token=token)
    assert error_codes(payload) == ["UNAUTHENTICATED"]
    assert payload["errors"][0]["extensions"]["reason"] == "INVALID_TOKEN"
