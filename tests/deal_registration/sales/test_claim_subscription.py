"""Partner users hear about their claims' state changes over graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from deal_registration.events import CLAIM_STATE_CHANGED
from deal_registration.sales import fanout
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant
from tests.support import GQL, listening, live_server

pytestmark = pytest.mark.slow

SUBSCRIBE = "subscription { saleClaimStateChanged { id state serials { serial outcome } } }"
APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { state } userErrors { code } } }"""


@asynccontextmanager
async def subscribed(host: str, gql: GQL, user: User) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"Authorization": f"Bearer {gql.token(user)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        yield ws


async def _next(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert message["type"] == "next", message
    data: dict[str, Any] = message["payload"]["data"]["saleClaimStateChanged"]
    return data


async def test_partner_users_hear_of_their_own_claims_only(
    app: Starlette, services: Services, gql: GQL, db: Any, clock: Any, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    rep0, rep1 = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)
    async with (
        live_server(app) as host,
        subscribed(host, gql, rep0) as mine,
        subscribed(host, gql, tenant.user(Role.PARTNER_ADMIN, 0)) as org,
        subscribed(host, gql, rep1) as theirs,
    ):
        await listening(services, fanout.claim_channel(services.hub, tenant.partners[0].id))
        await listening(services, fanout.claim_channel(services.hub, tenant.partners[1].id))
        created = await gql.data(CREATE, {"input": claim_input(["SN000001"], clock)}, as_user=rep0)
        claim_id = created["saleClaimCreate"]["saleClaim"]["id"]
        seen = await _next(mine)
        assert seen == {
            "id": claim_id, "state": "NEEDS_PROOF",
            "serials": [{"serial": "SN000001", "outcome": "VALID"}],
        }  # fmt: skip
        assert (await _next(org))["id"] == claim_id  # the partner admin sees the org's claims

        approved = await gql.data(
            APPROVE, {"input": {"id": claim_id}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
        )
        assert approved["saleClaimApprove"]["saleClaim"]["state"] == "APPROVED"
        assert (await _next(mine))["state"] == "APPROVED"

        # The other partner's rep heard nothing of partner 0: its first message is its own.
        other = await gql.data(CREATE, {"input": claim_input(["SN000006"], clock)}, as_user=rep1)
        first_heard = await _next(theirs)
        assert first_heard["id"] == other["saleClaimCreate"]["saleClaim"]["id"]


async def test_vendor_staff_and_anonymous_cannot_subscribe(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    async with live_server(app) as host:
        async with subscribed(host, gql, tenant.user(Role.VENDOR_ADMIN)) as ws:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            errors = (
                message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            )
            assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
        async with connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            with pytest.raises(ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403


async def test_each_state_a_claim_passes_through_is_told_once_in_order(
    app: Starlette, services: Services, gql: GQL, db: Any, clock: Any, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    rep = tenant.user(Role.PARTNER_REP, 0)
    async with live_server(app) as host, subscribed(host, gql, rep) as ws:
        await listening(services, fanout.claim_channel(services.hub, tenant.partners[0].id))
        # Both changes commit before either is published, as with `channelboard simulate`
        # (it creates, approves, then dispatches).
        async with services.outbox.paused():
            created = await gql.data(
                CREATE, {"input": claim_input(["SN000001"], clock)}, as_user=rep
            )
            claim_id = created["saleClaimCreate"]["saleClaim"]["id"]
            await gql.data(
                APPROVE, {"input": {"id": claim_id}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
            )
        await services.outbox.dispatch_pending()
        told = [await _next(ws), await _next(ws)]
        assert [(m["id"], m["state"]) for m in told] == [
            (claim_id, "NEEDS_PROOF"), (claim_id, "APPROVED"),
        ]  # fmt: skip

        # A dispatcher run that is re-run (a crash before it was marked done) publishes
        # again: nobody is told twice. The next message is about the next claim.
        async with db.transaction() as session:
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.type) == CLAIM_STATE_CHANGED)
                .values(dispatched_at=None)
            )
        await services.outbox.dispatch_pending()
        other = await gql.data(CREATE, {"input": claim_input(["SN000002"], clock)}, as_user=rep)
        following = await _next(ws)
        assert following["id"] == other["saleClaimCreate"]["saleClaim"]["id"]
