"""Contest eligibility matches a partner's region and tier exactly. The SQL that decides
which contests a partner user reads tested them with LIKE, so ``_`` and ``%`` in a
vendor-chosen region or tier were wildcards (a partner in region ``EM_A`` read a contest for
``EMEA``; region ``%`` read every contest limited by region); and the lists are stored as
",A,B,", so a region with a comma (``APAC,EMEA``) read, and scored in, a contest listing
APAC and EMEA. A comma is now refused wherever such a value comes in, with
INVALID_CHARACTERS on the field, and nothing changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.models import Partner, PartnerApplication
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.leaderboards.test_scoring import board
from tests.support import GQL, count_rows, multipart

UPDATE = """mutation($input: PartnerUpdateInput!) { partnerUpdate(input: $input) {
  partner { region } userErrors { field code message } } }"""
CREATE_PARTNER = """mutation($input: PartnerCreateInput!) { partnerCreate(input: $input) {
  partner { id } userErrors { field code message } } }"""
TIER = """mutation($input: PartnerTierSetInput!) { partnerTierSet(input: $input) {
  partner { programTier } userErrors { code field } } }"""
CREATE_CONTEST = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id } userErrors { field code message } } }"""
UPDATE_CONTEST = """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
  contest { eligibility { regions } } userErrors { field code message } } }"""
CONTESTS = "{ contests { edges { node { name } } } }"
CONTEST = "query($id: ID!) { contest(id: $id) { name } }"


