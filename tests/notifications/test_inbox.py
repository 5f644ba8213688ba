"""The in-app inbox through GraphQL: who is told of a claim decision (the rep who claimed
and the partner's admins, nobody else), reading, paging and marking read, the unread count,
every role refused or shown nothing of others' notifications, idempotency (an event handled
twice notifies once), and the `notificationReceived` subscription on both websocket
protocols."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from deal_registration.events import CLAIM_STATE_CHANGED
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from notifications.delivery import channel
from notifications.models import Notification
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant, dispatch, gid
from tests.notifications.scenarios import INBOX, MARK_ALL_READ, MARK_READ, RECEIVED
from tests.support import GQL, error_codes, listening, live_server, ws_client

APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { id state } userErrors { code } } }"""
REJECT = """mutation($input: SaleClaimRejectInput!) {
  saleClaimReject(input: $input) { saleClaim { id state } userErrors { code } } }"""


async def decided_claim(
    gql: GQL, services: Services, tenant: Tenant, clock: OffsetClock, *, serial: str = "SN000001"
) -> str:
    """A claim by partner 0's rep (created needing proof: nobody is told of that), then
    approved by the channel manager, and the outbox dispatched."""
    rep = tenant.user(Role.PARTNER_REP, 0)
    created = await gql.data(CREATE, {"input": claim_input([serial], clock)}, as_user=rep)
    claim_id: str = created["saleClaimCreate"]["saleClaim"]["id"]
    approved = await gql.data(
        APPROVE, {"input": {"id": claim_id}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    assert approved["saleClaimApprove"]["userErrors"] == []
    await services.outbox.dispatch_pending()
    return claim_id


async def inbox(gql: GQL, user: Any, **variables: Any) -> dict[str, Any]:
    return await gql.data(INBOX, variables, as_user=user)


async def test_a_claim_decision_tells_the_rep_and_partner_admins_only(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    await seed_registry(db, clock, tenant, 10)
    claim_id = await decided_claim(gql, services, tenant, clock)
    for role in (Role.PARTNER_REP, Role.PARTNER_ADMIN):
        data = await inbox(gql, tenant.user(role, 0))
        assert data["unreadNotificationCount"] == 1
        [edge] = data["notifications"]["edges"]
        assert edge["node"]["kind"] == "claim_approved"
        assert edge["node"]["category"] == "CLAIM"
        assert edge["node"]["title"] == "Sale claim approved: Initech"
        assert "$150.00" in edge["node"]["body"]
        assert edge["node"]["readAt"] is None
        assert gid("SaleClaim", edge["node"]["subjectId"]) == claim_id
    # The other partner's users, vendor staff, and the other vendor: nothing.
    others = [
        tenant.user(Role.PARTNER_REP, 1), tenant.user(Role.PARTNER_ADMIN, 1),
        tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER),
        tenant.user(Role.FINANCE), other_tenant.user(Role.PARTNER_ADMIN, 0),
        other_tenant.user(Role.VENDOR_ADMIN),
    ]  # fmt: skip
    for user in others:
        data = await inbox(gql, user)
        assert data["notifications"]["totalCount"] == 0
        assert data["unreadNotificationCount"] == 0


async def test_anonymous_callers_are_refused_and_change_nothing(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    await decided_claim(gql, services, tenant, clock)
    async with db.session() as session:
        [row] = list(
            await session.exec(
                select(Notification).where(
                    Notification.user_id == tenant.user(Role.PARTNER_REP, 0).id
                )
            )
        )
    for document, variables in (
        (INBOX, {}),
        (MARK_READ, {"input": {"id": gid("Notification", row.id)}}),
        (MARK_ALL_READ, None),
    ):
        payload = await gql(document, variables)
        assert error_codes(payload) == ["UNAUTHENTICATED"], payload
    async with db.session() as session:
        assert (await session.get(Notification, row.id)).read_at is None  # type: ignore[union-attr]


async def test_marking_read_one_and_all_and_nobody_elses(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    await seed_registry(db, clock, tenant, 10)
    for serial in ("SN000001", "SN000002", "SN000003"):
        await decided_claim(gql, services, tenant, clock, serial=serial)
    rep, admin = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_ADMIN, 0)
    page = await inbox(gql, rep, first=2)
    assert page["notifications"]["totalCount"] == 3
    assert page["notifications"]["pageInfo"]["hasNextPage"] is True
    rest = await inbox(gql, rep, first=2, after=page["notifications"]["pageInfo"]["endCursor"])
    ids = [e["node"]["id"] for e in page["notifications"]["edges"]] + [
        e["node"]["id"] for e in rest["notifications"]["edges"]
    ]
    assert len(set(ids)) == 3
    newest = ids[0]

    # The rep's notification is not the admin's, nor anyone else's: NOT_FOUND, unchanged.
    for user in (admin, tenant.user(Role.PARTNER_REP, 1), tenant.user(Role.VENDOR_ADMIN),
                 other_tenant.user(Role.PARTNER_REP, 0)):  # fmt: skip
        refused = await gql.data(MARK_READ, {"input": {"id": newest}}, as_user=user)
        assert refused["notificationMarkRead"]["userErrors"] == [
            {"field": "id", "code": "NOT_FOUND"}
        ]
    malformed = await gql.data(MARK_READ, {"input": {"id": "nope"}}, as_user=rep)
    assert malformed["notificationMarkRead"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await inbox(gql, rep))["unreadNotificationCount"] == 3

    done = await gql.data(MARK_READ, {"input": {"id": newest}}, as_user=rep)
    assert done["notificationMarkRead"]["notification"]["readAt"] is not None
    unread = await inbox(gql, rep, unread=True)
    assert unread["notifications"]["totalCount"] == 2
    assert newest not in [e["node"]["id"] for e in unread["notifications"]["edges"]]
    assert unread["unreadNotificationCount"] == 2
    assert (await inbox(gql, admin))["unreadNotificationCount"] == 3  # the admin's own stay

    marked = await gql.data(MARK_ALL_READ, as_user=rep)
    assert marked["notificationMarkAllRead"] == {"marked": 2, "userErrors": []}
    assert (await inbox(gql, rep))["unreadNotificationCount"] == 0
    assert (await inbox(gql, admin))["unreadNotificationCount"] == 3


async def test_an_event_handled_twice_notifies_once(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    await decided_claim(gql, services, tenant, clock)
    # A crash before the run was marked dispatched: the handler runs again.
    async with db.transaction() as session:
        await session.execute(
            update(OutboxEvent)
            .where(col(OutboxEvent.type) == CLAIM_STATE_CHANGED)
            .values(dispatched_at=None)
        )
    await dispatch(services)  # (by this call or the app's own dispatcher, whichever is first)
    async with db.session() as session:
        events = list(
            await session.exec(select(OutboxEvent).where(OutboxEvent.type == CLAIM_STATE_CHANGED))
        )
        await services.notifier.handle(events)  # and once more, directly
    for role in (Role.PARTNER_REP, Role.PARTNER_ADMIN):
        assert (await inbox(gql, tenant.user(role, 0)))["notifications"]["totalCount"] == 1


async def test_an_api_key_has_no_inbox(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    created = await gql.data(
        """mutation { apiKeyCreate(input: {name: "crm"}) { secret userErrors { code } } }""",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    token = created["apiKeyCreate"]["secret"]
    payload = await gql(INBOX, {}, token=token)
    assert payload["data"]["notifications"]["totalCount"] == 0
    marked = await gql(MARK_ALL_READ, token=token)
    assert marked["data"]["notificationMarkAllRead"]["userErrors"] == [
        {"field": None, "code": "NOT_A_USER"}
    ]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_notifications_arrive_live_to_their_recipient_only(
    app: Starlette, services: Services, gql: GQL, db: Database, clock: OffsetClock,
    tenant: Tenant, protocol: str,
) -> None:  # fmt: skip
    await seed_registry(db, clock, tenant, 10)
    rep, other_rep = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_REP, 1)
    async with (
        live_server(app) as host,
        ws_client(host, f"Bearer {gql.token(rep)}", protocol) as mine,
        ws_client(host, f"Bearer {gql.token(other_rep)}", protocol) as theirs,
    ):
        await mine.subscribe(RECEIVED, {})
        await theirs.subscribe(RECEIVED, {})
        await listening(services, channel(services.hub, rep.id))
        await listening(services, channel(services.hub, other_rep.id))
        await decided_claim(gql, services, tenant, clock)
        data = await mine.data()
        assert data["notificationReceived"]["kind"] == "claim_approved"
        assert data["notificationReceived"]["title"] == "Sale claim approved: Initech"
        # The other partner's rep hears nothing of it; its own next one is its first.
        rep1_claim = await gql.data(
            CREATE, {"input": claim_input(["SN000006"], clock)}, as_user=other_rep
        )
        await gql.data(
            REJECT,
            {"input": {"id": rep1_claim["saleClaimCreate"]["saleClaim"]["id"],
                       "reason": "DUPLICATE_CLAIM"}},
            as_user=tenant.user(Role.VENDOR_ADMIN),
        )  # fmt: skip
        await services.outbox.dispatch_pending()
        theirs_first = await theirs.data()
        assert theirs_first["notificationReceived"]["kind"] == "claim_rejected"


@pytest.mark.slow
async def test_anonymous_cannot_subscribe(app: Starlette) -> None:
    async with (
        live_server(app) as host,
        connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"]) as ws,  # type: ignore[list-item]
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_a_notification_by_id_is_its_owners_only(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    other_tenant: Tenant,
) -> None:  # fmt: skip
    await seed_registry(db, clock, tenant, 10)
    await decided_claim(gql, services, tenant, clock)
    rep = tenant.user(Role.PARTNER_REP, 0)
    [edge] = (await inbox(gql, rep))["notifications"]["edges"]
    query = "query($id: ID!) { node(id: $id) { ... on Notification { id kind } } }"
    mine = await gql.data(query, {"id": edge["node"]["id"]}, as_user=rep)
    assert mine["node"] == {"id": edge["node"]["id"], "kind": "claim_approved"}
    for user in (
        tenant.user(Role.PARTNER_ADMIN, 0), tenant.user(Role.VENDOR_ADMIN),
        tenant.user(Role.PARTNER_REP, 1), other_tenant.user(Role.VENDOR_ADMIN),
    ):  # fmt: skip
        assert (await gql.data(query, {"id": edge["node"]["id"]}, as_user=user))["node"] is None


async def test_mark_all_read_before_an_instant_leaves_later_ones_unread(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await seed_registry(db, clock, tenant, 10)
    await decided_claim(gql, services, tenant, clock, serial="SN000001")
    shown_at = clock.now()
    clock.advance(timedelta(minutes=1))
    await decided_claim(gql, services, tenant, clock, serial="SN000002")
    rep = tenant.user(Role.PARTNER_REP, 0)
    marked = await gql.data(
        """mutation($input: NotificationMarkAllReadInput) {
             notificationMarkAllRead(input: $input) { marked userErrors { code } } }""",
        {"input": {"before": shown_at.isoformat()}}, as_user=rep,
    )  # fmt: skip
    assert marked["notificationMarkAllRead"] == {"marked": 1, "userErrors": []}
    unread = await inbox(gql, rep, unread=True)
    assert unread["unreadNotificationCount"] == 1
