"""Channel manager assignment: who may assign and unassign, bad input, and that a manager's
visibility (queries, its review queue, an open subscription) follows at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select
from starlette.applications import Starlette
from websockets.asyncio.client import connect

from deal_registration.registrations import notices
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners import service as partners_service
from partners.models import ManagerAssignment
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.registrations.scenarios import START_REVIEW, submit
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant, add_products, gid
from tests.support import GQL, count_rows, error_codes, listening, live_server

ASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerAssign(input: $input) {
  partner { name managers { email } } manager { email } userErrors { field code } } }"""
UNASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerUnassign(input: $input) {
  partner { name managers { email } } userErrors { field code } } }"""
CLAIMS = "{ saleClaims { totalCount edges { node { id } } } }"
PARTNERS = "{ partners { edges { node { name } } } }"
PARTNERS_MANAGERS = "{ partners { edges { node { managers { email } } } } }"


def _input(tenant: Tenant, partner: int = 1, manager: Any = None) -> dict[str, Any]:
    user = manager or tenant.user(Role.CHANNEL_MANAGER)
    return {"input": {"partnerId": gid(tenant.partners[partner]), "managerId": gid(user)}}


async def test_who_may_assign_and_bad_input(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    assert error_codes(await gql(ASSIGN, _input(tenant))) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(ASSIGN, _input(tenant), as_user=tenant.user(role))) == [
            "FORBIDDEN"
        ]
        assert error_codes(await gql(UNASSIGN, _input(tenant), as_user=tenant.user(role))) == [
            "FORBIDDEN"
        ]
    other_admin = other_tenant.user(Role.VENDOR_ADMIN)
    across = await gql.data(ASSIGN, _input(tenant), as_user=other_admin)
    assert [e["code"] for e in across["partnerManagerAssign"]["userErrors"]] == ["NOT_FOUND"]
    # The manager must be an active channel manager of the caller's vendor.
    for manager in (
        tenant.user(Role.FINANCE),
        tenant.user(Role.PARTNER_ADMIN),
        other_tenant.user(Role.CHANNEL_MANAGER),
    ):
        bad = await gql.data(ASSIGN, _input(tenant, manager=manager), as_user=admin)
        assert [(e["code"], e["field"]) for e in bad["partnerManagerAssign"]["userErrors"]] == [
            ("MANAGER_NOT_FOUND", "managerId")
        ]
    async with db.transaction() as session:
        inactive = await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, email=f"gone@{tenant.vendor.slug}.example",
            role=Role.CHANNEL_MANAGER, display_name="Gone", active=False,
        )  # fmt: skip
    bad = await gql.data(ASSIGN, _input(tenant, manager=inactive), as_user=admin)
    assert [e["code"] for e in bad["partnerManagerAssign"]["userErrors"]] == ["MANAGER_NOT_FOUND"]
    assert await count_rows(db, ManagerAssignment) == 2  # one per tenant, from the factory
    assert await count_rows(db, AuditEntry) == 0

    twice = await gql.data(ASSIGN, _input(tenant, partner=0), as_user=admin)
    assert [e["code"] for e in twice["partnerManagerAssign"]["userErrors"]] == ["ALREADY_ASSIGNED"]
    missing = await gql.data(UNASSIGN, _input(tenant, partner=1), as_user=admin)
    assert [e["code"] for e in missing["partnerManagerUnassign"]["userErrors"]] == ["NOT_ASSIGNED"]


async def test_a_manager_sees_an_assigned_partner_at_once_and_loses_it_at_once(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    serials = await seed_registry(db, clock, tenant)
    rep1 = tenant.user(Role.PARTNER_REP, 1)
    await gql.data(CREATE, {"input": claim_input(serials[-1:], clock)}, as_user=rep1)
    # Warm every read cache the manager's requests go through.
    before = await gql.data(CLAIMS, as_user=manager)
    assert before["saleClaims"]["totalCount"] == 0
    assert len((await gql.data(PARTNERS, as_user=manager))["partners"]["edges"]) == 1

    assigned = await gql.data(ASSIGN, _input(tenant), as_user=admin)
    payload = assigned["partnerManagerAssign"]
    assert payload["userErrors"] == []
    assert payload["manager"]["email"] == manager.email
    assert [m["email"] for m in payload["partner"]["managers"]] == [manager.email]
    after = await gql.data(CLAIMS, as_user=manager)
    assert after["saleClaims"]["totalCount"] == 1
    assert len((await gql.data(PARTNERS, as_user=manager))["partners"]["edges"]) == 2
    # A partner user never reads the managers.
    partner_view = await gql("{ partners { edges { node { managers { email } } } } }", as_user=rep1)
    assert partner_view["data"]["partners"]["edges"][0]["node"]["managers"] is None

    gone = await gql.data(UNASSIGN, _input(tenant), as_user=admin)
    assert gone["partnerManagerUnassign"]["userErrors"] == []
    assert (await gql.data(CLAIMS, as_user=manager))["saleClaims"]["totalCount"] == 0
    assert len((await gql.data(PARTNERS, as_user=manager))["partners"]["edges"]) == 1
    async with db.session() as session:
        rows = await session.exec(
            select(ManagerAssignment).where(ManagerAssignment.vendor_id == tenant.vendor.id)
        )
        assert [(r.manager_id, r.partner_id) for r in rows] == [(manager.id, tenant.partners[0].id)]


async def test_archived_partners_take_no_new_manager(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(
        "mutation($input: PartnerStatusInput!) { partnerArchive(input: $input) { userErrors "
        "{ code } } }", {"input": {"id": gid(tenant.partners[1])}}, as_user=admin,
    )  # fmt: skip
    refused = await gql.data(ASSIGN, _input(tenant), as_user=admin)
    assert [e["code"] for e in refused["partnerManagerAssign"]["userErrors"]] == ["ARCHIVED"]


SUBSCRIPTION = """subscription { dealRegistrationStatusChanged { registrationId toStatus } }"""


@pytest.mark.slow
async def test_an_open_subscription_follows_the_assignment(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    rep1 = tenant.user(Role.PARTNER_REP, 1)
    async with (
        live_server(app) as server,
        connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        init = {"Authorization": f"Bearer {gql.token(manager)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION}}))  # fmt: skip
        await listening(services, notices.vendor_channel(services.hub, tenant.vendor.id))

        async def next_change() -> dict[str, Any]:
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    change: dict[str, Any] = message["payload"]["data"][
                        "dealRegistrationStatusChanged"
                    ]
                    return change
                assert message["type"] in ("ping", "pong"), message

        # Partner 1 is not the manager's until the assignment commits; from then on its
        # changes reach the open subscription (each notice is re-read through the access
        # predicate, which reads the assignment table).
        await gql.data(ASSIGN, _input(tenant), as_user=admin)
        seen = await submit(gql, rep1, clock)
        first = await next_change()
        assert (first["registrationId"], first["toStatus"]) == (seen, "SUBMITTED")

        await gql.data(UNASSIGN, _input(tenant), as_user=admin)
        await gql.data(START_REVIEW, {"input": {"id": seen}}, as_user=admin)  # not told
        own = await submit(gql, tenant.user(Role.PARTNER_REP, 0), clock, customer={
            "name": "Own Co", "domain": "own.example", "country": "US"})  # fmt: skip
        second = await next_change()
        assert (second["registrationId"], second["toStatus"]) == (own, "SUBMITTED")


async def test_a_page_of_partners_loads_their_managers_in_one_query(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    assigned = await gql.data(ASSIGN, _input(tenant, 1), as_user=admin)  # (0 is already)
    assert assigned["partnerManagerAssign"]["userErrors"] == []
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = await gql.data(PARTNERS_MANAGERS, as_user=admin)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    managers = [e["node"]["managers"] for e in page["partners"]["edges"]]
    assert managers == [[{"email": manager.email}]] * 2
    assert sum("FROM manager_assignment" in s for s in statements) == 1
