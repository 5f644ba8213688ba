"""Partner administration through GraphQL: create, update, suspend, reactivate, archive —
for every operation anonymous, wrong role, other partner/vendor, allowed, bad input, and
that refused calls change nothing; and what a suspended partner keeps (its earnings)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, update
from sqlmodel import col, select

from earnings.models import EarningEntry
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.ids import new_id
from partners.models import NameKeyError, Partner, PartnerStatus
from partners.names import name_key
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.support import GQL, count_rows, error_codes

PARTNER_FIELDS = """id name legalName region country tags status statusReason externalRef
  contacts { name email phone }"""


def mutation(name: str, input_type: str) -> str:
    return f"""mutation($input: {input_type}!) {{ {name}(input: $input) {{
      partner {{ {PARTNER_FIELDS} }} userErrors {{ field code message }} }} }}"""


CREATE_PARTNER = mutation("partnerCreate", "PartnerCreateInput")
UPDATE = mutation("partnerUpdate", "PartnerUpdateInput")
SUSPEND = mutation("partnerSuspend", "PartnerSuspendInput")
REACTIVATE = mutation("partnerReactivate", "PartnerStatusInput")
ARCHIVE = mutation("partnerArchive", "PartnerStatusInput")
PARTNERS = """query($filter: PartnerFilter) { partners(filter: $filter) {
  totalCount edges { node { name status } } } }"""
ME = "{ me { role } }"

NEW = {
    "name": "Initrode GmbH",
    "legalName": "Initrode Vertriebs GmbH",
    "region": "emea",
    "country": "de",
    "contacts": [{"name": "Ada", "email": "Ada@Initrode.example", "phone": "+49 30 1234"}],
    "tags": ["Reseller", "cloud", "cloud"],
    "externalRef": "CRM-1",
}


async def _audit(db: Database, tenant: Tenant) -> list[AuditEntry]:
    async with db.session() as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(AuditEntry.vendor_id == tenant.vendor.id, AuditEntry.entity_type == "partner")
            .order_by(AuditEntry.id)  # type: ignore[arg-type]
        )
        return list(rows)


async def _partners(db: Database, tenant: Tenant) -> dict[str, Partner]:
    async with db.session() as session:
        rows = await session.exec(select(Partner).where(Partner.vendor_id == tenant.vendor.id))
        return {p.name: p for p in rows}


async def test_create_partner(gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    anonymous = await gql(CREATE_PARTNER, {"input": NEW})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        refused = await gql(CREATE_PARTNER, {"input": NEW}, as_user=tenant.user(role))
        assert error_codes(refused) == ["FORBIDDEN"], role
    assert await count_rows(db, Partner) == 4  # two per tenant: nothing was created

    created = (await gql.data(CREATE_PARTNER, {"input": NEW}, as_user=admin))["partnerCreate"]
    assert created["userErrors"] == []
    partner = created["partner"]
    assert partner["name"] == "Initrode GmbH"
    assert (partner["region"], partner["country"], partner["status"]) == ("EMEA", "DE", "ACTIVE")
    assert partner["tags"] == ["cloud", "reseller"]
    assert partner["contacts"] == [
        {"name": "Ada", "email": "ada@initrode.example", "phone": "+49 30 1234"}
    ]
    assert partner["externalRef"] == "CRM-1"
    [entry] = await _audit(db, tenant)
    assert (entry.action, entry.before, entry.actor) == (
        "partner.created",
        None,
        f"user:{admin.id}",
    )
    assert entry.after is not None
    assert entry.after["name"] == "Initrode GmbH"
    assert entry.after["tags"] == ["cloud", "reseller"]

    # The same name in another vendor is another partner; in the same vendor a duplicate.
    other = await gql.data(
        CREATE_PARTNER, {"input": NEW}, as_user=other_tenant.user(Role.VENDOR_ADMIN)
    )
    assert other["partnerCreate"]["userErrors"] == []
    again = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": "initrode gmbh"}}, as_user=admin
    )
    assert [e["code"] for e in again["partnerCreate"]["userErrors"]] == ["DUPLICATE_NAME"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ÉCOLE Systems", "école systems"),  # SQLite's lower() folds ASCII only
        ("Café Systems", "Cafe\u0301 Systems"),  # NFC and NFD: the same text
        ("Acme", "Acme\u200b"),  # a zero-width space
        ("Acme", "\uff21cme"),  # a fullwidth A
        ("Straße", "STRASSE"),
    ],
    ids=["accented-case", "nfd", "zero-width", "fullwidth", "sharp-s"],
)
async def test_a_name_another_partner_has_as_people_read_it_is_a_duplicate(
    gql: GQL, db: Database, tenant: Tenant, first: str, second: str
) -> None:
    """Names are one per vendor, compared as people read them: Unicode case folding (on
    SQLite too: its lower() folds ASCII only, so "école" passed beside "ÉCOLE" there and
    not on PostgreSQL), compatibility forms, and no invisible characters. A look-alike
    partner (an application's company name, say) could stand beside the real one on a
    leaderboard (found probing from outside)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": first, "externalRef": None}}, as_user=admin
    )
    assert made["partnerCreate"]["userErrors"] == []
    before = await count_rows(db, Partner)
    again = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": second, "externalRef": None}}, as_user=admin
    )
    assert [e["code"] for e in again["partnerCreate"]["userErrors"]] == ["DUPLICATE_NAME"]
    assert await count_rows(db, Partner) == before


