"""The visibility matrix: every role of two vendors against me, partners, partner(id),
node(id) and users. Each sees exactly its share and nothing of the other vendor."""

from __future__ import annotations

import json

import pytest

from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, error_codes

ROLES = [
    Role.VENDOR_ADMIN,
    Role.CHANNEL_MANAGER,
    Role.FINANCE,
    Role.PARTNER_ADMIN,
    Role.PARTNER_REP,
]


def visible_partner_indexes(role: Role) -> set[int]:
    return {
        Role.VENDOR_ADMIN: {0, 1},
        Role.FINANCE: {0, 1},
        Role.CHANNEL_MANAGER: {0},  # assigned to partner 0 only
        Role.PARTNER_ADMIN: {0},
        Role.PARTNER_REP: {0},
    }[role]


def visible_user_emails(tenant: Tenant, role: Role) -> set[str]:
    me = tenant.user(role)
    if role is Role.VENDOR_ADMIN:
        return {u.email for u in tenant.users.values()}
    if role is Role.PARTNER_ADMIN:
        return {u.email for u in tenant.users.values() if u.partner_id == me.partner_id}
    return {me.email}


@pytest.mark.parametrize("role", ROLES)
async def test_me(gql: GQL, tenant: Tenant, role: Role) -> None:
    user = tenant.user(role)
    data = await gql.data(
        "{ me { role user { email } vendor { name } partner { name } } }", as_user=user
    )
    assert data["me"] == {
        "role": role.value,
        "user": {"email": user.email},
        "vendor": {"name": tenant.vendor.name},
        "partner": {"name": tenant.partners[0].name} if role.is_partner else None,
    }


@pytest.mark.parametrize("role", ROLES)
async def test_partners_list(gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role) -> None:
    data = await gql.data(
        "{ partners { totalCount edges { node { name } } } }", as_user=tenant.user(role)
    )
    expected = {tenant.partners[i].name for i in visible_partner_indexes(role)}
    names = {e["node"]["name"] for e in data["partners"]["edges"]}
    assert names == expected
    assert data["partners"]["totalCount"] == len(expected)
    assert not any(p.name in json.dumps(data) for p in other_tenant.partners)


@pytest.mark.parametrize("role", ROLES)
async def test_partner_and_node_by_id(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role
) -> None:
    user = tenant.user(role)
    query = """query($id: ID!) { partner(id: $id) { name }
                 node(id: $id) { ... on Partner { name } } }"""
    for owner in (tenant, other_tenant):
        for index, partner in enumerate(owner.partners):
            node_id = gid("Partner", partner.id)
            payload = await gql(query, {"id": node_id}, as_user=user)
            assert "errors" not in payload, payload
            visible = owner is tenant and index in visible_partner_indexes(role)
            expected = {"name": partner.name} if visible else None
            assert payload["data"] == {"partner": expected, "node": expected}


@pytest.mark.parametrize("role", ROLES)
async def test_user_nodes(gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role) -> None:
    me = tenant.user(role)
    allowed = visible_user_emails(tenant, role)
    query = "query($id: ID!) { node(id: $id) { ... on User { email } } }"
    for owner in (tenant, other_tenant):
        for user in owner.users.values():
            node_id = gid("User", user.id)
            data = await gql.data(query, {"id": node_id}, as_user=me)
            expected = {"email": user.email} if user.email in allowed else None
            assert data["node"] == expected, (role, user.email)


@pytest.mark.parametrize("role", ROLES)
async def test_users_list(gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role) -> None:
    payload = await gql(
        "{ users { totalCount edges { node { email role } } } }", as_user=tenant.user(role)
    )
    if role not in (Role.VENDOR_ADMIN, Role.PARTNER_ADMIN):
        assert error_codes(payload) == ["FORBIDDEN"]
        assert payload["data"] == {"users": None}
        return
    emails = {e["node"]["email"] for e in payload["data"]["users"]["edges"]}
    assert emails == visible_user_emails(tenant, role)
    assert payload["data"]["users"]["totalCount"] == len(emails)
    assert not any(u.email in json.dumps(payload) for u in other_tenant.users.values())