async def _set_region(gql: GQL, tenant: Tenant, index: int, region: str) -> None:
    data = await gql.data(
        UPDATE, {"input": {"id": gid(tenant.partners[index]), "region": region}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert data["partnerUpdate"] == {"partner": {"region": region}, "userErrors": []}


async def _seen(gql: GQL, tenant: Tenant, index: int) -> list[str]:
    data = await gql.data(CONTESTS, as_user=tenant.user(Role.PARTNER_REP, index))
    return sorted(e["node"]["name"] for e in data["contests"]["edges"])


async def _reads(gql: GQL, tenant: Tenant, index: int, contest: Contest) -> bool:
    data = await gql.data(
        CONTEST, {"id": gid(contest)}, as_user=tenant.user(Role.PARTNER_ADMIN, index)
    )
    return data["contest"] is not None


async def test_underscore_and_percent_in_a_region_or_tier_match_only_themselves(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    await _set_region(gql, tenant, 0, "EM_A")
    await _set_region(gql, tenant, 1, "%")
    tier = await gql.data(
        TIER, {"input": {"partnerId": gid(tenant.partners[0]), "tier": "GOL_", "reason": "t"}},
        as_user=tenant.user(Role.VENDOR_ADMIN),
    )  # fmt: skip
    assert tier["partnerTierSet"] == {"partner": {"programTier": "GOL_"}, "userErrors": []}
    emea = await create_contest(db, clock, tenant, name="EMEA", eligible_regions=["EMEA"])
    gold = await create_contest(db, clock, tenant, name="Gold", eligible_tiers=["GOLD"])
    await create_contest(db, clock, tenant, name="Open")
    em_a = await create_contest(db, clock, tenant, name="EM_A", eligible_regions=["EM_A"])
    await create_contest(db, clock, tenant, name="Percent", eligible_regions=["%"])
    await create_contest(db, clock, tenant, name="GOL_", eligible_tiers=["GOL_"])

    assert await _seen(gql, tenant, 0) == ["EM_A", "GOL_", "Open"]
    assert await _seen(gql, tenant, 1) == ["Open", "Percent"]
    for index in (0, 1):
        assert not await _reads(gql, tenant, index, emea)
    assert not await _reads(gql, tenant, 0, gold)
    assert await _reads(gql, tenant, 0, em_a)

    # Scoring reads the same lists: partner 0's sale (in its region) counts in the contest
    # for EM_A only, never in the one for EMEA or GOLD.
    await approve_sale(db, clock, tenant, partner=0, amount=300_00, region="EM_A")
    await approve_sale(db, clock, tenant, partner=1, amount=200_00, region="%")
    await dispatch(services)
    assert await board(services, emea) == []
    assert await board(services, gold) == []
    assert await board(services, em_a) == [(str(tenant.partners[0].id), 1, 300_00)]


async def test_a_region_stored_with_a_comma_is_not_two_regions(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    """A value stored before commas were refused matches no list item."""
    async with db.transaction() as session:
        await session.exec(
            update(Partner)
            .where(col(Partner.id) == tenant.partners[0].id)
            .values(region="APAC,EMEA")
        )
    both = await create_contest(
        db, clock, tenant, name="APAC and EMEA", eligible_regions=["EMEA", "APAC"]
    )
    assert await _seen(gql, tenant, 0) == []
    assert not await _reads(gql, tenant, 0, both)
    assert await _seen(gql, tenant, 1) == ["APAC and EMEA"]
    await approve_sale(db, clock, tenant, partner=0, amount=300_00, region="APAC,EMEA")
    await approve_sale(db, clock, tenant, partner=1, amount=200_00, region="EMEA")
    await dispatch(services)
    assert await board(services, both) == [(str(tenant.partners[1].id), 1, 200_00)]


def _contest_input(clock: OffsetClock, **extra: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "name": "Spring sprint", "startsAt": (now - timedelta(hours=1)).isoformat(),
        "endsAt": (now + timedelta(days=7)).isoformat(), **extra,
    }  # fmt: skip


def _refused(errors: list[dict[str, str]], field: str) -> None:
    [error] = errors
    assert (error["code"], error["field"]) == ("INVALID_CHARACTERS", field)
    assert "comma" in error["message"]


async def test_a_comma_is_refused_in_a_partner_region_and_a_contest_list(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    partners = await count_rows(db, Partner)
    created = await gql.data(
        CREATE_PARTNER, {"input": {"name": "Initrode", "region": "EMEA,APAC"}}, as_user=admin
    )
    assert created["partnerCreate"]["partner"] is None
    _refused(created["partnerCreate"]["userErrors"], "region")
    assert await count_rows(db, Partner) == partners

    updated = await gql.data(
        UPDATE, {"input": {"id": gid(tenant.partners[0]), "region": "EMEA,APAC"}}, as_user=admin
    )
    assert updated["partnerUpdate"]["partner"] is None
    _refused(updated["partnerUpdate"]["userErrors"], "region")
    async with db.session() as session:
        assert (await session.get_one(Partner, tenant.partners[0].id)).region == "EMEA"

    contests = await count_rows(db, Contest)
    for key in ("regions", "tiers", "skus"):
        values = _contest_input(clock, eligibility={key: ["EMEA", "APAC,GOLD"]})
        data = await gql.data(CREATE_CONTEST, {"input": values}, as_user=admin)
        assert data["contestCreate"]["contest"] is None
        _refused(data["contestCreate"]["userErrors"], f"eligibility.{key}")
    assert await count_rows(db, Contest) == contests

    contest = await create_contest(db, clock, tenant, eligible_regions=["EMEA"])
    data = await gql.data(
        UPDATE_CONTEST,
        {"input": {"id": gid(contest), "eligibility": {"regions": ["EMEA,APAC"]}}},
        as_user=admin,
    )
    assert data["contestUpdate"]["contest"] is None
    _refused(data["contestUpdate"]["userErrors"], "eligibility.regions")
    async with db.session() as session:
        assert (await session.get_one(Contest, contest.id)).eligible_regions == ",EMEA,"


APPLY = """mutation($input: PartnerApplyInput!) { partnerApply(input: $input) {
  userErrors { field code } } }"""
APPROVE = """mutation($input: PartnerApplicationApproveInput!) {
  partnerApplicationApprove(input: $input) {
    application { status } userErrors { field code message } } }"""
IMPORT = """mutation($input: PartnersImportInput!) { partnersImport(input: $input) {
  result { applied } rowErrors { line code message } userErrors { code } } }"""


async def test_a_comma_is_refused_in_an_approved_or_imported_region(
    gql: GQL, db: Database, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    form = {
        "vendorSlug": tenant.vendor.slug, "company": "Hooli Resellers", "contactName": "Gavin",
        "country": "us", "contactEmail": "gavin@hooli.example",
    }  # fmt: skip
    applied = await gql.data(APPLY, {"input": form})
    assert applied["partnerApply"]["userErrors"] == []
    listed = await gql.data("{ partnerApplications { edges { node { id } } } }", as_user=admin)
    application = listed["partnerApplications"]["edges"][0]["node"]["id"]
    partners = await count_rows(db, Partner)
    approved = await gql.data(
        APPROVE, {"input": {"id": application, "region": "EMEA,APAC"}}, as_user=admin
    )
    assert approved["partnerApplicationApprove"]["application"] is None
    _refused(approved["partnerApplicationApprove"]["userErrors"], "region")
    assert await count_rows(db, Partner) == partners
    assert await count_rows(db, PartnerApplication) == 1

    data = b'name,region\nAlpha Networks,EMEA\nBeta Networks,"EMEA,APAC"\n'
    files = {"variables.input.file": ("partners.csv", data, "text/csv")}
    response = await multipart(
        gql, IMPORT, {"input": {"file": None}}, files, token=gql.token(admin)
    )
    result = response.json()["data"]["partnersImport"]
    assert result["result"]["applied"] is False
    [error] = result["rowErrors"]
    assert (error["line"], error["code"]) == (3, "INVALID_CHARACTERS")
    assert "region" in error["message"]
    assert "comma" in error["message"]
    assert await count_rows(db, Partner) == partners
