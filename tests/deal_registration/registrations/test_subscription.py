"""Status changes over websockets (graphql-transport-ws): a partner user hears about the
registrations it may see, and only those."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from deal_registration.events import DEAL_STATUS_CHANGED
from deal_registration.registrations import notices
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import (
    START_REVIEW,
    submit,
)
from tests.factories import Tenant, add_products, gid
from tests.support import GQL, listening, live_server, ws_client

pytestmark = pytest.mark.slow

SUBSCRIPTION = """
subscription($id: ID) {
  dealRegistrationStatusChanged(id: $id) {
    registrationId customerName fromStatus toStatus status changedAt
  }
}"""


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


@pytest.fixture
async def server(app: Starlette) -> AsyncIterator[str]:
    async with live_server(app) as address:
        yield address


class Subscriber:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(15):  # a safety net for a broken build, not a measurement
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == "next":
                    result: dict[str, Any] = message["payload"]["data"][
                        "dealRegistrationStatusChanged"
                    ]
                    return result
                assert message["type"] in ("ping", "pong"), message


@asynccontextmanager
async def subscribe(
    server: str, gql: GQL, user: User, variables: dict[str, Any] | None = None
) -> AsyncIterator[Subscriber]:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {gql.token(user)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": SUBSCRIPTION, "variables": variables or {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield Subscriber(ws)


async def test_partner_users_hear_about_their_visible_registrations_only(
    server: str, gql: GQL, services: Services, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    rep0, admin0, rep1 = (
        t.user(Role.PARTNER_REP, 0), t.user(Role.PARTNER_ADMIN, 0), t.user(Role.PARTNER_REP, 1)
    )  # fmt: skip
    vendor = t.vendor.id
    async with (
        subscribe(server, gql, rep0) as rep0_feed,
        subscribe(server, gql, admin0) as admin0_feed,
        subscribe(server, gql, rep1) as rep1_feed,
        subscribe(server, gql, t.user(Role.VENDOR_ADMIN)) as vendor_feed,
        subscribe(server, gql, t.user(Role.CHANNEL_MANAGER)) as manager_feed,
    ):
        hub = services.hub
        await listening(services, notices.partner_channel(hub, vendor, t.partners[0].id))
        await listening(services, notices.partner_channel(hub, vendor, t.partners[1].id))
        await listening(services, notices.vendor_channel(hub, vendor))

        rival_customer = {"name": "Secret Rival", "domain": "rival.example", "country": "US"}
        rival = await submit(gql, rep1, clock, customer=rival_customer)
        admins_customer = {"name": "Admin's Customer", "domain": "admins.example", "country": "US"}
        colleague = await submit(gql, admin0, clock, customer=admins_customer)
        mine = await submit(gql, rep0, clock)
        review = await gql.data(
            START_REVIEW, {"input": {"id": mine}}, as_user=t.user(Role.CHANNEL_MANAGER)
        )
        assert review["dealRegistrationStartReview"]["userErrors"] == []

        # The rep hears about its own registration, in order, and about nothing else (the
        # colleague's and the rival's changes came first and would have arrived first).
        first = await rep0_feed.next()
        assert (first["registrationId"], first["fromStatus"], first["toStatus"]) == (
            mine, None, "SUBMITTED"
        )  # fmt: skip
        second = await rep0_feed.next()
        assert (second["registrationId"], second["fromStatus"], second["toStatus"]) == (
            mine, "SUBMITTED", "UNDER_REVIEW"
        )  # fmt: skip
        assert second["status"] == "UNDER_REVIEW"
        assert second["customerName"] == "Acme Corp."

        # The partner admin sees its organisation's registrations.
        seen_by_admin = [(await admin0_feed.next())["registrationId"] for _ in range(3)]
        assert seen_by_admin == [colleague, mine, mine]

        # The other partner's rep hears only about its own.
        rival_event = await rep1_feed.next()
        assert rival_event["registrationId"] == rival
        # The vendor admin hears about everything, in commit order.
        seen_by_vendor = [(await vendor_feed.next())["registrationId"] for _ in range(4)]
        assert seen_by_vendor == [rival, colleague, mine, mine]
        # A channel manager hears about its assigned partner (0) only.
        seen_by_manager = [(await manager_feed.next())["registrationId"] for _ in range(3)]
        assert seen_by_manager == [colleague, mine, mine]

        # Still nothing about partner 0 for partner 1: its next message is its own withdrawal.
        await gql.data(
            "mutation($input: DealRegistrationActionInput!) { dealRegistrationWithdraw("
            "input: $input) { userErrors { code } } }", {"input": {"id": rival}}, as_user=rep1,
        )  # fmt: skip
        withdrawn = await rep1_feed.next()
        assert (withdrawn["registrationId"], withdrawn["toStatus"]) == (rival, "WITHDRAWN")


async def test_subscribing_needs_a_token(server: str) -> None:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        closed = None
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as error:
            closed = error
        assert closed is not None
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4403


async def test_subscribing_to_one_registration(
    server: str, gql: GQL, services: Services, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    rep = t.user(Role.PARTNER_REP, 0)
    watched = await submit(gql, rep, clock)
    # Its own SUBMITTED notice goes out before we listen (the app's dispatcher runs in the
    # background and, on a busy machine, could publish it after the subscription started).
    await services.outbox.dispatch_pending()
    async with subscribe(server, gql, rep, {"id": watched}) as feed:
        channel = notices.partner_channel(services.hub, t.vendor.id, t.partners[0].id)
        await listening(services, channel)
        other_customer = {"name": "Other Customer", "domain": "other.example", "country": "US"}
        await submit(gql, rep, clock, customer=other_customer)  # not watched
        await gql.data(START_REVIEW, {"input": {"id": watched}}, as_user=t.user(Role.VENDOR_ADMIN))
        change = await feed.next()
        assert (change["registrationId"], change["toStatus"]) == (watched, "UNDER_REVIEW")


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_one_registration_the_caller_may_not_read_is_refused(
    server: str, gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant,
    other_tenant: Tenant, protocol: str,
) -> None:  # fmt: skip
    # Another partner's, another vendor's, an unknown one and a malformed id alike: refused
    # with NOT_FOUND (as a read answers), not a subscription that never hears anything.
    t = catalogue
    rep0, rep1 = t.user(Role.PARTNER_REP, 0), t.user(Role.PARTNER_REP, 1)
    theirs = await submit(gql, rep1, clock)
    async with db.transaction() as session:
        await add_products(session, clock, other_tenant)
    foreign = await submit(gql, other_tenant.user(Role.PARTNER_REP, 0), clock)
    unknown = gid("DealRegistration", uuid.uuid4())
    async with ws_client(server, gql.token(rep0), protocol) as client:
        for registration in (theirs, foreign, unknown, "not-an-id"):
            op_id = await client.subscribe(SUBSCRIPTION, {"id": registration})
            message = await client.receive()
            while message["type"] == "complete":  # the end of the one before
                message = await client.receive()
            assert message["id"] == op_id
            if message["type"] == "error":  # graphql-transport-ws: a list; graphql-ws: one
                errors = message["payload"]
            else:  # raised as the resolver starts: its only push carries the error
                assert message["payload"]["data"] is None, message
                errors = message["payload"]["errors"]
            errors = errors if isinstance(errors, list) else [errors]
            assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"], registration


async def test_a_re_published_change_is_told_once(
    server: str, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    catalogue: Tenant,
) -> None:  # fmt: skip
    t = catalogue
    rep = t.user(Role.PARTNER_REP, 0)
    async with subscribe(server, gql, rep) as feed:
        channel = notices.partner_channel(services.hub, t.vendor.id, t.partners[0].id)
        await listening(services, channel)
        watched = await submit(gql, rep, clock)
        assert (await feed.next())["toStatus"] == "SUBMITTED"
        # A dispatcher run that is re-run (a crash before it was marked done) publishes
        # its notices again: nobody hears of the change twice.
        async with db.transaction() as session:
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.type) == DEAL_STATUS_CHANGED)
                .values(dispatched_at=None)
            )
        await services.outbox.dispatch_pending()
        await gql.data(START_REVIEW, {"input": {"id": watched}}, as_user=t.user(Role.VENDOR_ADMIN))
        change = await feed.next()
        assert (change["registrationId"], change["toStatus"]) == (watched, "UNDER_REVIEW")