@pytest.mark.parametrize("role", ROLES)
async def test_internal_notes_are_for_vendor_roles_only(
    gql: GQL, tenant: Tenant, role: Role
) -> None:
    payload = await gql(
        "{ partners { edges { node { name internalNotes } } } }", as_user=tenant.user(role)
    )
    if role.is_vendor_staff:
        notes = {e["node"]["internalNotes"] for e in payload["data"]["partners"]["edges"]}
        assert notes == {tenant.partners[i].internal_notes for i in visible_partner_indexes(role)}
    else:
        assert set(error_codes(payload)) == {"FORBIDDEN"}
        assert tenant.partners[0].internal_notes not in json.dumps(payload)
        assert tenant.partners[1].internal_notes not in json.dumps(payload)


async def test_malformed_and_foreign_ids_are_answered_like_missing_ones(
    gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    foreign = gid("Partner", other_tenant.partners[0].id)
    missing = gid("Partner", tenant.vendor.id)  # a uuid that is no partner
    query = "query($id: ID!) { partner(id: $id) { name } node(id: $id) { id } }"
    answers = []
    for node_id in (foreign, missing, "not-base64!", gid("Nope", tenant.vendor.id)):
        answers.append(await gql(query, {"id": node_id}, as_user=admin))
    assert all(a == {"data": {"partner": None, "node": None}} for a in answers), answers


async def test_products_hide_margins_from_partners(gql: GQL, tenant: Tenant) -> None:
    upsert = await gql.data(
        """mutation { productUpsert(input: {sku: "sku-1", name: "Widget",
             listPrice: {amount: "1299.00", currency: "USD"}, marginRateBp: 3500}) {
             product { sku marginRateBp listPrice { amountMinor formatted } }
             userErrors { code } } }""",
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    assert upsert["productUpsert"]["product"] == {
        "sku": "SKU-1",
        "marginRateBp": 3500,
        "listPrice": {"amountMinor": 129900, "formatted": "1,299.00 USD"},
    }
    rep = await gql("{ products { edges { node { sku marginRateBp } } } }",
                    as_user=tenant.user(Role.PARTNER_REP))  # fmt: skip
    assert error_codes(rep) == ["FORBIDDEN"]
    assert "3500" not in json.dumps(rep)
    plain = await gql.data(
        '{ product(sku: "sku-1") { name listPrice { amount } } }',
        as_user=tenant.user(Role.PARTNER_REP),
    )
    assert plain == {"product": {"name": "Widget", "listPrice": {"amount": "1299.00"}}}


async def test_product_upsert_reports_every_bad_field_and_changes_nothing(
    gql: GQL, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    bad = await gql.data(
        """mutation { productUpsert(input: {sku: "bad sku!", name: "",
             listPrice: {amount: "-1.00", currency: "usd1"}, marginRateBp: 20000}) {
             product { sku } userErrors { field code } } }""",
        as_user=admin,
    )
    assert bad["productUpsert"]["product"] is None
    assert {(e["field"], e["code"]) for e in bad["productUpsert"]["userErrors"]} == {
        ("sku", "INVALID_SKU"),
        ("name", "REQUIRED"),
        ("listPrice.amount", "INVALID_PRICE"),
        ("listPrice.currency", "INVALID_CURRENCY"),
        ("marginRateBp", "INVALID_MARGIN"),
    }
    too_precise = await gql.data(
        """mutation { productUpsert(input: {sku: "A1", name: "A",
             listPrice: {amount: "1.005", currency: "USD"}}) { userErrors { field code } } }""",
        as_user=admin,
    )
    assert too_precise["productUpsert"]["userErrors"] == [
        {"field": "listPrice.amount", "code": "INVALID_PRICE"}
    ]
    listed = await gql.data("{ products { totalCount } }", as_user=admin)
    assert listed["products"]["totalCount"] == 0
    denied = await gql(
        """mutation { productUpsert(input: {sku: "A1", name: "A",
             listPrice: {amount: "1.00", currency: "USD"}}) { userErrors { code } } }""",
        as_user=tenant.user(Role.CHANNEL_MANAGER),
    )
    assert error_codes(denied) == ["FORBIDDEN"]


# --- Users' administration (issue 12, item 3): every role against every user of both
# vendors. Non-admins are forbidden; an admin finds exactly the users it may list (others,
# the other vendor's included, are NOT_FOUND), and nothing it may not touch changes.
USER_MUTATIONS = [
    ("userDeactivate", "mutation($id: ID!) { userDeactivate(input: {id: $id}) "
                       "{ user { id } userErrors { code } } }"),
    ("userRoleChange", "mutation($id: ID!) { userRoleChange(input: {id: $id, role: PARTNER_REP})"
                       " { user { id } userErrors { code } } }"),
]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("field", "mutation"), USER_MUTATIONS, ids=[m[0] for m in USER_MUTATIONS])
async def test_user_mutations_reach_only_the_users_an_admin_may_list(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role, field: str, mutation: str
) -> None:
    caller = tenant.user(role)
    listed = visible_user_emails(tenant, role)
    for target in [*tenant.users.values(), *other_tenant.users.values()]:
        payload = await gql(mutation, {"id": gid(target)}, as_user=caller)
        if role not in (Role.VENDOR_ADMIN, Role.PARTNER_ADMIN):
            assert error_codes(payload) == ["FORBIDDEN"], target.email
            continue
        codes = [e["code"] for e in payload["data"][field]["userErrors"]]
        if target.email not in listed:
            assert codes == ["NOT_FOUND"], target.email
        else:  # its own: refused for a reason of its own, never NOT_FOUND
            assert "NOT_FOUND" not in codes, target.email
    after = await gql.data(
        "{ users(first: 100) { edges { node { email role active } } } }",
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )
    assert all(
        e["node"]["active"] and e["node"]["role"] == other_tenant_role(other_tenant, e["node"])
        for e in after["users"]["edges"]
    )


def other_tenant_role(tenant: Tenant, node: dict[str, str]) -> str:
    return next(u.role.value for u in tenant.users.values() if u.email == node["email"])


# --- partner administration (issue 12): the new Partner fields and application nodes ---
@pytest.mark.parametrize("role", ROLES)
async def test_partner_admin_fields_by_role(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(
        """mutation($input: PartnerUpdateInput!) { partnerUpdate(input: $input) {
          userErrors { code } } }""",
        {"input": {"id": gid(tenant.partners[0]), "tags": ["gold-club"], "externalRef": "R-1",
                   "contacts": [{"name": "Ann", "email": "ann@p.example"}]}},
        as_user=admin,
    )  # fmt: skip
    payload = await gql(
        """{ partners { edges { node { name tags contacts { email } externalRef statusReason
             managers { email } } } } }""",
        as_user=tenant.user(role),
    )
    [node] = [
        e["node"]
        for e in payload["data"]["partners"]["edges"]
        if e["node"]["name"] == tenant.partners[0].name
    ]
    assert node["tags"] == ["gold-club"]
    assert node["contacts"] == [{"email": "ann@p.example"}]
    assert node["externalRef"] == ("R-1" if role.is_vendor_staff else None)
    if role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER):
        assert node["managers"] == [{"email": tenant.user(Role.CHANNEL_MANAGER).email}]
    else:
        assert node["managers"] is None
    # Nothing of the other vendor, whatever the filter.
    other = await gql.data(
        """query($f: PartnerFilter) { partners(filter: $f) { totalCount } }""",
        {"f": {"includeArchived": True, "tag": "gold-club"}},
        as_user=other_tenant.user(role),
    )
    assert other["partners"]["totalCount"] == 0


@pytest.mark.parametrize("role", ROLES)
async def test_application_nodes_stay_in_their_vendor(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role
) -> None:
    applied = await gql.data(
        """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) { reference } }""",
        {"input": {"vendorSlug": tenant.vendor.slug, "company": "Hooli", "contactName": "G",
                   "contactEmail": f"g-{role.value.lower()}@hooli.example", "country": "US"}},
    )  # fmt: skip
    assert applied["partnerApply"]["reference"]
    listed = await gql.data(
        "{ partnerApplications { edges { node { id } } } }", as_user=tenant.user(Role.VENDOR_ADMIN)
    )
    [edge] = listed["partnerApplications"]["edges"]
    node_id = edge["node"]["id"]
    query = "query($id: ID!) { node(id: $id) { id } }"
    mine = await gql.data(query, {"id": node_id}, as_user=tenant.user(role))
    expected = node_id if role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER) else None
    assert (mine["node"] or {}).get("id") == expected
    theirs = await gql.data(query, {"id": node_id}, as_user=other_tenant.user(role))
    assert theirs["node"] is None


# --- Invitations (issue 12, item 2) ---------------------------------------------------


async def _invite_everywhere(gql: GQL, tenant: Tenant) -> dict[str, str]:
    """One vendor-staff invitation and one per partner; their ids by who may see them."""
    create = """mutation($input: InvitationCreateInput!) {
      invitationCreate(input: $input) { invitation { id } userErrors { code } } }"""
    ids = {}
    for key, user, fields in (
        ("vendor", tenant.user(Role.VENDOR_ADMIN), {"role": "FINANCE"}),
        ("p0", tenant.user(Role.PARTNER_ADMIN, 0), {"role": "PARTNER_REP"}),
        ("p1", tenant.user(Role.PARTNER_ADMIN, 1), {"role": "PARTNER_REP"}),
    ):
        fields["email"] = f"{key}-{tenant.vendor.slug}@invited.example"
        data = await gql.data(create, {"input": fields}, as_user=user)
        ids[key] = data["invitationCreate"]["invitation"]["id"]
    return ids


@pytest.mark.parametrize("role", ROLES)
async def test_invitations_list_and_nodes(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role
) -> None:
    mine = await _invite_everywhere(gql, tenant)
    theirs = await _invite_everywhere(gql, other_tenant)
    visible = {
        Role.VENDOR_ADMIN: {"vendor", "p0", "p1"},
        Role.PARTNER_ADMIN: {"p0"},
    }.get(role, set())
    user = tenant.user(role)
    payload = await gql("{ invitations { totalCount edges { node { id } } } }", as_user=user)
    if visible:
        listed = {e["node"]["id"] for e in payload["data"]["invitations"]["edges"]}
        assert listed == {mine[k] for k in visible}
    else:
        assert error_codes(payload) == ["FORBIDDEN"]
    for key, invitation_id in [*mine.items(), *(("other", i) for i in theirs.values())]:
        data = await gql.data(
            "query($id: ID!) { node(id: $id) { id } }", {"id": invitation_id}, as_user=user
        )
        assert (data["node"] is not None) == (key in visible), (role, key)


# --- partner groups (issue 12, item 7) ---


@pytest.mark.parametrize("role", ROLES)
async def test_partner_groups_by_role_and_vendor(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, role: Role
) -> None:
    """Vendor staff list their vendor's groups (members: the partners they may see);
    partner roles are refused; the other vendor's groups are never listed nor found."""
    create = """mutation($input: PartnerGroupCreateInput!) {
      partnerGroupCreate(input: $input) { partnerGroup { id } } }"""
    rule = [{"attribute": "region", "op": "IN", "values": ["EMEA"]}]
    for t, name in ((tenant, "Mine"), (other_tenant, "Theirs")):
        await gql.data(
            create, {"input": {"name": name, "rule": rule}}, as_user=t.user(Role.VENDOR_ADMIN)
        )
    query = "{ partnerGroups { edges { node { id name members { edges { node { name } } } } } } }"
    payload = await gql(query, as_user=tenant.user(role))
    if role.is_partner:
        assert error_codes(payload) == ["FORBIDDEN"]
        return
    [edge] = payload["data"]["partnerGroups"]["edges"]
    assert edge["node"]["name"] == "Mine"
    names = {e["node"]["name"] for e in edge["node"]["members"]["edges"]}
    assert names == {tenant.partners[i].name for i in visible_partner_indexes(role)}
    theirs = await gql.data(
        "{ partnerGroups { edges { node { id } } } }", as_user=other_tenant.user(Role.FINANCE)
    )
    [their_edge] = theirs["partnerGroups"]["edges"]
    found = await gql.data(
        "query($id: ID!) { partnerGroup(id: $id) { id } node(id: $id) { id } }",
        {"id": their_edge["node"]["id"]}, as_user=tenant.user(role),
    )  # fmt: skip
    assert found == {"partnerGroup": None, "node": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("query($t: String!) { partners(filter: {search: $t}) { totalCount } }", "filter.search"),
        ("query($t: String!) { partners(filter: {tag: $t}) { totalCount } }", "filter.tag"),
        ("query($t: String!) { products(search: $t) { totalCount } }", "search"),
    ],
    ids=["partners-search", "partners-tag", "products-search"],
)
async def test_a_search_term_longer_than_any_searched_text_is_refused(
    gql: GQL, tenant: Tenant, query: str, field: str
) -> None:
    """A term went into a LIKE pattern at any length: SQLite refuses one over 50,000 bytes,
    an INTERNAL_SERVER_ERROR (found by a hand-made fuzz campaign of 100,000-character
    strings). No searched column holds more than 255 characters."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    longest = await gql(query, {"t": "x" * 256}, as_user=admin)
    assert "errors" not in longest, longest
    assert next(iter(longest["data"].values())) == {"totalCount": 0}
    refused = await gql(query, {"t": "x" * 60_000}, as_user=admin)
    assert error_codes(refused) == ["SEARCH_TOO_LONG"], refused
    assert refused["errors"][0]["extensions"]["field"] == field
    assert "256" in refused["errors"][0]["message"]
