"""Endpoint administration over GraphQL: vendor admins register, list, change, disable,
enable, delete endpoints and rotate their secrets; finance reads them; every other role
is refused, another vendor's endpoint is answered like a missing one, bad input is coded
and changes nothing, and every change is in the audit log without its secret."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from sqlmodel import col, select

from infra.audit import AuditEntry
from infra.db import Database
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, count_rows, error_codes
from tests.webhooks.queries import (
    CREATE,
    DELETE,
    DISABLE,
    ENABLE,
    ENDPOINTS,
    EVENT_TYPES,
    ROTATE,
    UPDATE,
)
from webhooks.models import WebhookEndpoint

URL = "http://127.0.0.1:9/hook"  # loopback: the test settings allow private targets
TYPES = ["sale_claim.approved", "payout_statement.status_changed"]


def new(**overrides: Any) -> dict[str, Any]:
    return {"input": {"url": URL, "eventTypes": TYPES, "description": "CRM sync", **overrides}}


async def create(gql: GQL, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    result = await gql.data(CREATE, new(**overrides), as_user=tenant.user(Role.VENDOR_ADMIN))
    payload: dict[str, Any] = result["webhookEndpointCreate"]
    assert payload["userErrors"] == []
    return payload


async def test_admin_registers_and_gets_the_secret_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    created = await create(gql, tenant)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    endpoint = created["endpoint"]
    assert endpoint["url"] == URL
    assert endpoint["eventTypes"] == TYPES
    assert (endpoint["status"], endpoint["disabledReason"]) == ("ACTIVE", None)

    listed = await gql.data(ENDPOINTS, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert [e["node"]["id"] for e in listed["webhookEndpoints"]["edges"]] == [endpoint["id"]]
    assert secret not in json.dumps(listed)
    finance = await gql.data(ENDPOINTS, as_user=tenant.user(Role.FINANCE))
    assert finance["webhookEndpoints"]["totalCount"] == 1
    # The secret is no field of the endpoint at all.
    asked = await gql(
        "{ webhookEndpoints { edges { node { secret } } } }", as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    assert asked["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    # Audited, with the secret masked.
    async with db.session() as session:
        [entry] = list(await session.exec(select(AuditEntry)))
    assert (entry.action, entry.entity_type) == ("webhook_endpoint.created", "webhook_endpoint")
    assert entry.after is not None
    assert entry.after["url"] == URL
    assert secret not in json.dumps(entry.after)


async def test_event_types_are_listed_with_their_meaning(gql: GQL, tenant: Tenant) -> None:
    types = (await gql.data(EVENT_TYPES, as_user=tenant.user(Role.VENDOR_ADMIN)))[
        "webhookEventTypes"
    ]
    names = [t["name"] for t in types]
    assert names == [
        "sale_claim.approved", "sale_claim.rejected", "sale_claim.reversed",
        "deal_registration.status_changed", "deal_registration.protection_changed",
        "payout_statement.status_changed",
        "earnings_entry.created", "contest.finished", "partner.applied", "partner.enrolled",
        "rule.fired",
    ]  # fmt: skip
    assert all(t["description"] for t in types)


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"eventTypes": ["sale_claim.approved", "sale.exploded"]},
         [("eventTypes.1", "UNKNOWN_EVENT_TYPE")]),
        ({"eventTypes": []}, [("eventTypes", "NO_EVENT_TYPES")]),
        ({"url": "ftp://example.com/hook"}, [("url", "INVALID_URL")]),
        ({"url": "javascript:alert(1)"}, [("url", "INVALID_URL")]),
        ({"url": "/relative/hook"}, [("url", "INVALID_URL")]),
        ({"url": "https://user:pass@example.com/hook"}, [("url", "INVALID_URL")]),
        ({"url": "http://127.0.0.1:99999/hook"}, [("url", "INVALID_URL")]),
        ({"description": "x" * 501}, [("description", "TOO_LONG")]),
        ({"url": "gopher://x", "eventTypes": ["nope"]},
         [("url", "INVALID_URL"), ("eventTypes.0", "UNKNOWN_EVENT_TYPE")]),
    ],
)  # fmt: skip
async def test_bad_input_is_coded_and_changes_nothing(
    gql: GQL, db: Database, tenant: Tenant, overrides: dict[str, Any], errors: list[Any]
) -> None:
    result = await gql.data(CREATE, new(**overrides), as_user=tenant.user(Role.VENDOR_ADMIN))
    payload = result["webhookEndpointCreate"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == errors
    assert (payload["endpoint"], payload["secret"]) == (None, None)
    assert await count_rows(db, WebhookEndpoint) == 0
    assert await count_rows(db, AuditEntry) == 0


async def test_other_roles_are_refused_and_change_nothing(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    endpoint_id = (await create(gql, tenant))["endpoint"]["id"]
    writes = [
        (CREATE, new()), (UPDATE, {"input": {"id": endpoint_id, "description": "x"}}),
        (DISABLE, {"id": endpoint_id}), (ENABLE, {"id": endpoint_id}),
        (DELETE, {"id": endpoint_id}), (ROTATE, {"id": endpoint_id}),
    ]  # fmt: skip
    assert error_codes(await gql(CREATE, new())) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(ENDPOINTS)) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        for query, variables in writes:
            assert error_codes(await gql(query, variables, as_user=tenant.user(role))) == [
                "FORBIDDEN"
            ], (role, query)
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        for query in (ENDPOINTS, EVENT_TYPES):
            assert error_codes(await gql(query, as_user=tenant.user(role))) == ["FORBIDDEN"]
    listed = await gql.data(ENDPOINTS, as_user=tenant.user(Role.VENDOR_ADMIN))
    [node] = [e["node"] for e in listed["webhookEndpoints"]["edges"]]
    assert (node["description"], node["status"]) == ("CRM sync", "ACTIVE")
    assert await count_rows(db, WebhookEndpoint) == 1
    assert await count_rows(db, AuditEntry) == 1  # the creation only


async def test_another_vendors_endpoint_is_answered_like_a_missing_one(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    endpoint_id = (await create(gql, tenant))["endpoint"]["id"]
    stranger = other_tenant.user(Role.VENDOR_ADMIN)
    for query, variables, name in (
        (UPDATE, {"input": {"id": endpoint_id, "description": "mine"}}, "webhookEndpointUpdate"),
        (DISABLE, {"id": endpoint_id}, "webhookEndpointDisable"),
        (DELETE, {"id": endpoint_id}, "webhookEndpointDelete"),
        (ROTATE, {"id": endpoint_id}, "webhookEndpointSecretRotate"),
        (UPDATE, {"input": {"id": "not-an-id", "description": "x"}}, "webhookEndpointUpdate"),
    ):
        payload = (await gql.data(query, variables, as_user=stranger))[name]
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("id", "NOT_FOUND")]
    assert (await gql.data(ENDPOINTS, as_user=stranger))["webhookEndpoints"]["totalCount"] == 0
    node = await gql.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": endpoint_id}, as_user=stranger
    )
    assert node == {"node": None}
    listed = await gql.data(ENDPOINTS, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert listed["webhookEndpoints"]["edges"][0]["node"]["description"] == "CRM sync"
    assert await count_rows(db, AuditEntry) == 1


async def test_update_disable_enable_rotate_delete_are_audited(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    created = await create(gql, tenant)
    endpoint_id, first_secret = created["endpoint"]["id"], created["secret"]

    updated = (
        await gql.data(
            UPDATE,
            {"input": {"id": endpoint_id, "eventTypes": ["partner.enrolled"], "url": URL + "2"}},
            as_user=admin,
        )
    )["webhookEndpointUpdate"]
    assert updated["endpoint"]["eventTypes"] == ["partner.enrolled"]
    assert updated["endpoint"]["url"] == URL + "2"
    bad = (
        await gql.data(UPDATE, {"input": {"id": endpoint_id, "eventTypes": ["x"]}}, as_user=admin)
    )["webhookEndpointUpdate"]
    assert [e["code"] for e in bad["userErrors"]] == ["UNKNOWN_EVENT_TYPE"]

    disabled = (await gql.data(DISABLE, {"id": endpoint_id}, as_user=admin))[
        "webhookEndpointDisable"
    ]
    assert (disabled["endpoint"]["status"], disabled["endpoint"]["disabledReason"]) == (
        "DISABLED", "MANUAL"
    )  # fmt: skip
    again = (await gql.data(DISABLE, {"id": endpoint_id}, as_user=admin))["webhookEndpointDisable"]
    assert [e["code"] for e in again["userErrors"]] == ["ALREADY_DISABLED"]
    enabled = (await gql.data(ENABLE, {"id": endpoint_id}, as_user=admin))["webhookEndpointEnable"]
    assert enabled["endpoint"]["status"] == "ACTIVE"
    twice = (await gql.data(ENABLE, {"id": endpoint_id}, as_user=admin))["webhookEndpointEnable"]
    assert [e["code"] for e in twice["userErrors"]] == ["ALREADY_ENABLED"]

    rotated = (await gql.data(ROTATE, {"id": endpoint_id, "overlap": 3600}, as_user=admin))[
        "webhookEndpointSecretRotate"
    ]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != first_secret
    assert rotated["endpoint"]["previousSecretExpiresAt"] is not None
    too_long = (await gql.data(ROTATE, {"id": endpoint_id, "overlap": 8 * 86400}, as_user=admin))[
        "webhookEndpointSecretRotate"
    ]
    assert [(e["field"], e["code"]) for e in too_long["userErrors"]] == [
        ("overlapSeconds", "INVALID_OVERLAP")
    ]

    deleted = (await gql.data(DELETE, {"id": endpoint_id}, as_user=admin))["webhookEndpointDelete"]
    assert deleted == {"deletedId": endpoint_id, "userErrors": []}
    assert (await gql.data(ENDPOINTS, as_user=admin))["webhookEndpoints"]["totalCount"] == 0
    gone = (await gql.data(DELETE, {"id": endpoint_id}, as_user=admin))["webhookEndpointDelete"]
    assert [e["code"] for e in gone["userErrors"]] == ["NOT_FOUND"]

    async with db.session() as session:
        entries = list(await session.exec(select(AuditEntry).order_by(col(AuditEntry.at))))
    assert [e.action for e in entries] == [
        "webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.disabled",
        "webhook_endpoint.enabled", "webhook_endpoint.secret_rotated",
        "webhook_endpoint.deleted",
    ]  # fmt: skip
    text = json.dumps([(e.before, e.after) for e in entries])
    assert first_secret not in text
    assert rotated["secret"] not in text
    async with db.session() as session:
        row = await session.get(WebhookEndpoint, uuid.UUID(entries[0].entity_id))
    assert row is not None
    assert row.deleted_at is not None
    assert (row.secret, row.previous_secret) == ("", None)  # but its secrets are gone


async def test_a_vendor_has_at_most_twenty_endpoints(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Each event goes to every endpoint: without a bound, one admin's script multiplied
    the outbound requests of every event without end."""
    for i in range(20):
        await create(gql, tenant, description=f"hook {i}")
    refused = await gql.data(CREATE, new(), as_user=tenant.user(Role.VENDOR_ADMIN))
    errors = refused["webhookEndpointCreate"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("TOO_MANY_ENDPOINTS", None)]
    assert await count_rows(db, WebhookEndpoint) == 20
    await create(gql, other_tenant)  # a bound per vendor
    listed = await gql.data(ENDPOINTS, as_user=tenant.user(Role.VENDOR_ADMIN))
    first = listed["webhookEndpoints"]["edges"][0]["node"]["id"]
    await gql.data(DELETE, {"id": first}, as_user=tenant.user(Role.VENDOR_ADMIN))
    await create(gql, tenant)  # room again
