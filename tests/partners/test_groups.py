"""Partner groups (issue 12, item 7) through GraphQL: rules and explicit members, the
membership history read at an instant, program tiers with history, and who may do what.
Vendor admins write; channel managers (their assigned partners only) and finance read;
partner roles never see groups; nothing crosses vendors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from partners import service
from partners.group_models import PartnerGroup, PartnerGroupMembership, PartnerTierChange
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, error_codes

GROUP = "partnerGroup { id name rule { attribute op values } archivedAt }"
CREATE = f"""mutation($input: PartnerGroupCreateInput!) {{ partnerGroupCreate(input: $input) {{
  {GROUP} userErrors {{ code field }} }} }}"""
UPDATE = f"""mutation($input: PartnerGroupUpdateInput!) {{ partnerGroupUpdate(input: $input) {{
  {GROUP} userErrors {{ code field }} }} }}"""
DELETE = f"""mutation($input: PartnerGroupDeleteInput!) {{ partnerGroupDelete(input: $input) {{
  {GROUP} userErrors {{ code field }} }} }}"""
ADD = f"""mutation($input: PartnerGroupMembersInput!) {{ partnerGroupMembersAdd(input: $input) {{
  {GROUP} userErrors {{ code field }} }} }}"""
REMOVE = f"""mutation($input: PartnerGroupMembersInput!) {{
  partnerGroupMembersRemove(input: $input) {{ {GROUP} userErrors {{ code field }} }} }}"""
MEMBERS = """query($id: ID!, $at: DateTime) { partnerGroup(id: $id) {
  name members(at: $at) { edges { node { name } } } } }"""
TIER = """mutation($input: PartnerTierSetInput!) { partnerTierSet(input: $input) {
  partner { programTier tier programTierHistory { fromTier toTier reason } }
  userErrors { code field } } }"""
EMEA = [{"attribute": "region", "op": "IN", "values": ["EMEA"]}]


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        out = []
        for table in (PartnerGroup, PartnerGroupMembership, PartnerTierChange):
            out.append(int(await session.scalar(select(func.count()).select_from(table)) or 0))
        return out[0], out[1], out[2]


async def create(gql: GQL, tenant: Tenant, **input: Any) -> dict[str, Any]:
    data = await gql.data(CREATE, {"input": input}, as_user=tenant.user(Role.VENDOR_ADMIN))
    result: dict[str, Any] = data["partnerGroupCreate"]
    return result


async def member_names(gql: GQL, tenant: Tenant, group_id: str, at: str | None = None,
                       role: Role = Role.VENDOR_ADMIN) -> list[str] | None:  # fmt: skip
    data = await gql.data(MEMBERS, {"id": group_id, "at": at}, as_user=tenant.user(role))
    if data["partnerGroup"] is None:
        return None
    return [e["node"]["name"] for e in data["partnerGroup"]["members"]["edges"]]


async def test_a_rule_group_holds_matching_partners_and_explicit_decisions_win(
    gql: GQL, tenant: Tenant, clock: OffsetClock
) -> None:
    p0, p1 = (p.name for p in tenant.partners)
    made = await create(gql, tenant, name="EMEA", description="Europe", rule=EMEA)
    assert made["userErrors"] == []
    group = made["partnerGroup"]
    assert group["rule"] == [{"attribute": "region", "op": "IN", "values": ["EMEA"]}]
    assert await member_names(gql, tenant, group["id"]) == sorted([p0, p1])
    created_at = clock.now()

    clock.advance(timedelta(hours=1))
    admin = tenant.user(Role.VENDOR_ADMIN)
    ids = {"id": group["id"], "partnerIds": [gid(tenant.partners[1])], "reason": "pilot ended"}
    removed = await gql.data(REMOVE, {"input": ids}, as_user=admin)
    assert removed["partnerGroupMembersRemove"]["userErrors"] == []
    assert await member_names(gql, tenant, group["id"]) == [p0]
    # History: at creation both were members.
    assert await member_names(gql, tenant, group["id"], created_at.isoformat()) == sorted([p0, p1])

    # A rule change recomputes now: partner 0 leaves, the explicit exclusion still holds.
    clock.advance(timedelta(hours=1))
    rule = [{"attribute": "region", "op": "NOT_IN", "values": ["emea"]}]
    updated = await gql.data(UPDATE, {"input": {"id": group["id"], "rule": rule}}, as_user=admin)
    assert updated["partnerGroupUpdate"]["userErrors"] == []
    assert await member_names(gql, tenant, group["id"]) == []
    added = await gql.data(ADD, {"input": ids}, as_user=admin)
    assert added["partnerGroupMembersAdd"]["userErrors"] == []
    assert await member_names(gql, tenant, group["id"]) == [p1]

    # Partner.groups, for vendor staff.
    data = await gql.data(
        "query($id: ID!) { partner(id: $id) { groups { name } } }",
        {"id": gid(tenant.partners[1])}, as_user=tenant.user(Role.FINANCE),
    )  # fmt: skip
    assert data["partner"]["groups"] == [{"name": "EMEA"}]

    # Archiving ends every membership now; the history stays readable.
    before = clock.now()
    clock.advance(timedelta(hours=1))
    archived = await gql.data(DELETE, {"input": {"id": group["id"]}}, as_user=admin)
    assert archived["partnerGroupDelete"]["partnerGroup"]["archivedAt"] is not None
    assert await member_names(gql, tenant, group["id"]) == []
    assert await member_names(gql, tenant, group["id"], before.isoformat()) == [p1]
    listed = await gql.data("{ partnerGroups { edges { node { name } } } }", as_user=admin)
    assert listed["partnerGroups"]["edges"] == []
    again = await gql.data(ADD, {"input": ids}, as_user=admin)
    assert again["partnerGroupMembersAdd"]["userErrors"] == [{"code": "ARCHIVED", "field": "id"}]


@pytest.mark.parametrize(
    ("input", "errors"),
    [
        ({"name": " "}, [("REQUIRED", "name")]),
        ({"name": "x" * 201}, [("TOO_LONG", "name")]),
        ({"rule": [{"attribute": "revenue", "op": "IN", "values": ["1"]}]},
         [("UNKNOWN_ATTRIBUTE", "rule.0.attribute")]),
        ({"rule": [{"attribute": "region", "op": "LIKE", "values": ["E"]}]},
         [("INVALID_RULE", "rule.0.op")]),
        ({"rule": [{"attribute": "region", "op": "EQ", "values": ["EMEA", "NA"]}]},
         [("INVALID_RULE", "rule.0.values")]),
        ({"rule": [{"attribute": "country", "op": "IN", "values": ["XX"]}]},
         [("INVALID_RULE", "rule.0.values")]),
        ({"rule": [{"attribute": "tags", "op": "IN", "values": []},
                   {"attribute": "colour", "op": "IN", "values": ["red"]}]},
         [("INVALID_RULE", "rule.0.values"), ("UNKNOWN_ATTRIBUTE", "rule.1.attribute")]),
    ],
)  # fmt: skip
async def test_bad_group_input_gets_coded_errors_and_changes_nothing(
    gql: GQL, tenant: Tenant, db: Database, input: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    result = await create(gql, tenant, **{"name": "Segment", **input})
    assert result["partnerGroup"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == errors
    assert await counts(db) == (0, 0, 0)


async def test_group_names_are_unique_per_vendor(
    gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert (await create(gql, tenant, name="Pilot"))["userErrors"] == []
    again = await create(gql, tenant, name="Pilot")
    assert again["userErrors"] == [{"code": "DUPLICATE_NAME", "field": "name"}]
    assert (await create(gql, other_tenant, name="Pilot"))["userErrors"] == []


async def test_who_may_read_and_write_groups(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    group = (await create(gql, tenant, name="EMEA", rule=EMEA))["partnerGroup"]
    before = await counts(db)
    ids = {"id": group["id"], "partnerIds": [gid(tenant.partners[0])]}
    writes = [
        (CREATE, {"name": "Other"}), (UPDATE, {"id": group["id"], "name": "Renamed"}),
        (DELETE, {"id": group["id"]}), (ADD, ids), (REMOVE, ids),
        (TIER, {"partnerId": gid(tenant.partners[0]), "tier": "PREMIER", "reason": "r"}),
    ]  # fmt: skip
    for mutation, input in writes:
        assert error_codes(await gql(mutation, {"input": input})) == ["UNAUTHENTICATED"]
        for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
            refused = await gql(mutation, {"input": input}, as_user=tenant.user(role))
            assert error_codes(refused) == ["FORBIDDEN"], (mutation, role)
    for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
        for query in ("{ partnerGroups { edges { node { id } } } }",
                      f'{{ partnerGroup(id: "{group["id"]}") {{ id }} }}'):  # fmt: skip
            assert error_codes(await gql(query, as_user=tenant.user(role))) == ["FORBIDDEN"]
        # Their own partner's groups are not theirs to see either.
        own = await gql(
            "query($id: ID!) { partner(id: $id) { name groups { name } } }",
            {"id": gid(tenant.partners[0])}, as_user=tenant.user(role),
        )  # fmt: skip
        assert own["data"]["partner"]["groups"] is None
        assert error_codes(own) == ["FORBIDDEN"]
        node = await gql(
            "query($id: ID!) { node(id: $id) { id } }", {"id": group["id"]},
            as_user=tenant.user(role),
        )  # fmt: skip
        assert node["data"]["node"] is None
    # A channel manager reads the group, but only its assigned partner among the members.
    assert await member_names(gql, tenant, group["id"], role=Role.CHANNEL_MANAGER) == [
        tenant.partners[0].name
    ]
    # The other vendor: the group does not exist for it, and its admin cannot touch it.
    assert await member_names(gql, other_tenant, group["id"]) is None
    other_admin = other_tenant.user(Role.VENDOR_ADMIN)
    for mutation, input in writes[1:5]:
        data = await gql.data(mutation, {"input": input}, as_user=other_admin)
        [result] = data.values()
        assert result["userErrors"][0]["code"] == "NOT_FOUND", mutation
    # Nor can a vendor add another vendor's partner to its own group.
    mine = (await create(gql, other_tenant, name="Mine"))["partnerGroup"]
    foreign = {"id": mine["id"], "partnerIds": [gid(tenant.partners[0])]}
    data = await gql.data(ADD, {"input": foreign}, as_user=other_admin)
    assert data["partnerGroupMembersAdd"]["userErrors"] == [
        {"code": "NOT_FOUND", "field": "partnerIds.0"}
    ]
    tier = await gql.data(TIER, {"input": writes[5][1]}, as_user=other_admin)
    assert tier["partnerTierSet"]["userErrors"] == [{"code": "NOT_FOUND", "field": "partnerId"}]
    assert (await counts(db))[1:] == before[1:]


async def test_a_program_tier_change_is_kept_and_moves_rule_memberships(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    premier = await create(
        gql,
        tenant,
        name="Premier partners",
        rule=[{"attribute": "tier", "op": "EQ", "values": ["premier"]}],
    )
    group_id = premier["partnerGroup"]["id"]
    assert await member_names(gql, tenant, group_id) == []
    admin = tenant.user(Role.VENDOR_ADMIN)
    input = {"partnerId": gid(tenant.partners[0]), "tier": "premier", "reason": "Q3 target met"}
    data = await gql.data(TIER, {"input": input}, as_user=admin)
    assert data["partnerTierSet"] == {
        "partner": {"programTier": "PREMIER", "tier": "PREMIER", "programTierHistory": [
            {"fromTier": "REGISTERED", "toTier": "PREMIER", "reason": "Q3 target met"}
        ]},
        "userErrors": [],
    }  # fmt: skip
    assert await member_names(gql, tenant, group_id) == [tenant.partners[0].name]
    before = await counts(db)
    for bad, errors in [
        ({"tier": "PREMIER"}, [("UNCHANGED", "tier")]),
        ({"tier": "no spaces"}, [("INVALID_TIER", "tier")]),
        ({"tier": "SELECT", "reason": " "}, [("REQUIRED", "reason")]),
    ]:
        data = await gql.data(TIER, {"input": {**input, **bad}}, as_user=admin)
        result = data["partnerTierSet"]
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == errors
    assert await counts(db) == before


async def test_group_and_tier_changes_are_audited(gql: GQL, tenant: Tenant, db: Database) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    group = (await create(gql, tenant, name="Pilot", rule=EMEA))["partnerGroup"]
    ids = {"id": group["id"], "partnerIds": [gid(tenant.partners[1])], "reason": "not yet"}
    await gql.data(REMOVE, {"input": ids}, as_user=admin)
    await gql.data(UPDATE, {"input": {"id": group["id"], "name": "Pilot 2"}}, as_user=admin)
    await gql.data(DELETE, {"input": {"id": group["id"], "reason": "done"}}, as_user=admin)
    tier = {"partnerId": gid(tenant.partners[0]), "tier": "SELECT", "reason": "signed"}
    await gql.data(TIER, {"input": tier}, as_user=admin)
    async with db.session() as session:
        rows = list(await session.exec(select(AuditEntry).order_by(AuditEntry.at, AuditEntry.id)))
    actor = f"user:{admin.id}"
    assert [(e.action, e.actor, e.reason) for e in rows] == [
        ("partner_group.created", actor, None),
        ("partner_group.members_removed", actor, "not yet"),
        ("partner_group.updated", actor, None),
        ("partner_group.archived", actor, "done"),
        ("partner.tier_changed", actor, "signed"),
    ]
    assert (rows[2].before, rows[2].after) == ({"name": "Pilot"}, {"name": "Pilot 2"})
    assert (rows[4].before, rows[4].after) == ({"tier": "REGISTERED"}, {"tier": "SELECT"})


async def test_a_new_partner_joins_the_rule_groups_it_matches(
    gql: GQL, tenant: Tenant, db: Database, clock: OffsetClock
) -> None:
    group = (await create(gql, tenant, name="EMEA", rule=EMEA))["partnerGroup"]
    async with db.transaction() as session:
        await service.create_partner(
            session, clock, vendor_id=tenant.vendor.id, name="Newcomer", region="EMEA"
        )
        await service.create_partner(
            session, clock, vendor_id=tenant.vendor.id, name="Faraway", region="APAC"
        )
    names = await member_names(gql, tenant, group["id"])
    assert names is not None
    assert "Newcomer" in names
    assert "Faraway" not in names
