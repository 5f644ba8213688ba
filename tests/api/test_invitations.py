"""Invitations and identity through GraphQL: create, resend, revoke, list, accept (binding an
identity-provider subject), with the development HS256 tokens and with RS256 tokens signed
by a test key served as a JWKS file; every refusal code, the role matrix, and that refused
calls change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import func, select
from strawberry import relay

from api.app import create_app
from api.auth import issue_subject_token
from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import Clock, OffsetClock
from infra.db import Database
from partners.models import Invitation, User, UserSubject
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, error_codes

CREATE = """
mutation($input: InvitationCreateInput!) {
  invitationCreate(input: $input) {
    invitation { id email role status invitedBy expiresAt partner { name } }
    token
    userErrors { field code message }
  }
}"""
RESEND = """
mutation($input: InvitationResendInput!) {
  invitationResend(input: $input) {
    invitation { id status expiresAt } token userErrors { field code }
  }
}"""
REVOKE = """
mutation($input: InvitationRevokeInput!) {
  invitationRevoke(input: $input) { invitation { id status } userErrors { field code } }
}"""
ACCEPT = """
mutation($input: InvitationAcceptInput!) {
  invitationAccept(input: $input) {
    user { id email role displayName partner { name } }
    userErrors { field code message }
  }
}"""
LIST = """
query($status: InvitationStatus) {
  invitations(status: $status) { totalCount edges { node { id email status } } }
}"""
ME = "{ me { role user { email } } }"


def subject_token(gql: GQL, subject: str, **claims: Any) -> str:
    return issue_subject_token(gql.settings.jwt, subject=subject, now=gql.clock.now(), **claims)


async def create(gql: GQL, user: User, **fields: Any) -> dict[str, Any]:
    data = await gql.data(CREATE, {"input": fields}, as_user=user)
    result: dict[str, Any] = data["invitationCreate"]
    return result


async def accept(gql: GQL, token: str, invitation_token: str) -> dict[str, Any]:
    payload = await gql(ACCEPT, {"input": {"token": invitation_token}}, token=token)
    assert "errors" not in payload, payload
    result: dict[str, Any] = payload["data"]["invitationAccept"]
    return result


def codes(result: dict[str, Any]) -> list[str]:
    return [e["code"] for e in result["userErrors"]]


async def counts(db: Database) -> tuple[int, int, int, list[tuple[str, str]], int]:
    """Users, bound subjects, invitations, each invitation's status and token hash, and
    audit entries."""
    async with db.read_session() as session:
        users = (await session.exec(select(func.count()).select_from(User))).one()
        subjects = (await session.exec(select(func.count()).select_from(UserSubject))).one()
        rows = (await session.exec(select(Invitation).order_by(Invitation.id))).all()
        entries = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    return users, subjects, len(rows), [(r.status.value, r.token_hash) for r in rows], entries


async def audit_trail(db: Database) -> list[tuple[str, str, str]]:
    async with db.read_session() as session:
        rows = (await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(r.actor, r.action, r.entity_id) for r in rows]


async def test_the_whole_flow_with_a_development_token(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    created = await create(
        gql, admin, email=" New.Manager@Example.com", role="CHANNEL_MANAGER", expiresInDays=3
    )
    assert created["userErrors"] == []
    invitation = created["invitation"]
    assert invitation["email"] == "new.manager@example.com"
    assert (invitation["role"], invitation["status"]) == ("CHANNEL_MANAGER", "PENDING")
    assert invitation["invitedBy"] == f"user:{admin.id}"
    assert invitation["partner"] is None
    pending = await gql.data(LIST, {"status": "PENDING"}, as_user=admin)
    assert [e["node"]["id"] for e in pending["invitations"]["edges"]] == [invitation["id"]]

    # The invitee signs in: a valid token whose subject is bound to nobody yet.
    signed_in = subject_token(gql, "idp|new-manager", email="new.manager@example.com")
    refused = await gql(ME, token=signed_in)
    assert refused["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED", "reason": "UNKNOWN_USER"
    }  # fmt: skip
    accepted = await accept(gql, signed_in, created["token"])
    assert accepted["userErrors"] == []
    assert accepted["user"]["email"] == "new.manager@example.com"
    assert accepted["user"]["role"] == "CHANNEL_MANAGER"
    assert accepted["user"]["displayName"] == "new.manager"

    # The same sign-in now authenticates as the new user.
    me = await gql(ME, token=signed_in)
    assert me == {
        "data": {"me": {"role": "CHANNEL_MANAGER", "user": {"email": "new.manager@example.com"}}}
    }
    listed = await gql.data(LIST, {"status": "ACCEPTED"}, as_user=admin)
    assert [e["node"]["id"] for e in listed["invitations"]["edges"]] == [invitation["id"]]
    assert (await gql.data(LIST, {"status": "PENDING"}, as_user=admin))["invitations"][
        "totalCount"
    ] == 0
    # Tokens whose sub is a user id keep working.
    assert (await gql.data(ME, as_user=admin))["me"]["role"] == "VENDOR_ADMIN"
    # Each change is in the audit log: the invitation by the admin, the acceptance and the
    # new user by the new user.
    new_user = accepted["user"]["id"]
    new_user_id = str(relay.GlobalID.from_id(new_user).node_id)
    invitation_id = str(relay.GlobalID.from_id(invitation["id"]).node_id)
    assert await audit_trail(db) == [
        (f"user:{admin.id}", "invitation.created", invitation_id),
        (f"user:{new_user_id}", "invitation.accepted", invitation_id),
        (f"user:{new_user_id}", "user.created", new_user_id),
    ]


async def test_a_partner_admin_invites_its_own_organisations_users(
    gql: GQL, tenant: Tenant
) -> None:
    padmin = tenant.user(Role.PARTNER_ADMIN, 0)
    created = await create(gql, padmin, email="rep@example.com", role="PARTNER_REP")
    assert created["userErrors"] == []
    assert created["invitation"]["partner"] == {"name": tenant.partners[0].name}
    accepted = await accept(gql, subject_token(gql, "idp|rep"), created["token"])
    assert accepted["user"]["role"] == "PARTNER_REP"
    assert accepted["user"]["partner"] is None  # the new user's token is not the caller's
    me = await gql(ME, token=subject_token(gql, "idp|rep"))
    assert me["data"]["me"]["role"] == "PARTNER_REP"
    # The vendor admin invites a partner's users too, naming the partner.
    by_vendor = await create(
        gql, tenant.user(Role.VENDOR_ADMIN), email="padmin2@example.com",
        role="PARTNER_ADMIN", partnerId=gid(tenant.partners[1]),
    )  # fmt: skip
    assert by_vendor["invitation"]["partner"] == {"name": tenant.partners[1].name}


@pytest.mark.parametrize(
    ("role", "fields", "code", "field"),
    [
        (Role.PARTNER_ADMIN, {"role": "FINANCE"}, "ROLE_NOT_ALLOWED", "role"),
        (Role.PARTNER_ADMIN, {"role": "VENDOR_ADMIN"}, "ROLE_NOT_ALLOWED", "role"),
        (Role.PARTNER_ADMIN, {"role": "PARTNER_REP", "partner": 1}, "NOT_FOUND", "partnerId"),
        (Role.VENDOR_ADMIN, {"role": "PARTNER_REP"}, "REQUIRED", "partnerId"),
        (Role.VENDOR_ADMIN, {"role": "FINANCE", "partner": 0}, "INVALID", "partnerId"),
        (Role.VENDOR_ADMIN, {"role": "PARTNER_REP", "partner": "other"}, "NOT_FOUND", "partnerId"),
        (Role.VENDOR_ADMIN, {"role": "FINANCE", "email": "not-an-address"}, "INVALID_EMAIL",
         "email"),
        (Role.VENDOR_ADMIN, {"role": "FINANCE", "expiresInDays": 0}, "INVALID", "expiresInDays"),
        (Role.VENDOR_ADMIN, {"role": "FINANCE", "email": "FINANCE@{slug}.example"},
         "DUPLICATE_EMAIL", "email"),
    ],
)  # fmt: skip
async def test_bad_invitations_are_refused_with_a_code_and_change_nothing(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database,
    role: Role, fields: dict[str, Any], code: str, field: str,
) -> None:  # fmt: skip
    before = await counts(db)
    fields = {"email": "someone@example.com", **fields}
    fields["email"] = fields["email"].format(slug=tenant.vendor.slug)
    partner = fields.pop("partner", None)
    if partner == "other":
        fields["partnerId"] = gid(other_tenant.partners[0])
    elif partner is not None:
        fields["partnerId"] = gid(tenant.partners[partner])
    result = await create(gql, tenant.user(role, 0), **fields)
    assert result["invitation"] is None
    assert result["token"] is None
    assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, field)]
    assert await counts(db) == before


@pytest.mark.parametrize("role", [None, Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_REP])
async def test_roles_that_may_not_administer_invitations_are_refused(
    gql: GQL, tenant: Tenant, db: Database, role: Role | None
) -> None:
    created = await create(gql, tenant.user(Role.VENDOR_ADMIN), email="a@example.com",
                           role="FINANCE")  # fmt: skip
    before = await counts(db)
    user = None if role is None else tenant.user(role, 0)
    expected = "UNAUTHENTICATED" if role is None else "FORBIDDEN"
    invitation_id = created["invitation"]["id"]
    for query, variables in (
        (CREATE, {"input": {"email": "b@example.com", "role": "PARTNER_REP"}}),
        (RESEND, {"input": {"id": invitation_id}}),
        (REVOKE, {"input": {"id": invitation_id}}),
        (LIST, {}),
    ):
        payload = await gql(query, variables, as_user=user)
        assert error_codes(payload) == [expected], payload
    assert await counts(db) == before


async def test_other_partners_and_other_vendors_see_nothing_and_change_nothing(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    created = await create(gql, tenant.user(Role.PARTNER_ADMIN, 0), email="x@example.com",
                           role="PARTNER_REP")  # fmt: skip
    invitation_id = created["invitation"]["id"]
    before = await counts(db)
    for outsider in (tenant.user(Role.PARTNER_ADMIN, 1), other_tenant.user(Role.VENDOR_ADMIN)):
        for query in (RESEND, REVOKE):
            result = await gql.data(query, {"input": {"id": invitation_id}}, as_user=outsider)
            (payload,) = result.values()
            assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", "id")]
        listed = await gql.data(LIST, as_user=outsider)
        assert listed["invitations"]["totalCount"] == 0
        node = await gql.data(
            "query($id: ID!) { node(id: $id) { id } }", {"id": invitation_id}, as_user=outsider
        )
        assert node == {"node": None}
    assert await counts(db) == before
    # Its own partner admin and the vendor admin see it.
    for insider in (tenant.user(Role.PARTNER_ADMIN, 0), tenant.user(Role.VENDOR_ADMIN)):
        listed = await gql.data(LIST, as_user=insider)
        assert [e["node"]["id"] for e in listed["invitations"]["edges"]] == [invitation_id]


async def test_expired_used_revoked_and_unknown_tokens_are_refused(
    gql: GQL, tenant: Tenant, db: Database, clock: OffsetClock
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    used = await create(gql, admin, email="used@example.com", role="FINANCE")
    revoked = await create(gql, admin, email="revoked@example.com", role="FINANCE")
    expiring = await create(gql, admin, email="late@example.com", role="FINANCE",
                            expiresInDays=1)  # fmt: skip
    assert (await accept(gql, subject_token(gql, "idp|used"), used["token"]))["user"]
    revoke = await gql.data(REVOKE, {"input": {"id": revoked["invitation"]["id"]}}, as_user=admin)
    assert revoke["invitationRevoke"]["invitation"]["status"] == "REVOKED"
    clock.advance(timedelta(days=2))
    listed = await gql.data(LIST, {"status": "EXPIRED"}, as_user=admin)
    assert [e["node"]["email"] for e in listed["invitations"]["edges"]] == ["late@example.com"]

    before = await counts(db)
    newcomer = subject_token(gql, "idp|newcomer")
    for invitation_token, code in (
        (used["token"], "INVITATION_USED"),
        (revoked["token"], "INVITATION_REVOKED"),
        (expiring["token"], "INVITATION_EXPIRED"),
        ("cbi_not-a-token", "INVALID_TOKEN"),
    ):
        result = await accept(gql, newcomer, invitation_token)
        assert (result["user"], codes(result)) == (None, [code])
    # Resending or revoking a used or revoked invitation is refused too.
    for source, code in ((used, "INVITATION_USED"), (revoked, "INVITATION_REVOKED")):
        for query in (RESEND, REVOKE):
            result = await gql.data(query, {"input": {"id": source["invitation"]["id"]}},
                                    as_user=admin)  # fmt: skip
            (payload,) = result.values()
            assert [e["code"] for e in payload["userErrors"]] == [code]
    assert await counts(db) == before

    # A resend revives the expired one with a new token; the old token is dead.
    resent = await gql.data(RESEND, {"input": {"id": expiring["invitation"]["id"]}},
                            as_user=admin)  # fmt: skip
    new_token = resent["invitationResend"]["token"]
    assert resent["invitationResend"]["invitation"]["status"] == "PENDING"
    assert codes(await accept(gql, newcomer, expiring["token"])) == ["INVALID_TOKEN"]
    assert (await accept(gql, newcomer, new_token))["user"]["email"] == "late@example.com"
    actions = [action for _, action, _ in await audit_trail(db)]
    assert actions.count("invitation.revoked") == 1
    assert actions.count("invitation.resent") == 1
    assert actions.count("user.created") == 2


async def test_a_bound_subject_or_a_user_token_cannot_accept_again(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    first = await create(gql, admin, email="one@example.com", role="FINANCE")
    second = await create(gql, admin, email="two@example.com", role="FINANCE")
    signed_in = subject_token(gql, "idp|same")
    assert (await accept(gql, signed_in, first["token"]))["user"]
    before = await counts(db)
    for token in (signed_in, gql.token(admin)):
        result = await accept(gql, token, second["token"])
        assert (result["user"], codes(result)) == (None, ["SUBJECT_ALREADY_BOUND"])
    assert await counts(db) == before


async def test_an_email_that_became_a_user_after_the_invitation_is_refused_at_accept(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    first = await create(gql, admin, email="twice@example.com", role="FINANCE")
    second = await create(gql, admin, email="twice@example.com", role="CHANNEL_MANAGER")
    assert (await accept(gql, subject_token(gql, "idp|a"), first["token"]))["user"]
    before = await counts(db)
    result = await accept(gql, subject_token(gql, "idp|b"), second["token"])
    assert codes(result) == ["DUPLICATE_EMAIL"]
    assert await counts(db) == before


async def test_an_address_with_an_account_at_another_vendor_cannot_accept(
    gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database
) -> None:
    """Inviting it reveals nothing about the other vendor; accepting is refused (a user's
    e-mail address is unique across vendors)."""
    email = other_tenant.user(Role.FINANCE).email
    created = await create(gql, tenant.user(Role.VENDOR_ADMIN), email=email, role="FINANCE")
    assert created["userErrors"] == []
    before = await counts(db)
    result = await accept(gql, subject_token(gql, "idp|elsewhere"), created["token"])
    assert codes(result) == ["DUPLICATE_EMAIL"]
    assert await counts(db) == before


async def test_accept_needs_a_valid_sign_in(gql: GQL, tenant: Tenant, db: Database) -> None:
    created = await create(gql, tenant.user(Role.VENDOR_ADMIN), email="a@example.com",
                           role="FINANCE")  # fmt: skip
    before = await counts(db)
    anonymous = await gql(ACCEPT, {"input": {"token": created["token"]}})
    assert anonymous["errors"][0]["extensions"]["reason"] == "MISSING_CREDENTIALS"
    forged = jwt.encode({"sub": "idp|x", "iss": "channelboard-dev", "aud": "channelboard",
                         "iat": 0, "exp": 2**31}, "a-different-secret-of-enough-length!",
                        algorithm="HS256")  # fmt: skip
    bad = await gql(ACCEPT, {"input": {"token": created["token"]}}, token=forged)
    assert bad["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "BAD_SIGNATURE"}
    assert await counts(db) == before


async def test_two_concurrent_accepts_of_one_invitation_make_one_user(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    created = await create(gql, tenant.user(Role.VENDOR_ADMIN), email="race@example.com",
                           role="FINANCE")  # fmt: skip
    users_before = (await counts(db))[0]
    results = await asyncio.gather(
        accept(gql, subject_token(gql, "idp|racer-1"), created["token"]),
        accept(gql, subject_token(gql, "idp|racer-2"), created["token"]),
    )
    winners = [r for r in results if r["user"] is not None]
    losers = [codes(r) for r in results if r["user"] is None]
    assert len(winners) == 1
    assert losers == [["INVITATION_USED"]]
    users, subjects, _, statuses, _ = await counts(db)
    assert (users, subjects) == (users_before + 1, 1)
    assert [s for s, _ in statuses] == ["ACCEPTED"]


# --- Other identity-provider set-ups: RS256 with a JWKS file, and the email claim ---------


@asynccontextmanager
async def app_with(settings: Settings, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    # A second app on the test database, for its sign-in settings (its clock jobs, cut off
    # when it stops, leave nothing behind: tests/api/test_app_stop.py).
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://idp") as client:
            yield client


async def post(client: httpx.AsyncClient, token: str, query: str, variables: Any = None) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def rs256(key: rsa.RSAPrivateKey, kid: str, now: datetime, **claims: Any) -> str:
    body = {
        "iss": "https://id.example", "aud": "channelboard", "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()), **claims,
    }  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


async def test_the_whole_flow_with_rs256_tokens_from_a_jwks_file(
    settings: Settings, clock: OffsetClock, tenant: Tenant, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    rs = Settings.from_env(
        {
            "CHANNELBOARD_DATABASE_URL": settings.database_url,
            "CHANNELBOARD_REDIS_URL": settings.redis_url or "",
            "CHANNELBOARD_REDIS_NAMESPACE": settings.redis_namespace,
            "CHANNELBOARD_JWT_ALGORITHM": "RS256",
            "CHANNELBOARD_JWT_JWKS_FILE": str(jwks_file),
            "CHANNELBOARD_JWT_ISSUER": "https://id.example",
        }
    )
    now = datetime.now(UTC)
    admin = rs256(key, "k1", now, sub=str(tenant.user(Role.VENDOR_ADMIN).id))
    async with app_with(rs, clock) as client:
        created = await post(client, admin, CREATE, {
            "input": {"email": "rs@example.com", "role": "PARTNER_ADMIN",
                      "partnerId": gid(tenant.partners[0])}
        })  # fmt: skip
        token = created["data"]["invitationCreate"]["token"]
        signed_in = rs256(key, "k1", now, sub="auth0|6543210")
        refused = await post(client, signed_in, ME)
        assert refused["errors"][0]["extensions"]["reason"] == "UNKNOWN_USER"
        accepted = await post(client, signed_in, ACCEPT, {"input": {"token": token}})
        assert accepted["data"]["invitationAccept"]["userErrors"] == []
        me = await post(client, signed_in, ME)
        assert me == {
            "data": {"me": {"role": "PARTNER_ADMIN", "user": {"email": "rs@example.com"}}}
        }
        # A token signed by another key is refused before anything is read.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = await post(client, rs256(other, "k1", now, sub="auth0|x"), ACCEPT,
                            {"input": {"token": token}})  # fmt: skip
        assert forged["errors"][0]["extensions"]["reason"] == "BAD_SIGNATURE"


async def test_the_email_claim_must_be_verified_and_match(
    settings: Settings, clock: OffsetClock, tenant: Tenant, db: Database
) -> None:
    by_email = settings.with_overrides(identity_claim="email")
    async with db.transaction() as session:
        from partners.invitations import create_invitation  # noqa: PLC0415

        issued = await create_invitation(
            session, tenant.principal(Role.VENDOR_ADMIN), clock,
            email="Verified@Example.com", role=Role.FINANCE,
        )  # fmt: skip
    jwt_settings = by_email.jwt

    def token(email: str, verified: bool) -> str:
        return issue_subject_token(jwt_settings, subject=f"idp|{email}", email=email,
                                   email_verified=verified, now=clock.now())  # fmt: skip

    variables = {"input": {"token": issued.token}}
    async with app_with(by_email, clock) as client:
        before = await counts(db)
        unverified = await post(client, token("verified@example.com", False), ACCEPT, variables)
        assert [e["code"] for e in unverified["data"]["invitationAccept"]["userErrors"]] == [
            "EMAIL_NOT_VERIFIED"
        ]
        mismatch = await post(client, token("someone.else@example.com", True), ACCEPT, variables)
        assert [e["code"] for e in mismatch["data"]["invitationAccept"]["userErrors"]] == [
            "EMAIL_MISMATCH"
        ]
        assert await counts(db) == before
        good = token("VERIFIED@example.com", True)
        accepted = await post(client, good, ACCEPT, variables)
        assert accepted["data"]["invitationAccept"]["user"]["email"] == "verified@example.com"
        me = await post(client, good, ME)
        assert me["data"]["me"]["role"] == "FINANCE"


async def test_a_display_name_with_an_override_or_nothing_visible_is_refused(
    gql: GQL, tenant: Tenant, db: Database
) -> None:
    """A user's display name is shown to others (infra.text): refused with
    INVALID_CHARACTERS, the invitation still pending; a name in any script is kept."""
    created = await create(gql, tenant.user(Role.VENDOR_ADMIN), email="ana@example.com",
                           role="CHANNEL_MANAGER")  # fmt: skip
    signed_in = subject_token(gql, "idp|ana", email="ana@example.com")
    before = await counts(db)
    for name, named in (("Ana\u202e", "U+202E"), ("\u200b", "visible"), ("A\x1bna", "U+001B")):
        payload = await gql(
            ACCEPT, {"input": {"token": created["token"], "displayName": name}}, token=signed_in
        )
        [error] = payload["data"]["invitationAccept"]["userErrors"]
        assert (error["field"], error["code"]) == ("displayName", "INVALID_CHARACTERS")
        assert named in error["message"]
        assert await counts(db) == before
    payload = await gql(
        ACCEPT, {"input": {"token": created["token"], "displayName": "آنا 👩\u200d💻"}},
        token=signed_in,
    )  # fmt: skip
    accepted = payload["data"]["invitationAccept"]
    assert (accepted["userErrors"], accepted["user"]["displayName"]) == ([], "آنا 👩\u200d💻")
