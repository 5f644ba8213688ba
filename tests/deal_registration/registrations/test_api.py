"""Deal registration through GraphQL over HTTP: submission, bad input, idempotency, roles
and tenants, visibility, review, redaction, filters and program settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from strawberry import relay

from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import (
    APPROVE,
    DEAL,
    DEALS,
    REJECT,
    START_REVIEW,
    SUBMIT,
    future,
    register,
    snapshot,
    submit_input,
)
from tests.factories import Tenant, add_products, gid
from tests.support import GQL, error_codes


@pytest.fixture
async def catalogue(db: Database, clock: OffsetClock, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    return tenant


async def submit(gql: GQL, user: Any, payload: dict[str, Any]) -> dict[str, Any]:
    data = await gql.data(SUBMIT, {"input": payload}, as_user=user)
    result: dict[str, Any] = data["dealRegistrationSubmit"]
    return result


# --- submission --------------------------------------------------------------------------


async def test_rep_submits_a_registration(gql: GQL, clock: OffsetClock, catalogue: Tenant) -> None:
    result = await submit(gql, catalogue.user(Role.PARTNER_REP), submit_input(clock))
    assert result["userErrors"] == []
    deal = result["dealRegistration"]
    assert deal["status"] == "SUBMITTED"
    assert deal["customer"] == {
        "name": "Acme Corp.", "domain": "acme.com", "country": "US", "region": ""
    }  # fmt: skip
    assert deal["estimatedValue"] == {"amountMinor": 1_000_000, "currency": "USD"}
    assert deal["lines"] == [{"sku": "NW-ROUTER-X1", "quantity": 5}]
    assert deal["bigDeal"] is False
    assert deal["registeredByName"] == catalogue.user(Role.PARTNER_REP).display_name
    assert [h["action"] for h in deal["history"]] == ["SUBMIT"]
    assert deal["reviewDueAt"] is not None
    assert deal["overdue"] is False


async def test_a_big_deal_is_flagged_and_needs_a_contact(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP)
    big = {"amount": "50000.00", "currency": "USD"}
    before = await snapshot(db)
    refused = await submit(gql, rep, submit_input(clock, estimatedValue=big))
    assert {(e["field"], e["code"]) for e in refused["userErrors"]} == {
        ("contact.name", "CONTACT_REQUIRED"),
        ("contact.email", "CONTACT_REQUIRED"),
    }
    assert await snapshot(db) == before
    contact = {"name": "Wile E. Coyote", "email": "wile@acme.com"}
    accepted = await submit(gql, rep, submit_input(clock, estimatedValue=big, contact=contact))
    assert accepted["userErrors"] == []
    assert accepted["dealRegistration"]["bigDeal"] is True
    assert accepted["dealRegistration"]["contact"] == contact


BAD_INPUTS = [
    ("empty name", {"customer": {"name": "  ", "domain": "acme.com", "country": "US"}},
     "customer.name", "REQUIRED"),
    ("long name", {"customer": {"name": "A" * 201, "domain": "acme.com", "country": "US"}},
     "customer.name", "TOO_LONG"),
    ("bad domain", {"customer": {"name": "Acme", "domain": "not a domain", "country": "US"}},
     "customer.domain", "INVALID_DOMAIN"),
    ("public suffix", {"customer": {"name": "Acme", "domain": "co.uk", "country": "GB"}},
     "customer.domain", "INVALID_DOMAIN"),
    ("bad country", {"customer": {"name": "Acme", "domain": "acme.com", "country": "USA"}},
     "customer.country", "INVALID_COUNTRY"),
    ("negative value", {"estimatedValue": {"amount": "-5.00", "currency": "USD"}},
     "estimatedValue.amount", "INVALID_VALUE"),
    ("zero value", {"estimatedValue": {"amount": "0", "currency": "USD"}},
     "estimatedValue.amount", "INVALID_VALUE"),
    ("absurd value", {"estimatedValue": {"amount": "999999999999.00", "currency": "USD"}},
     "estimatedValue.amount", "INVALID_VALUE"),
    ("too many decimals", {"estimatedValue": {"amount": "10.001", "currency": "USD"}},
     "estimatedValue.amount", "INVALID_VALUE"),
    ("bad currency", {"estimatedValue": {"amount": "10.00", "currency": "US"}},
     "estimatedValue.currency", "INVALID_CURRENCY"),
    ("unknown sku", {"lines": [{"sku": "NW-NOPE", "quantity": 1}]},
     "lines.0.sku", "UNKNOWN_SKU"),
    ("zero quantity", {"lines": [{"sku": "NW-AP-6E", "quantity": 0}]},
     "lines.0.quantity", "INVALID_QUANTITY"),
    ("duplicate sku", {"lines": [{"sku": "NW-AP-6E", "quantity": 1},
                                 {"sku": "nw-ap-6e", "quantity": 2}]},
     "lines.1.sku", "DUPLICATE_SKU"),
    ("no products", {"lines": []}, "lines", "REQUIRED"),
    ("close date in the past", {"expectedCloseDate": "2020-01-01"},
     "expectedCloseDate", "CLOSE_DATE_IN_PAST"),
    ("bad contact email", {"contact": {"name": "Wile", "email": "wile-at-acme"}},
     "contact.email", "INVALID_EMAIL"),
    ("long notes", {"notes": "x" * 4001}, "notes", "TOO_LONG"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
async def test_bad_input_is_refused_and_changes_nothing(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    catalogue: Tenant,
    overrides: dict[str, Any],
    field: str,
    code: str,
) -> None:
    before = await snapshot(db)
    result = await submit(gql, catalogue.user(Role.PARTNER_REP), submit_input(clock, **overrides))
    assert result["dealRegistration"] is None
    assert (field, code) in {(e["field"], e["code"]) for e in result["userErrors"]}
    assert await snapshot(db) == before


async def test_registering_for_another_partner_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    before = await snapshot(db)
    for target in (
        gid(catalogue.partners[1]),
        gid(other_tenant.partners[0]),
        "garbage",
    ):
        result = await submit(
            gql, catalogue.user(Role.PARTNER_ADMIN), submit_input(clock, partnerId=target)
        )
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [
            ("partnerId", "PARTNER_NOT_ALLOWED")
        ]
    assert await snapshot(db) == before


async def test_vendor_staff_register_for_partners_they_may_see(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    manager = catalogue.user(Role.CHANNEL_MANAGER)
    before = await snapshot(db)
    missing = await submit(gql, manager, submit_input(clock))
    assert [e["code"] for e in missing["userErrors"]] == ["REQUIRED"]
    for target in (
        gid(catalogue.partners[1]),
        gid(other_tenant.partners[0]),
    ):
        refused = await submit(gql, manager, submit_input(clock, partnerId=target))
        assert [e["code"] for e in refused["userErrors"]] == ["NOT_FOUND"]
    assert await snapshot(db) == before
    done = await submit(gql, manager, submit_input(clock, partnerId=gid(catalogue.partners[0])))
    assert done["userErrors"] == []


async def test_anonymous_and_finance_may_not_submit(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    before = await snapshot(db)
    anonymous = await gql(SUBMIT, {"input": submit_input(clock)})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    finance = await gql(
        SUBMIT, {"input": submit_input(clock)}, as_user=catalogue.user(Role.FINANCE)
    )
    assert error_codes(finance) == ["FORBIDDEN"]
    assert await snapshot(db) == before


async def test_idempotency_key_returns_the_first_result(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP)
    payload = submit_input(clock, idempotencyKey="retry-1")
    first = await submit(gql, rep, payload)
    after_first = await snapshot(db)
    second = await submit(gql, rep, payload)
    assert second["dealRegistration"]["id"] == first["dealRegistration"]["id"]
    assert await snapshot(db) == after_first

    changed = await submit(gql, rep, {**payload, "notes": "different"})
    assert [e["code"] for e in changed["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert await snapshot(db) == after_first
    # The same key from another user of the organisation is not a retry of theirs: the
    # colleague's own registration (tests/infra/test_idempotency.py covers every mutation).
    colleague = await submit(gql, catalogue.user(Role.PARTNER_ADMIN), payload)
    assert colleague["userErrors"] == []
    assert colleague["dealRegistration"]["id"] != first["dealRegistration"]["id"]


# --- visibility --------------------------------------------------------------------------


async def test_each_role_sees_what_the_roles_table_says(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    async with db.transaction() as session:
        await add_products(session, clock, other_tenant)
    t = catalogue
    mine = await register(db, clock, t.user(Role.PARTNER_REP, 0), customer_name="Rep Zero Co")
    colleague = await register(
        db, clock, t.user(Role.PARTNER_ADMIN, 0), customer_name="Admin Zero Co",
        customer_domain="adminzero.com",
    )  # fmt: skip
    other_partner = await register(
        db, clock, t.user(Role.PARTNER_REP, 1), customer_name="Rep One Co",
        customer_domain="repone.com",
    )  # fmt: skip
    other_vendor = await register(db, clock, other_tenant.user(Role.PARTNER_REP, 0))
    expected = [
        (t.user(Role.PARTNER_REP, 0), {mine.id}),
        (t.user(Role.PARTNER_ADMIN, 0), {mine.id, colleague.id}),
        (t.user(Role.PARTNER_REP, 1), {other_partner.id}),
        (t.user(Role.CHANNEL_MANAGER), {mine.id, colleague.id}),
        (t.user(Role.VENDOR_ADMIN), {mine.id, colleague.id, other_partner.id}),
        (t.user(Role.FINANCE), {mine.id, colleague.id, other_partner.id}),
        (other_tenant.user(Role.VENDOR_ADMIN), {other_vendor.id}),
    ]
    everyone = [mine, colleague, other_partner, other_vendor]
    for user, visible in expected:
        data = await gql.data(DEALS, as_user=user)
        ids = {relay.GlobalID.from_id(e["node"]["id"]).node_id for e in data["deals"]["edges"]}
        assert ids == {str(i) for i in visible}, user.role
        assert data["deals"]["totalCount"] == len(visible)
        for registration in everyone:
            one = await gql.data(DEAL, {"id": gid(registration)}, as_user=user)
            assert (one["deal"] is not None) == (registration.id in visible)
            node = await gql.data(
                "query($id: ID!) { node(id: $id) { id } }",
                {"id": gid(registration)},
                as_user=user,
            )
            assert (node["node"] is not None) == (registration.id in visible)


# --- review ------------------------------------------------------------------------------


async def test_channel_manager_reviews_assigned_partners_only(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    manager = catalogue.user(Role.CHANNEL_MANAGER)
    assigned = await register(db, clock, catalogue.user(Role.PARTNER_REP, 0))
    unassigned = await register(
        db, clock, catalogue.user(Role.PARTNER_REP, 1), customer_domain="globex.com",
        customer_name="Globex",
    )  # fmt: skip
    before = await snapshot(db, unassigned.id)
    refused = await gql.data(START_REVIEW, {"input": {"id": gid(unassigned)}}, as_user=manager)
    assert [e["code"] for e in refused["dealRegistrationStartReview"]["userErrors"]] == [
        "NOT_FOUND"
    ]
    assert await snapshot(db, unassigned.id) == before

    for mutation, name, extra in (
        (START_REVIEW, "dealRegistrationStartReview", {}),
        (APPROVE, "dealRegistrationApprove", {"reason": "Welcome aboard."}),
    ):
        data = await gql.data(
            mutation,
            {"input": {"id": gid(assigned), **extra}},
            as_user=manager,
        )
        assert data[name]["userErrors"] == []
    deal = data["dealRegistrationApprove"]["dealRegistration"]
    assert deal["status"] == "APPROVED"
    assert deal["protected"] is True
    assert [h["action"] for h in deal["history"]] == ["SUBMIT", "START_REVIEW", "APPROVE"]
    assert deal["history"][-1]["reason"] == "Welcome aboard."


async def test_partners_and_finance_may_not_review(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    reg = await register(db, clock, catalogue.user(Role.PARTNER_REP), review_as=catalogue.user(
        Role.VENDOR_ADMIN))  # fmt: skip
    before = await snapshot(db, reg.id)
    for role in (Role.PARTNER_REP, Role.PARTNER_ADMIN, Role.FINANCE):
        for mutation in (APPROVE, REJECT):
            payload = await gql(
                mutation,
                {"input": {"id": gid(reg), "reason": "x"}},
                as_user=catalogue.user(role),
            )
            assert error_codes(payload) == ["FORBIDDEN"]
    assert await snapshot(db, reg.id) == before


async def test_reject_needs_a_reason_and_other_tenants_get_not_found(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    reg = await register(
        db, clock, catalogue.user(Role.PARTNER_REP), review_as=catalogue.user(Role.VENDOR_ADMIN)
    )
    before = await snapshot(db, reg.id)
    admin = catalogue.user(Role.VENDOR_ADMIN)
    no_reason = await gql.data(REJECT, {"input": {"id": gid(reg)}}, as_user=admin)
    assert [e["code"] for e in no_reason["dealRegistrationReject"]["userErrors"]] == ["REQUIRED"]
    stranger = await gql.data(
        REJECT, {"input": {"id": gid(reg), "reason": "x"}},
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert [e["code"] for e in stranger["dealRegistrationReject"]["userErrors"]] == ["NOT_FOUND"]
    bad_id = await gql.data(REJECT, {"input": {"id": "nonsense", "reason": "x"}}, as_user=admin)
    assert [e["code"] for e in bad_id["dealRegistrationReject"]["userErrors"]] == ["NOT_FOUND"]
    assert await snapshot(db, reg.id) == before


# --- conflicts and redaction -------------------------------------------------------------

EVIDENCE = """
query($id: ID!) {
  deal(id: $id) {
    conflictReasons
    conflicts {
      rules score nameScore sharedSkus sameCountry stage otherIsEarlier
      other { id partnerName customerName customerDomain status protected }
    }
  }
}"""


async def test_conflict_evidence_for_reviewers_reason_codes_for_partners(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    first = await register(db, clock, t.user(Role.PARTNER_REP, 1), customer_name="ACME Corp.",
                           customer_domain="www.acme.com")  # fmt: skip
    second = await submit(
        gql, t.user(Role.PARTNER_REP, 0),
        submit_input(clock, customer={"name": "Acme Corporation, Inc.", "domain": "shop.acme.com",
                                      "country": "US"}),
    )  # fmt: skip
    deal = second["dealRegistration"]
    assert deal["conflictReasons"] == ["DOMAIN", "NAME"]

    admin = await gql.data(EVIDENCE, {"id": deal["id"]}, as_user=t.user(Role.VENDOR_ADMIN))
    [evidence] = admin["deal"]["conflicts"]
    assert evidence["rules"] == ["DOMAIN", "NAME"]
    assert evidence["score"] == 100
    assert evidence["nameScore"] == 100
    assert evidence["sharedSkus"] == ["NW-ROUTER-X1"]
    assert evidence["stage"] == "SUBMISSION"
    assert evidence["otherIsEarlier"] is True
    assert evidence["other"]["id"] == gid(first)
    assert evidence["other"]["partnerName"] == t.partners[1].name
    # The earlier registration shows the evidence too, from its side.
    earlier = await gql.data(EVIDENCE, {"id": gid(first)}, as_user=t.user(Role.VENDOR_ADMIN))
    assert earlier["deal"]["conflicts"][0]["otherIsEarlier"] is False
    # ... but its partner learns nothing: the conflict is with a later registration.
    own = await gql.data(
        "query($id: ID!) { deal(id: $id) { conflictReasons } }", {"id": gid(first)},
        as_user=t.user(Role.PARTNER_ADMIN, 1),
    )  # fmt: skip
    assert own["deal"]["conflictReasons"] == []

    # The later partner sees the reason codes, and nothing about the other deal.
    for role in (Role.PARTNER_REP, Role.PARTNER_ADMIN):
        payload = await gql(EVIDENCE, {"id": deal["id"]}, as_user=t.user(role, 0))
        assert error_codes(payload) == ["FORBIDDEN"]
        assert payload["data"]["deal"] == {"conflictReasons": ["DOMAIN", "NAME"], "conflicts": None}
        text = str(payload)
        for secret in (
            t.partners[1].name,
            str(first.id),
            gid(first),
            "ACME Corp.",
        ):
            assert secret not in text
        reasons = await gql.data(
            "query($id: ID!) { deal(id: $id) { conflictReasons } }", {"id": deal["id"]},
            as_user=t.user(role, 0),
        )  # fmt: skip
        assert reasons["deal"]["conflictReasons"] == ["DOMAIN", "NAME"]


async def test_conflicted_filter_counts_only_what_partners_may_know(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    t = catalogue
    first = await register(db, clock, t.user(Role.PARTNER_REP, 1))
    later = await register(db, clock, t.user(Role.PARTNER_REP, 0))
    await register(db, clock, t.user(Role.PARTNER_REP, 0), customer_name="Unrelated Widgets",
                   customer_domain="widgets.example")  # fmt: skip
    conflicted = {"filter": {"conflicted": True}}

    async def ids(user: Any) -> set[str]:
        data = await gql.data(DEALS, conflicted, as_user=user)
        return {e["node"]["id"] for e in data["deals"]["edges"]}

    assert await ids(t.user(Role.VENDOR_ADMIN)) == {
        gid(first),
        gid(later),
    }
    assert await ids(t.user(Role.PARTNER_REP, 0)) == {gid(later)}
    assert await ids(t.user(Role.PARTNER_REP, 1)) == set()  # a later rival is not disclosed


# --- filters -----------------------------------------------------------------------------


async def test_filters(gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant) -> None:
    clock.freeze()
    t = catalogue
    admin = t.user(Role.VENDOR_ADMIN)
    rep0, rep1 = t.user(Role.PARTNER_REP, 0), t.user(Role.PARTNER_REP, 1)
    approved = await register(db, clock, rep0, approve_as=admin)
    waiting = await register(db, clock, rep1, customer_name="Globex", customer_domain="globex.com")

    async def ids(filter: dict[str, Any], user: Any = admin) -> set[str]:
        data = await gql.data(DEALS, {"filter": filter}, as_user=user)
        return {e["node"]["id"] for e in data["deals"]["edges"]}

    assert await ids({"status": ["APPROVED"]}) == {gid(approved)}
    assert await ids({"status": ["SUBMITTED", "APPROVED"]}) == {
        gid(approved),
        gid(waiting),
    }
    assert await ids({"customer": "globex"}) == {gid(waiting)}
    assert await ids({"customer": "ACME.COM"}) == {gid(approved)}
    assert await ids({"partnerId": gid(t.partners[1])}) == {gid(waiting)}
    assert await ids({"partnerId": gid(t.partners[1])}, rep0) == set()
    assert await ids({"expiringWithinDays": 30}) == set()
    assert await ids({"overdue": True}) == set()

    clock.advance(timedelta(days=75))
    assert await ids({"expiringWithinDays": 30}) == {gid(approved)}
    assert await ids({"overdue": True}) == {gid(waiting)}
    assert await ids({"overdue": False}) == {gid(approved)}

    bad = await gql(DEALS, {"filter": {"expiringWithinDays": -1}}, as_user=admin)
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_a_customer_search_longer_than_any_customer_is_refused(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """The term went into a LIKE pattern at any length: SQLite refuses one over 50,000
    bytes, an INTERNAL_SERVER_ERROR (found by a hand-made fuzz campaign)."""
    admin = catalogue.user(Role.VENDOR_ADMIN)
    await register(db, clock, catalogue.user(Role.PARTNER_REP), approve_as=admin)
    longest = await gql.data(DEALS, {"filter": {"customer": "x" * 256}}, as_user=admin)
    assert longest["deals"]["edges"] == []
    refused = await gql(DEALS, {"filter": {"customer": "x" * 60_000}}, as_user=admin)
    assert error_codes(refused) == ["SEARCH_TOO_LONG"], refused
    assert refused["errors"][0]["extensions"]["field"] == "filter.customer"


async def test_a_status_filter_repeating_a_status_reads_as_naming_it_once(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    """Each status was a condition ORed to the others: 10,000 of them (a hand-made fuzz
    campaign's list) is deeper than SQLite takes ("Expression tree is too large"), an
    INTERNAL_SERVER_ERROR."""
    admin = catalogue.user(Role.VENDOR_ADMIN)
    approved = await register(db, clock, catalogue.user(Role.PARTNER_REP), approve_as=admin)
    data = await gql.data(DEALS, {"filter": {"status": ["APPROVED"] * 10_000}}, as_user=admin)
    assert [e["node"]["id"] for e in data["deals"]["edges"]] == [gid(approved)]


async def test_review_sla_counts_business_days(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    clock.freeze(datetime(2026, 11, 20, 10, 0, tzinfo=UTC))  # a Friday
    reg = await register(db, clock, catalogue.user(Role.PARTNER_REP))  # SLA: 3 business days
    assert reg.review_due_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday

    async def overdue() -> bool:
        data = await gql.data(
            "query($id: ID!) { deal(id: $id) { overdue } }", {"id": gid(reg)},
            as_user=catalogue.user(Role.VENDOR_ADMIN),
        )  # fmt: skip
        return bool(data["deal"]["overdue"])

    clock.advance(timedelta(days=4, hours=23))  # Wednesday 09:00
    assert await overdue() is False
    clock.advance(timedelta(hours=1))
    assert await overdue() is True


# --- program settings --------------------------------------------------------------------

SETTINGS = """
mutation($input: DealProgramSettingsUpdateInput!) {
  dealProgramSettingsUpdate(input: $input) {
    settings { bigDealThreshold { amountMinor currency } similarityThreshold protectionDays
               extensionDays maxExtensions reviewSlaDays }
    userErrors { field code }
  }
}"""


async def test_vendor_admin_changes_the_program_settings(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant, other_tenant: Tenant
) -> None:
    admin = catalogue.user(Role.VENDOR_ADMIN)
    read = "{ dealProgramSettings { protectionDays similarityThreshold reviewSlaDays } }"
    defaults = await gql.data(read, as_user=catalogue.user(Role.CHANNEL_MANAGER))
    assert defaults["dealProgramSettings"] == {
        "protectionDays": 90, "similarityThreshold": 85, "reviewSlaDays": 3
    }  # fmt: skip
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN):
        payload = await gql(
            SETTINGS, {"input": {"protectionDays": 30}}, as_user=catalogue.user(role)
        )
        assert error_codes(payload) == ["FORBIDDEN"]
    assert error_codes(await gql(read, as_user=catalogue.user(Role.PARTNER_ADMIN))) == ["FORBIDDEN"]

    bad = await gql.data(
        SETTINGS, {"input": {"protectionDays": 0, "similarityThreshold": 101}}, as_user=admin
    )
    assert {(e["field"], e["code"]) for e in bad["dealProgramSettingsUpdate"]["userErrors"]} == {
        ("protectionDays", "INVALID_SETTING"),
        ("similarityThreshold", "INVALID_SETTING"),
    }
    changed = await gql.data(
        SETTINGS,
        {"input": {"protectionDays": 30, "maxExtensions": 1,
                   "bigDealThreshold": {"amount": "5000.00", "currency": "EUR"}}},
        as_user=admin,
    )  # fmt: skip
    settings = changed["dealProgramSettingsUpdate"]["settings"]
    assert settings["protectionDays"] == 30
    assert settings["maxExtensions"] == 1
    assert settings["bigDealThreshold"] == {"amountMinor": 500_000, "currency": "EUR"}
    assert settings["reviewSlaDays"] == 3  # unchanged
    other = await gql.data(read, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert other["dealProgramSettings"]["protectionDays"] == 90

    # The new period applies to the next approval.
    clock.freeze()
    reg = await register(db, clock, catalogue.user(Role.PARTNER_REP), approve_as=admin,
                         contact_name="Wile", contact_email="wile@acme.com")  # fmt: skip
    assert reg.expires_at == clock.now() + timedelta(days=30)
    assert reg.big_deal is True  # USD is not the threshold's currency: treated as big


async def test_submit_draft_then_submit(
    gql: GQL, db: Database, clock: OffsetClock, catalogue: Tenant
) -> None:
    rep = catalogue.user(Role.PARTNER_REP)
    draft = await submit(
        gql, rep, submit_input(clock, asDraft=True, expectedCloseDate=future(clock, 5))
    )
    assert draft["dealRegistration"]["status"] == "DRAFT"
    assert draft["dealRegistration"]["conflictReasons"] == []
    data = await gql.data(
        """mutation($input: DealRegistrationIdInput!) {
             dealRegistrationSubmitDraft(input: $input) {
               dealRegistration { status history { action } } userErrors { code } } }""",
        {"input": {"id": draft["dealRegistration"]["id"]}},
        as_user=rep,
    )
    result = data["dealRegistrationSubmitDraft"]
    assert result["dealRegistration"]["status"] == "SUBMITTED"
    assert [h["action"] for h in result["dealRegistration"]["history"]] == [
        "CREATE_DRAFT", "SUBMIT"
    ]  # fmt: skip
