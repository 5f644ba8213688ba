"""Vendor-only fields: a partner role asking for one gets FORBIDDEN on that field alone,
never a nulled parent object, list or response. The schema walk keeps every such field
nullable (a refused non-null field nulls its parent, up to the whole `data`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.permissions import IsAuthenticated, ScreenOrAuthenticated
from schema.root import build_schema
from tests.deal_registration.registrations.scenarios import register
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant, add_products, create_contest, gid
from tests.support import GQL


def _refusing_fields() -> list[tuple[str, str, bool]]:
    """(type, field, nullable) of every field whose permission classes can refuse an
    authenticated caller (anything beyond IsAuthenticated and ScreenOrAuthenticated),
    outside Mutation/Subscription."""
    schema = build_schema()
    out = []
    for name, type_ in schema._schema.type_map.items():
        if not isinstance(type_, GraphQLObjectType) or name in ("Mutation", "Subscription"):
            continue
        for field_name, field in type_.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            permissions = getattr(definition, "permission_classes", None) or []
            if any(p not in (IsAuthenticated, ScreenOrAuthenticated) for p in permissions):
                out.append((name, field_name, not isinstance(field.type, GraphQLNonNull)))
    return out


def test_every_field_a_role_may_be_refused_is_nullable() -> None:
    fields = _refusing_fields()
    assert ("SaleClaim", "riskFlags", True) in fields  # the walk sees the permissions
    assert [(t, f) for t, f, nullable in fields if not nullable] == []


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    parent: list[str | int]  # path of the object that must stay
    field: str


async def _claim(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, Any]:
    await seed_registry(db, clock, tenant, 2)
    created = await gql.data(
        CREATE.replace("saleClaim {", "saleClaim { id"),
        {"input": claim_input(["SN000001"], clock)},
        as_user=tenant.user(Role.PARTNER_REP, 0),
    )
    return {"id": created["saleClaimCreate"]["saleClaim"]["id"]}


async def _contest(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, Any]:
    contest = await create_contest(db, clock, tenant)
    return {"id": gid("Contest", contest.id)}


async def _partner(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, Any]:
    return {"id": gid("Partner", tenant.partners[0].id)}


async def _deal(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, Any]:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    deal = await register(db, clock, tenant.user(Role.PARTNER_REP, 0))
    return {"id": gid("DealRegistration", deal.id)}


async def _serial(gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant) -> dict[str, Any]:
    await seed_registry(db, clock, tenant, 1)
    return {"serial": "SN000001"}


Setup = Callable[[GQL, Database, OffsetClock, Tenant], Awaitable[dict[str, Any]]]
CLAIM_ONE = "query($id: ID!) { saleClaim(id: $id) { id state %s } }"
CLAIM_LIST = "query { saleClaims(first: 5) { totalCount edges { node { id %s } } } }"
CONTEST_ONE = "query($id: ID!) { contest(id: $id) { id name %s } }"
CONTEST_LIST = "query { contests(first: 5) { edges { node { id %s } } } }"
ELIGIBILITY = "query($id: ID!) { contest(id: $id) { id eligibility { tiers %s } } }"
ROOT = "query { __typename contests(first: 1) { edges { node { id } } } %s }"

CASES: list[tuple[Setup, Case]] = [
    (_claim, Case("SaleClaim.decisions", CLAIM_ONE % "decisions { action }", ["saleClaim"],
                  "decisions")),
    (_claim, Case("SaleClaim.riskFlags", CLAIM_ONE % "riskFlags { kind }", ["saleClaim"],
                  "riskFlags")),
    (_claim, Case("SaleClaim.riskFlags in a list", CLAIM_LIST % "riskFlags { kind }",
                  ["saleClaims", "edges", 0, "node"], "riskFlags")),
    (_contest, Case("Contest.weights", CONTEST_ONE % "weights", ["contest"], "weights")),
    (_contest, Case("Contest.targets", CONTEST_ONE % "targets", ["contest"], "targets")),
    (_contest, Case("Contest.revisions", CONTEST_ONE % "revisions { version }", ["contest"],
                    "revisions")),
    (_contest, Case("Contest.weights in a list", CONTEST_LIST % "weights",
                    ["contests", "edges", 0, "node"], "weights")),
    (_contest, Case("ContestEligibility.partnerIds", ELIGIBILITY % "partnerIds",
                    ["contest", "eligibility"], "partnerIds")),
    (_contest, Case("Query.salesSettings", ROOT % "salesSettings { claimWindowDays }", [],
                    "salesSettings")),
    (_contest, Case("Query.dealProgramSettings", ROOT % "dealProgramSettings { protectionDays }",
                    [], "dealProgramSettings")),
    (_contest, Case("Query.earningsMetrics", ROOT % "earningsMetrics { currency }", [],
                    "earningsMetrics")),
    (_partner, Case("Partner.internalNotes",
                    "query($id: ID!) { partner(id: $id) { id name internalNotes } }", ["partner"],
                    "internalNotes")),
    (_deal, Case("DealRegistration.conflicts",
                 "query($id: ID!) { deal(id: $id) { id status conflicts { score } } }", ["deal"],
                 "conflicts")),
    (_deal, Case("Product.marginRateBp",
                  "query { products(first: 1) { edges { node { sku marginRateBp } } } }",
                  ["products", "edges", 0, "node"], "marginRateBp")),
    (_serial, Case("SerialCheck.record",
                   "query($serial: String!) { serialLookup(serial: $serial) { serial outcome "
                   "record { sku } } }", ["serialLookup"], "record")),
]  # fmt: skip


def _at(data: Any, path: list[str | int]) -> Any:
    for step in path:
        data = data[step]
    return data


@pytest.mark.parametrize(("setup", "case"), CASES, ids=[c.name for _, c in CASES])
@pytest.mark.parametrize("role", [Role.PARTNER_REP, Role.PARTNER_ADMIN])
async def test_a_partner_asking_for_a_vendor_only_field_loses_that_field_only(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, setup: Setup, case: Case,
    role: Role,
) -> None:  # fmt: skip
    variables = await setup(gql, db, clock, tenant)
    payload = await gql(case.query, variables, as_user=tenant.user(role, 0))
    parent = _at(payload["data"], case.parent)
    assert isinstance(parent, dict)
    assert parent[case.field] is None
    assert [v for k, v in parent.items() if k != case.field and v is None] == []
    [error] = payload["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == [*case.parent, case.field]
    # Vendor staff get the field.
    staff = await gql(case.query, variables, as_user=tenant.user(Role.VENDOR_ADMIN))
    assert "errors" not in staff
    assert _at(staff["data"], case.parent)[case.field] is not None
