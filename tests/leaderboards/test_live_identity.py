"""leaderboardChanged shows every subscriber its own row as its own, and nobody else's: the
board a group of subscribers shares is read and rendered as nobody in particular, on both
transports (the fast path and strawberry's path)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
from starlette.applications import Starlette

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, WSClient, live_server, ws_client

pytestmark = pytest.mark.slow

DOC = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 5) {
    rows { rank participant { id name isYou } }
    me { rank participant { name isYou } }
  }
}
"""
PROTOCOLS = ("graphql-transport-ws", "graphql-ws")


def partner_row(tenant: Tenant, index: int, rank: int, *, you: bool) -> dict[str, Any]:
    partner = tenant.partners[index]
    return {
        "rank": rank,
        "participant": {"id": gid("Partner", partner.id), "name": partner.name, "isYou": you},
    }


def anonymous_row(rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "participant": {"id": None, "name": f"Participant at rank {rank}", "isYou": False},
    }


async def _subscribe_all(
    stack: AsyncExitStack, address: str, contest: Contest, tokens: list[str]
) -> list[tuple[WSClient, WSClient]]:
    """Per token a client on each protocol, subscribed one after the other (the first one
    to join a group used to decide what the whole group saw)."""
    out = []
    for token in tokens:
        pair = []
        for protocol in PROTOCOLS:
            client = await stack.enter_async_context(ws_client(address, token, protocol))
            await client.subscribe(DOC, {"id": gid(contest)})
            pair.append(client)
        out.append((pair[0], pair[1]))
    return out


async def _next(clients: list[tuple[WSClient, WSClient]]) -> list[dict[str, Any]]:
    """Each caller's next push; both transports send the very same data."""
    out = []
    for fast, legacy in clients:
        data, legacy_data = await fast.data(), await legacy.data()
        assert data == legacy_data
        out.append(data["leaderboardChanged"])
    return out


async def test_partners_see_only_their_own_row_in_an_anonymised_contest(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant, anonymise=True)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=500_00)
    await dispatch(services)
    tokens = [gql.token(tenant.user(Role.PARTNER_REP, i)) for i in (0, 1)]
    async with live_server(app) as address, AsyncExitStack() as stack:
        clients = await _subscribe_all(stack, address, contest, tokens)
        first = await _next(clients)
        assert first[0]["rows"] == [anonymous_row(1), partner_row(tenant, 0, 2, you=True)]
        assert first[1]["rows"] == [partner_row(tenant, 1, 1, you=True), anonymous_row(2)]
        for i, update in enumerate(first):
            me = update["me"]
            assert me["participant"] == {"name": tenant.partners[i].name, "isYou": True}
            assert me["rank"] == 2 - i

        # A push (the group's shared render, then each one's own) keeps them apart.
        await approve_sale(db, clock, tenant, partner=0, amount=400_00)
        await dispatch(services)
        pushed = await _next(clients)
        assert pushed[0]["rows"] == [partner_row(tenant, 0, 1, you=True), anonymous_row(2)]
        assert pushed[1]["rows"] == [anonymous_row(1), partner_row(tenant, 1, 2, you=True)]
        assert [u["me"]["rank"] for u in pushed] == [1, 2]


async def test_is_you_only_on_each_subscribers_own_row_in_a_full_contest(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=500_00)
    await dispatch(services)
    # The vendor admin first: its group used to be the one the partners joined.
    users = [tenant.user(Role.VENDOR_ADMIN), *(tenant.user(Role.PARTNER_REP, i) for i in (0, 1))]
    async with live_server(app) as address, AsyncExitStack() as stack:
        clients = await _subscribe_all(stack, address, contest, [gql.token(u) for u in users])
        for updates in (await _next(clients), None):
            if updates is None:
                await approve_sale(db, clock, tenant, partner=0, amount=400_00)
                await dispatch(services)
                updates = await _next(clients)
                order = (0, 1)  # partner 0 leads now
            else:
                order = (1, 0)
            admin, rep0, rep1 = updates
            ranks = {p: rank for rank, p in enumerate(order, 1)}
            assert admin["rows"] == [partner_row(tenant, p, ranks[p], you=False) for p in order]
            assert admin["me"] is None
            for you, update in ((0, rep0), (1, rep1)):
                assert update["rows"] == [
                    partner_row(tenant, p, ranks[p], you=p == you) for p in order
                ]
                assert update["me"]["rank"] == ranks[you]
                assert update["me"]["participant"]["isYou"]


async def test_vendor_staff_see_no_row_as_theirs_in_an_anonymised_contest(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant, anonymise=True)
    await approve_sale(db, clock, tenant, partner=0, amount=300_00)
    await approve_sale(db, clock, tenant, partner=1, amount=500_00)
    await dispatch(services)
    users = [tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.VENDOR_ADMIN)]
    async with live_server(app) as address, AsyncExitStack() as stack:
        clients = await _subscribe_all(stack, address, contest, [gql.token(u) for u in users])
        rep0, admin = await _next(clients)
        assert rep0["rows"] == [anonymous_row(1), partner_row(tenant, 0, 2, you=True)]
        # Vendor staff see every name (anonymising hides partners from each other).
        assert admin["rows"] == [
            partner_row(tenant, 1, 1, you=False),
            partner_row(tenant, 0, 2, you=False),
        ]
        assert admin["me"] is None