async def test_a_name_whose_key_would_not_fit_the_index_is_too_long(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """The name key (NFKC, case folded) is stored under a unique index: 40 characters that
    NFKC spells out 18 characters each would not fit it, and are refused, not a server
    error."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": "\ufdfa" * 40, "externalRef": None}},
        as_user=admin,
    )  # fmt: skip
    errors = made["partnerCreate"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("TOO_LONG", "name")]
    assert await count_rows(db, Partner) == 2  # the tenant's own two


async def test_a_bulk_insert_that_names_no_key_gets_the_keys_of_its_names(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A Core ``insert(Partner)`` passes no object through the model's hook: its rows took
    the column's "" and the second row broke the unique key (the benchmarks' seeds did)."""
    rows = [
        {"id": new_id(), "vendor_id": tenant.vendor.id, "name": name, "region": "EMEA",
         "status": "ACTIVE", "created_at": clock.now()}
        for name in ("Bulk Éclair", "Bulk Two")
    ]  # fmt: skip
    async with db.transaction() as s:
        await s.execute(insert(Partner), rows)
    async with db.session() as s:
        keys = (await s.exec(select(Partner.name_key).where(col(Partner.name).like("Bulk%")))).all()
    assert sorted(keys) == ["bulk two", "bulk éclair"]


async def test_a_bulk_rename_gives_the_new_name_its_key(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    """A Core ``update(Partner).values(name=...)`` passes no object through the model's hook:
    it left the old key, so a look-alike of the new name was created beside it and the old
    name stayed taken."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    old_name = tenant.partners[0].name
    async with db.transaction() as s:
        await s.execute(
            update(Partner).where(col(Partner.id) == tenant.partners[0].id).values(name="Bulk Ÿ")
        )
    look_alike = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": "BULK ÿ", "externalRef": None}}, as_user=admin
    )
    assert [e["code"] for e in look_alike["partnerCreate"]["userErrors"]] == ["DUPLICATE_NAME"]
    freed = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": old_name, "externalRef": None}}, as_user=admin
    )
    assert freed["partnerCreate"]["userErrors"] == []


async def test_every_statement_that_writes_names_writes_their_keys(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """Renames of several rows in one statement (executemany, a name per row), an insert
    that gives a wrong key, an ORM rename: each row keeps the key of its name."""
    table = Partner.__table__  # type: ignore[attr-defined]
    first, second = (p.id for p in tenant.partners)
    made = new_id()
    async with db.transaction() as s:
        connection = await s.connection()
        await connection.execute(
            table.update().where(table.c.id == bindparam("pid")).values(name=bindparam("n")),
            [{"pid": first, "n": "Ｍany One"}, {"pid": second, "n": "Many TWO"}],
        )
        await connection.execute(
            table.insert().values(
                id=made, vendor_id=tenant.vendor.id, name="Given Ǆ", name_key="",
                region="EMEA", status="ACTIVE", created_at=clock.now(), contacts=[], tags=[],
            )
        )  # fmt: skip
    async with db.transaction() as s:
        await s.execute(update(Partner), [{"id": first, "name": "By Primary Key"}])
    async with db.session() as s:
        keys = dict((await s.exec(select(Partner.name, Partner.name_key))).all())
    assert keys == {
        "By Primary Key": "by primary key",
        "Many TWO": "many two",
        "Given Ǆ": "given dž",
    }


@pytest.mark.parametrize(
    "statement",
    [
        update(Partner).values(name=func.upper(Partner.name)),
        update(Partner).values(name_key="anything"),
        insert(Partner).values([{"name": "One"}, {"name": "Two"}]),
        update(Partner).ordered_values((Partner.name, "Ordered")),
    ],
    ids=["sql-expression", "key-alone", "values-list", "ordered-values"],
)
async def test_a_statement_whose_keys_cannot_be_computed_is_refused(
    db: Database, tenant: Tenant, statement: Any
) -> None:
    with pytest.raises(NameKeyError):
        async with db.transaction() as s:
            await s.execute(statement)
    async with db.session() as s:
        keys = (await s.exec(select(Partner.name_key))).all()
    assert sorted(keys) == sorted(name_key(p.name) for p in tenant.partners)


async def test_a_name_is_kept_in_its_composed_form(gql: GQL, tenant: Tenant) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(
        CREATE_PARTNER, {"input": {**NEW, "name": "Cafe\u0301 Systems"}}, as_user=admin
    )
    assert made["partnerCreate"]["partner"]["name"] == "Caf\u00e9 Systems"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"name": "  "}, "REQUIRED", "name"),
        ({"country": "ZZ"}, "INVALID_COUNTRY", "country"),
        ({"country": "UK"}, "INVALID_COUNTRY", "country"),
        ({"contacts": [{"name": "A", "email": "not-an-address"}]}, "INVALID_EMAIL",
         "contacts.0.email"),
        ({"contacts": [{"name": "", "email": "a@b.example"}]}, "REQUIRED", "contacts.0.name"),
        ({"contacts": [{"name": "A", "email": "a@b.example"}] * 11}, "TOO_MANY", "contacts"),
        ({"tags": ["no spaces"]}, "INVALID_TAG", "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "TOO_MANY", "tags"),
        ({"region": "X" * 33}, "TOO_LONG", "region"),
    ],
)  # fmt: skip
async def test_bad_partner_input_changes_nothing(
    gql: GQL, db: Database, tenant: Tenant, change: dict[str, Any], code: str, field: str
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    result = await gql.data(CREATE_PARTNER, {"input": {**NEW, **change}}, as_user=admin)
    errors = result["partnerCreate"]["userErrors"]
    assert (errors[0]["code"], errors[0]["field"]) == (code, field)
    assert result["partnerCreate"]["partner"] is None
    assert await count_rows(db, Partner) == 2
    assert await count_rows(db, AuditEntry) == 0


async def test_update_by_admin_and_by_the_assigned_manager(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin, manager = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.CHANNEL_MANAGER)
    assigned, unassigned = gid(tenant.partners[0]), gid(tenant.partners[1])
    changed = await gql.data(
        UPDATE,
        {"input": {"id": assigned, "legalName": "Legal Ltd", "country": "FR", "tags": ["a"]}},
        as_user=admin,
    )
    partner = changed["partnerUpdate"]["partner"]
    assert (partner["legalName"], partner["country"], partner["tags"]) == ("Legal Ltd", "FR", ["a"])
    assert partner["name"] == tenant.partners[0].name  # left out: unchanged

    # A channel manager: contacts and tags of its assigned partners, nothing else.
    contacts = [{"name": "Bo", "email": "bo@p.example"}]
    by_manager = await gql.data(
        UPDATE, {"input": {"id": assigned, "contacts": contacts, "tags": ["b"]}}, as_user=manager
    )
    assert by_manager["partnerUpdate"]["userErrors"] == []
    assert by_manager["partnerUpdate"]["partner"]["tags"] == ["b"]
    refused = await gql.data(
        UPDATE, {"input": {"id": assigned, "name": "Renamed", "tags": ["c"]}}, as_user=manager
    )
    assert [(e["code"], e["field"]) for e in refused["partnerUpdate"]["userErrors"]] == [
        ("FIELD_NOT_EDITABLE", "name")
    ]
    hidden = await gql.data(UPDATE, {"input": {"id": unassigned, "tags": ["c"]}}, as_user=manager)
    assert [e["code"] for e in hidden["partnerUpdate"]["userErrors"]] == ["NOT_FOUND"]
    other_vendor = await gql.data(
        UPDATE, {"input": {"id": assigned, "tags": ["c"]}},
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert [e["code"] for e in other_vendor["partnerUpdate"]["userErrors"]] == ["NOT_FOUND"]
    for role in (Role.FINANCE, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        denied = await gql(
            UPDATE, {"input": {"id": assigned, "tags": ["c"]}}, as_user=tenant.user(role)
        )
        assert error_codes(denied) == ["FORBIDDEN"]
    assert error_codes(await gql(UPDATE, {"input": {"id": assigned, "tags": ["c"]}})) == [
        "UNAUTHENTICATED"
    ]
    stored = (await _partners(db, tenant))[tenant.partners[0].name]
    assert stored.tags == ["b"]
    updates = await _audit(db, tenant)
    assert [(e.actor, e.before, e.after) for e in updates] == [
        (f"user:{admin.id}", {"country": None, "legal_name": "", "tags": []},
         {"country": "FR", "legal_name": "Legal Ltd", "tags": ["a"]}),
        (f"user:{manager.id}", {"contacts": [], "tags": ["a"]},
         {"contacts": [{"name": "Bo", "email": "bo@p.example", "phone": ""}], "tags": ["b"]}),
    ]  # fmt: skip
    assert stored.contacts == [{"name": "Bo", "email": "bo@p.example", "phone": ""}]
    # Renaming onto another partner's name is refused.
    clash = await gql.data(
        UPDATE, {"input": {"id": assigned, "name": tenant.partners[1].name}}, as_user=admin
    )
    assert [e["code"] for e in clash["partnerUpdate"]["userErrors"]] == ["DUPLICATE_NAME"]


async def test_suspend_refuses_its_users_and_reactivate_restores_them(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    rep = tenant.user(Role.PARTNER_REP)
    target = gid(tenant.partners[0])
    assert "errors" not in await gql(ME, as_user=rep)

    for role in (Role.CHANNEL_MANAGER, Role.FINANCE, Role.PARTNER_ADMIN):
        denied = await gql(
            SUSPEND, {"input": {"id": target, "reason": "x"}}, as_user=tenant.user(role)
        )
        assert error_codes(denied) == ["FORBIDDEN"]
    other = await gql.data(
        SUSPEND, {"input": {"id": target, "reason": "x"}},
        as_user=other_tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert [e["code"] for e in other["partnerSuspend"]["userErrors"]] == ["NOT_FOUND"]
    no_reason = await gql.data(SUSPEND, {"input": {"id": target, "reason": " "}}, as_user=admin)
    assert [e["code"] for e in no_reason["partnerSuspend"]["userErrors"]] == ["REQUIRED"]
    assert (await _partners(db, tenant))[tenant.partners[0].name].status is PartnerStatus.ACTIVE

    suspended = await gql.data(
        SUSPEND, {"input": {"id": target, "reason": "unpaid invoices"}}, as_user=admin
    )
    partner = suspended["partnerSuspend"]["partner"]
    assert (partner["status"], partner["statusReason"]) == ("SUSPENDED", "unpaid invoices")
    refused = await gql(ME, as_user=rep)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    assert refused["errors"][0]["extensions"]["reason"] == "PARTNER_INACTIVE"
    twice = await gql.data(SUSPEND, {"input": {"id": target, "reason": "again"}}, as_user=admin)
    assert [e["code"] for e in twice["partnerSuspend"]["userErrors"]] == ["NOT_ACTIVE"]
    # Still listed (not archived) for the vendor.
    listed = await gql.data(PARTNERS, {"filter": {"status": "SUSPENDED"}}, as_user=admin)
    assert listed["partners"]["totalCount"] == 1

    back = await gql.data(REACTIVATE, {"input": {"id": target}}, as_user=admin)
    assert back["partnerReactivate"]["partner"]["status"] == "ACTIVE"
    entries = await _audit(db, tenant)
    assert [(e.action, e.before, e.after, e.reason) for e in entries] == [
        ("partner.suspended", {"status": "ACTIVE", "status_reason": None},
         {"status": "SUSPENDED", "status_reason": "unpaid invoices"}, "unpaid invoices"),
        ("partner.reactivated", {"status": "SUSPENDED", "status_reason": "unpaid invoices"},
         {"status": "ACTIVE", "status_reason": None}, None),
    ]  # fmt: skip
    assert {e.actor for e in entries} == {f"user:{admin.id}"}
    assert {e.entity_id for e in entries} == {str(tenant.partners[0].id)}
    assert "errors" not in await gql(ME, as_user=rep)
    not_suspended = await gql.data(REACTIVATE, {"input": {"id": target}}, as_user=admin)
    assert [e["code"] for e in not_suspended["partnerReactivate"]["userErrors"]] == [
        "NOT_SUSPENDED"
    ]


async def test_archive_hides_the_partner_and_keeps_it_unchanged(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    target = gid(tenant.partners[1])
    denied = await gql(
        ARCHIVE, {"input": {"id": target}}, as_user=tenant.user(Role.CHANNEL_MANAGER)
    )
    assert error_codes(denied) == ["FORBIDDEN"]
    archived = await gql.data(
        ARCHIVE, {"input": {"id": target, "reason": "left the program"}}, as_user=admin
    )
    assert archived["partnerArchive"]["partner"]["status"] == "ARCHIVED"

    default = await gql.data(PARTNERS, as_user=admin)
    assert [e["node"]["name"] for e in default["partners"]["edges"]] == [tenant.partners[0].name]
    everything = await gql.data(PARTNERS, {"filter": {"includeArchived": True}}, as_user=admin)
    assert everything["partners"]["totalCount"] == 2
    # Still readable by id (history is kept), but it takes no changes.
    by_id = await gql.data("query($id: ID!) { partner(id: $id) { status } }", {"id": target},
                           as_user=admin)  # fmt: skip
    assert by_id["partner"]["status"] == "ARCHIVED"
    for query, variables in (
        (UPDATE, {"id": target, "tags": ["x"]}),
        (SUSPEND, {"id": target, "reason": "x"}),
        (REACTIVATE, {"id": target}),
        (ARCHIVE, {"id": target}),
    ):
        result = await gql.data(query, {"input": variables}, as_user=admin)
        [payload] = result.values()
        assert [e["code"] for e in payload["userErrors"]] == ["ARCHIVED"], query
    refused = await gql(ME, as_user=tenant.user(Role.PARTNER_ADMIN, 1))
    assert refused["errors"][0]["extensions"]["reason"] == "PARTNER_INACTIVE"


async def test_a_suspended_partner_keeps_earning_on_what_it_submitted_before(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    clock.freeze(clock.now().replace(day=3))
    serials = await seed_registry(db, clock, tenant)
    await es.make_program(db, clock, tenant, es.Rules(base_rates=(es.BaseRate(rate_bp=1_000),)))
    admin, rep = tenant.user(Role.VENDOR_ADMIN), tenant.user(Role.PARTNER_REP)
    await gql.data(
        "mutation { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }",
        as_user=admin,
    )
    created = await gql.data(
        CREATE,
        {"input": claim_input(serials[:1], clock, amount={"amount": "900.00", "currency": "USD"})},
        as_user=rep,
    )
    claim = created["saleClaimCreate"]["saleClaim"]
    assert claim["state"] == "UNDER_REVIEW"
    await gql.data(
        SUSPEND, {"input": {"id": gid(tenant.partners[0]), "reason": "audit"}}, as_user=admin
    )
    # It submits nothing new (its users are refused) ...
    refused = await gql(CREATE, {"input": claim_input(serials[1:2], clock)}, as_user=rep)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    # ... but what it submitted is still reviewed, and the approved sale is credited.
    approved = await gql.data(
        """mutation($input: SaleClaimApproveInput!) {
          saleClaimApprove(input: $input) { saleClaim { state } userErrors { code } } }""",
        {"input": {"id": claim["id"]}}, as_user=admin,
    )  # fmt: skip
    assert approved["saleClaimApprove"]["saleClaim"]["state"] == "APPROVED"
    await services.outbox.dispatch_pending()
    async with db.session() as session:
        entries = list(await session.exec(select(EarningEntry)))
    assert sum(e.amount_minor for e in entries) == 9_000
    assert {e.partner_id for e in entries} == {tenant.partners[0].id}


async def test_a_search_term_is_text_its_wildcards_matched_as_themselves(
    gql: GQL, tenant: Tenant
) -> None:
    """``%`` and ``_`` in a term went into the LIKE pattern as wildcards: "100%" found
    "Uptime 1000 Ltd" and "Net_" found "NetXWorks"."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    for name in ("Uptime 100% Ltd", "Uptime 1000 Ltd", "Net_Works", "NetXWorks"):
        await gql.data(CREATE_PARTNER, {"input": {"name": name, "region": "emea"}}, as_user=admin)
    for term, found in (
        ("100%", ["Uptime 100% Ltd"]),
        ("net_", ["Net_Works"]),
        ("%", ["Uptime 100% Ltd"]),
    ):
        data = await gql.data(PARTNERS, {"filter": {"search": term}}, as_user=admin)
        assert [e["node"]["name"] for e in data["partners"]["edges"]] == found, term
