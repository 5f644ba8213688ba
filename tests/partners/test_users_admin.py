"""Users' administration over GraphQL: userRoleChange, userDeactivate, userReactivate - who may
act on whom, bad input, the last admin (also under concurrency), and that a change is
effective at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError
from partners import service as partners_service
from partners import users
from partners.errors import UserAccountErrorCode
from partners.models import User
from partners.roles import Role
from tests.factories import Tenant, blocked_on_a_lock, gid, principal_of
from tests.support import GQL, error_codes

ROLE = """mutation($id: ID!, $role: Role!) {
  userRoleChange(input: {id: $id, role: $role, reason: "reorg"}) {
    user { id role active } userErrors { field code } } }"""
DEACTIVATE = """mutation($id: ID!) {
  userDeactivate(input: {id: $id}) { user { id active } userErrors { field code } } }"""
REACTIVATE = """mutation($id: ID!) {
  userReactivate(input: {id: $id}) { user { id active } userErrors { field code } } }"""
ME = "{ me { role } }"


async def stored(db: Database, user: User) -> User:
    async with db.session() as session:
        row = await session.get(User, user.id)
        assert row is not None
        return row


async def add_user(
    db: Database, clock: OffsetClock, tenant: Tenant, role: Role, partner: int | None = None
) -> User:
    partner_id = tenant.partners[partner].id if partner is not None else None
    async with db.transaction() as session:
        return await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, partner_id=partner_id,
            email=f"extra-{role.value.lower()}-{id(object())}@{tenant.vendor.slug}.example",
            role=role, display_name="Extra",
        )  # fmt: skip


def errors(payload: dict[str, Any], field: str) -> list[str]:
    return [e["code"] for e in payload["data"][field]["userErrors"]]


async def test_a_vendor_admin_changes_any_users_role_and_it_applies_at_once(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP, 1)
    rep_token = gql.token(rep)
    assert (await gql.data(ME, as_user=rep))["me"]["role"] == "PARTNER_REP"
    result = await gql.data(ROLE, {"id": gid(rep), "role": "PARTNER_ADMIN"}, as_user=admin)
    assert result["userRoleChange"] == {
        "user": {"id": gid("User", rep.id), "role": "PARTNER_ADMIN", "active": True},
        "userErrors": [],
    }
    # The same token now acts with the new role (no stale cached principal).
    assert (await gql(ME, token=rep_token))["data"]["me"]["role"] == "PARTNER_ADMIN"
    manager = tenant.user(Role.CHANNEL_MANAGER)
    result = await gql.data(ROLE, {"id": gid(manager), "role": "FINANCE"}, as_user=admin)
    assert result["userRoleChange"]["user"]["role"] == "FINANCE"


async def test_deactivate_refuses_the_users_token_at_once_and_reactivate_restores_it(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin, rep = tenant.user(Role.PARTNER_ADMIN), tenant.user(Role.PARTNER_REP)
    token = gql.token(rep)
    assert (await gql(ME, token=token))["data"]["me"]["role"] == "PARTNER_REP"
    result = await gql.data(DEACTIVATE, {"id": gid(rep)}, as_user=admin)
    assert result["userDeactivate"] == {"user": {"id": gid(rep), "active": False}, "userErrors": []}
    refused = await gql(ME, token=token)
    assert refused["errors"][0]["extensions"]["reason"] == "USER_DEACTIVATED"
    again = await gql(DEACTIVATE, {"id": gid(rep)}, as_user=admin)
    assert errors(again, "userDeactivate") == ["ALREADY_INACTIVE"]
    result = await gql.data(REACTIVATE, {"id": gid(rep)}, as_user=admin)
    assert result["userReactivate"]["user"]["active"] is True
    assert (await gql(ME, token=token))["data"]["me"]["role"] == "PARTNER_REP"
    again = await gql(REACTIVATE, {"id": gid(rep)}, as_user=admin)
    assert errors(again, "userReactivate") == ["ALREADY_ACTIVE"]


@pytest.mark.parametrize("role", [Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_REP])
async def test_other_roles_are_forbidden_and_change_nothing(
    gql: GQL, db: Database, tenant: Tenant, role: Role
) -> None:
    target = tenant.user(Role.PARTNER_REP, 1)
    for query, variables in (
        (ROLE, {"id": gid(target), "role": "PARTNER_ADMIN"}),
        (DEACTIVATE, {"id": gid(target)}),
        (REACTIVATE, {"id": gid(target)}),
    ):
        payload = await gql(query, variables, as_user=tenant.user(role))
        assert error_codes(payload) == ["FORBIDDEN"]
    row = await stored(db, target)
    assert (row.role, row.active) == (Role.PARTNER_REP, True)


async def test_anonymous_callers_are_refused(gql: GQL, tenant: Tenant) -> None:
    payload = await gql(DEACTIVATE, {"id": gid(tenant.user(Role.PARTNER_REP))})
    assert error_codes(payload) == ["UNAUTHENTICATED"]


async def test_another_partners_or_vendors_users_are_not_found(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    partner_admin, vendor_admin = tenant.user(Role.PARTNER_ADMIN, 0), tenant.user(Role.VENDOR_ADMIN)
    other_partners_rep = tenant.user(Role.PARTNER_REP, 1)
    other_vendors_rep = other_tenant.user(Role.PARTNER_REP)
    vendor_staff = tenant.user(Role.FINANCE)
    for caller, target in (
        (partner_admin, other_partners_rep),
        (partner_admin, vendor_staff),
        (partner_admin, other_vendors_rep),
        (vendor_admin, other_vendors_rep),
    ):
        for query, field, variables in (
            (ROLE, "userRoleChange", {"id": gid(target), "role": "PARTNER_ADMIN"}),
            (DEACTIVATE, "userDeactivate", {"id": gid(target)}),
        ):
            payload = await gql(query, variables, as_user=caller)
            assert payload["data"][field] == {
                "user": None, "userErrors": [{"field": "id", "code": "NOT_FOUND"}]
            }  # fmt: skip
        row = await stored(db, target)
        assert (row.role, row.active) == (target.role, True)
    # A malformed or wrongly typed id reads as a missing user.
    for bad in ("nonsense", gid(tenant.partners[0])):
        payload = await gql(DEACTIVATE, {"id": bad}, as_user=vendor_admin)
        assert errors(payload, "userDeactivate") == ["NOT_FOUND"]


async def test_roles_must_fit_the_user_and_partner_admins_cannot_make_vendor_staff(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    vendor_admin, partner_admin = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_ADMIN)
    rep, finance = tenant.user(Role.PARTNER_REP), tenant.user(Role.FINANCE)
    for caller, target, role in (
        (partner_admin, rep, "VENDOR_ADMIN"),
        (partner_admin, rep, "FINANCE"),
        (vendor_admin, rep, "CHANNEL_MANAGER"),
        (vendor_admin, finance, "PARTNER_REP"),
    ):
        payload = await gql(ROLE, {"id": gid(target), "role": role}, as_user=caller)
        assert payload["data"]["userRoleChange"]["userErrors"] == [
            {"field": "role", "code": "INVALID_ROLE"}
        ]
    assert (await stored(db, rep)).role is Role.PARTNER_REP
    assert (await stored(db, finance)).role is Role.FINANCE


async def test_nobody_changes_or_deactivates_itself(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await add_user(db, clock, tenant, Role.VENDOR_ADMIN)  # not the last admin either
    admin = tenant.user(Role.VENDOR_ADMIN)
    payload = await gql(ROLE, {"id": gid(admin), "role": "FINANCE"}, as_user=admin)
    assert errors(payload, "userRoleChange") == ["SELF_CHANGE"]
    payload = await gql(DEACTIVATE, {"id": gid(admin)}, as_user=admin)
    assert errors(payload, "userDeactivate") == ["SELF_CHANGE"]
    row = await stored(db, admin)
    assert (row.role, row.active) == (Role.VENDOR_ADMIN, True)


async def test_the_last_active_admin_of_a_vendor_or_partner_stays(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    # A vendor's last admin, acted on by an API key (the only principal that is not itself).
    created = await gql.data(
        'mutation { apiKeyCreate(input: {name: "ops", role: VENDOR_ADMIN}) { secret } }',
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    key = created["apiKeyCreate"]["secret"]
    admin = tenant.user(Role.VENDOR_ADMIN)
    for query, field, variables in (
        (ROLE, "userRoleChange", {"id": gid(admin), "role": "FINANCE"}),
        (DEACTIVATE, "userDeactivate", {"id": gid(admin)}),
    ):
        assert errors(await gql(query, variables, token=key), field) == ["LAST_ADMIN"]
    assert (await stored(db, admin)).role is Role.VENDOR_ADMIN
    # A partner's last admin (another partner's admins do not count).
    partner_admin = tenant.user(Role.PARTNER_ADMIN, 0)
    for query, field, variables in (
        (ROLE, "userRoleChange", {"id": gid(partner_admin), "role": "PARTNER_REP"}),
        (DEACTIVATE, "userDeactivate", {"id": gid(partner_admin)}),
    ):
        assert errors(await gql(query, variables, as_user=admin), field) == ["LAST_ADMIN"]
    # An inactive second admin does not count; an active one does.
    second = await add_user(db, clock, tenant, Role.PARTNER_ADMIN, partner=0)
    await gql.data(DEACTIVATE, {"id": gid(second)}, as_user=admin)
    assert errors(await gql(DEACTIVATE, {"id": gid(partner_admin)}, as_user=admin),
                  "userDeactivate") == ["LAST_ADMIN"]  # fmt: skip
    await gql.data(REACTIVATE, {"id": gid(second)}, as_user=admin)
    result = await gql.data(DEACTIVATE, {"id": gid(partner_admin)}, as_user=admin)
    assert result["userDeactivate"]["userErrors"] == []


@pytest.mark.parametrize("role", [Role.VENDOR_ADMIN, Role.PARTNER_ADMIN])
async def test_two_admins_demoting_each_other_at_once_leave_one(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, role: Role
) -> None:
    first = tenant.user(role)
    second = await add_user(db, clock, tenant, role, partner=0 if role.is_partner else None)
    demoted = "FINANCE" if role is Role.VENDOR_ADMIN else "PARTNER_REP"
    tokens = [gql.token(first), gql.token(second)]
    for token in tokens:  # authenticated (and cached) before either change begins
        assert (await gql(ME, token=token))["data"]["me"]["role"] == role.value
    results = await asyncio.gather(
        gql(ROLE, {"id": gid(second), "role": demoted}, token=tokens[0]),
        gql(ROLE, {"id": gid(first), "role": demoted}, token=tokens[1]),
    )
    # One wins; the other finds itself the last admin (or, had it started after the
    # winner committed, already demoted: FORBIDDEN). Never both.
    outcomes = sorted(
        ("FORBIDDEN",) if r["data"] is None else tuple(errors(r, "userRoleChange")) for r in results
    )
    assert outcomes in ([(), ("LAST_ADMIN",)], [(), ("FORBIDDEN",)])
    roles = [(await stored(db, u)).role for u in (first, second)]
    assert sorted(roles) == sorted([role, Role(demoted)])


async def test_a_too_long_reason_is_refused(gql: GQL, db: Database, tenant: Tenant) -> None:
    rep = tenant.user(Role.PARTNER_REP)
    payload = await gql(
        """mutation($id: ID!, $r: String) { userDeactivate(input: {id: $id, reason: $r}) {
             userErrors { field code } } }""",
        {"id": gid(rep), "r": "x" * 501},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )
    assert payload["data"]["userDeactivate"]["userErrors"] == [
        {"field": "reason", "code": "TOO_LONG"}
    ]
    assert (await stored(db, rep)).active


async def test_users_filters_by_role_and_active(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    await gql.data(DEACTIVATE, {"id": gid(tenant.user(Role.PARTNER_REP, 1))}, as_user=admin)
    query = """query($f: UserFilter) { users(first: 50, filter: $f) {
                 edges { node { email role active } } } }"""

    async def emails(caller: User, **f: Any) -> set[str]:
        data = await gql.data(query, {"f": f}, as_user=caller)
        return {e["node"]["email"] for e in data["users"]["edges"]}

    reps = await emails(admin, role="PARTNER_REP")
    assert reps == {tenant.user(Role.PARTNER_REP, i).email for i in (0, 1)}
    inactive = await emails(admin, active=False)
    assert inactive == {tenant.user(Role.PARTNER_REP, 1).email}
    assert await emails(admin, role="PARTNER_REP", active=True) == {
        tenant.user(Role.PARTNER_REP, 0).email
    }
    # A partner admin's filter stays within its organisation.
    assert await emails(tenant.user(Role.PARTNER_ADMIN, 1), role="PARTNER_REP") == {
        tenant.user(Role.PARTNER_REP, 1).email
    }


async def test_a_second_demotion_waits_for_the_first_and_finds_the_last_admin(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """The service under two transactions: the second (its caller authenticated before the
    first demoted it) waits for the vendor's row lock and then counts the admins afresh."""
    first = tenant.user(Role.VENDOR_ADMIN)
    second = await add_user(db, clock, tenant, Role.VENDOR_ADMIN)

    async def demote_first() -> None:
        async with db.transaction() as session:
            await users.change_role(
                session, principal_of(second), clock, user_id=first.id, role=Role.FINANCE
            )

    async with db.transaction() as session:
        await users.change_role(
            session, principal_of(first), clock, user_id=second.id, role=Role.FINANCE
        )
        task = asyncio.create_task(demote_first())
        await blocked_on_a_lock(session, task)
    with pytest.raises(DomainError) as refused:
        await task
    assert refused.value.code is UserAccountErrorCode.LAST_ADMIN
    assert [(await stored(db, u)).role for u in (first, second)] == [
        Role.VENDOR_ADMIN, Role.FINANCE
    ]  # fmt: skip


