"""Partner groups follow partner administration: partnerCreate, partnerUpdate and
partnersImport re-evaluate the rule memberships of the partners they create or change (in
their own transaction), so a rule on country, tags or region sees the new attributes at once."""

from __future__ import annotations

from typing import Any

from partners.roles import Role
from tests.factories import Tenant, gid
from tests.partners.test_groups import create, member_names
from tests.partners.test_partner_import import HEADER, _upload
from tests.support import GQL

PARTNER_CREATE = """mutation($input: PartnerCreateInput!) { partnerCreate(input: $input) {
  partner { id name } userErrors { code field } } }"""
PARTNER_UPDATE = """mutation($input: PartnerUpdateInput!) { partnerUpdate(input: $input) {
  partner { id name } userErrors { code field } } }"""
GERMANY = [{"attribute": "country", "op": "IN", "values": ["DE"]}]


async def _ok(gql: GQL, tenant: Tenant, query: str, input: dict[str, Any]) -> dict[str, Any]:
    data = await gql.data(query, {"input": input}, as_user=tenant.user(Role.VENDOR_ADMIN))
    [payload] = data.values()
    assert payload["userErrors"] == []
    result: dict[str, Any] = payload["partner"]
    return result


async def test_a_country_rule_group_follows_partner_create_update_and_import(
    gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = await create(gql, tenant, name="Germany", rule=GERMANY)
    assert made["userErrors"] == []
    group_id = made["partnerGroup"]["id"]
    assert await member_names(gql, tenant, group_id) == []

    # Created through GraphQL with a matching country: in the group at once.
    await _ok(gql, tenant, PARTNER_CREATE, {"name": "Initrode GmbH", "region": "EMEA",
                                            "country": "de"})  # fmt: skip
    assert await member_names(gql, tenant, group_id) == ["Initrode GmbH"]
    # A partner created elsewhere (the other vendor) never joins.
    await _ok(gql, other_tenant, PARTNER_CREATE, {"name": "Other GmbH", "region": "EMEA",
                                                  "country": "DE"})  # fmt: skip
    assert await member_names(gql, tenant, group_id) == ["Initrode GmbH"]

    # Updated into the rule: joins; updated out of it: leaves.
    existing = tenant.partners[0]
    await _ok(gql, tenant, PARTNER_UPDATE, {"id": gid(existing), "country": "DE"})
    assert sorted(await member_names(gql, tenant, group_id) or []) == sorted(
        ["Initrode GmbH", existing.name]
    )
    await _ok(gql, tenant, PARTNER_UPDATE, {"id": gid(existing), "country": "FR"})
    assert await member_names(gql, tenant, group_id) == ["Initrode GmbH"]

    # Imported: a new German partner joins, and a re-import moving Initrode to Austria
    # takes it out.
    csv = f"{HEADER}\n,Gamma GmbH,,EMEA,DE,,,\n,Initrode GmbH,,EMEA,AT,,,\n"
    result = await _upload(gql, csv.encode(), tenant.user(Role.VENDOR_ADMIN))
    assert result["data"]["partnersImport"]["result"]["applied"] is True
    assert await member_names(gql, tenant, group_id) == ["Gamma GmbH"]
