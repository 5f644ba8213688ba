"""Contest eligibility matches a partner's region and tier exactly. The SQL that decides
which contests a partner user reads tested them with LIKE, so ``_`` and ``%`` in a
vendor-chosen region or tier were wildcards (a partner in region ``EM_A`` read a contest for
``EMEA``; region ``%`` read every contest limited by region); and the lists are stored as
",A,B,", so a region with a comma (``APAC,EMEA``) read, and scored in, a contest listing
APAC and EMEA."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.models import Partner
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.leaderboards.test_scoring import board
from tests.support import GQL

UPDATE = """mutation($input: PartnerUpdateInput!) { partnerUpdate(input: $input) {
  partner { region } userErrors { field code message } } }"""
TIER = """mutation($input: PartnerTierSetInput!) { partnerTierSet(input: $input) {
  partner { programTier } userErrors { code field } } }"""
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