async def test_every_change_is_audited_with_before_after_and_reason(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP)
    await gql.data(ROLE, {"id": gid(rep), "role": "PARTNER_ADMIN"}, as_user=admin)
    await gql.data(DEACTIVATE, {"id": gid(rep)}, as_user=admin)
    await gql.data(REACTIVATE, {"id": gid(rep)}, as_user=admin)
    refused = await gql(DEACTIVATE, {"id": gid(admin)}, as_user=admin)  # changes nothing
    assert errors(refused, "userDeactivate") == ["SELF_CHANGE"]
    async with db.session() as session:
        entries = (await session.exec(
            select(AuditEntry).where(AuditEntry.vendor_id == tenant.vendor.id)
            .order_by(col(AuditEntry.id))
        )).all()  # fmt: skip
    assert [(e.actor, e.action, e.entity_type, e.entity_id, e.before, e.after, e.reason)
            for e in entries] == [
        (f"user:{admin.id}", "user.role_changed", "user", str(rep.id), {"role": "PARTNER_REP"},
         {"role": "PARTNER_ADMIN"}, "reorg"),
        (f"user:{admin.id}", "user.deactivated", "user", str(rep.id), {"active": True},
         {"active": False}, None),
        (f"user:{admin.id}", "user.reactivated", "user", str(rep.id), {"active": False},
         {"active": True}, None),
    ]  # fmt: skip
