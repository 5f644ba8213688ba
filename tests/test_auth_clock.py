"""Tokens are judged by the injected clock: a token minted after the clock moved forward
is valid, one issued in the (clock's) future is not."""

from __future__ import annotations

from datetime import timedelta

from api.auth import issue_token
from infra.clock import OffsetClock
from partners.roles import Role
from tests.support import GQL, Tenant, error_codes


async def test_tokens_follow_the_injected_clock(
    gql: GQL, clock: OffsetClock, tenant: Tenant
) -> None:
    user = tenant.user(Role.VENDOR_ADMIN)
    clock.advance(timedelta(days=3))
    data = await gql.data("{ me { role } }", as_user=user)  # issued at the moved "now"
    assert data["me"]["role"] == "VENDOR_ADMIN"

    future = issue_token(gql.settings.jwt, user, now=clock.now() + timedelta(hours=1))
    payload = await gql("{ me { role } }", token=future)
    assert error_codes(payload) == ["UNAUTHENTICATED"]
