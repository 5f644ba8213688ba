"""`nextActions` (issue 13, item 5): the built-in sources, ranked, each with why; a rep's own
and its organisation's; vendor staff read a partner's by id; everyone else is refused, and
no answer shows another partner's actions."""

from __future__ import annotations

from typing import Any

from infra.clock import OffsetClock
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, gid
from tests.next_actions.scenarios import KINDS_IN_ORDER, QUERY, world
from tests.support import GQL, error_codes


async def actions(gql: GQL, user: Any, partner_id: str | None = None) -> list[dict[str, Any]]:
    data = await gql.data(QUERY, {"partnerId": partner_id}, as_user=user)
    return data["nextActions"]["actions"]  # type: ignore[no-any-return]


async def test_a_partner_admin_gets_every_built_in_action_ranked_with_why(
    gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    made = await world(gql, clock, tenant, services)
    found = await actions(gql, tenant.user(Role.PARTNER_ADMIN, 0))
    assert [a["kind"] for a in found] == KINDS_IN_ORDER
    by_kind = {a["kind"]: a for a in found}
    hold = by_kind["HOLD_NEEDS_DOCUMENT"]
    assert hold["title"] == "Send your tax form to release 1,080.00 USD"
    assert hold["why"].startswith("Your payout for February 2026 is held. We need your tax form")
    assert hold["amount"] == {"amountMinor": 108_000, "currency": "USD"}
    claim = by_kind["CLAIM_NEEDS_PROOF"]
    assert claim["subjectId"] == made["claim"]["id"]
    assert claim["code"] == claim["title"].removeprefix("Upload proof for invoice ")
    assert "waits for proof" in claim["why"]
    deal = by_kind["DEAL_PROTECTION_EXPIRING"]
    assert deal["subjectId"] == gid(made["deal"])
    assert "ends in 8 days, on 12 Mar 2026" in deal["why"]
    contest = by_kind["CONTEST_PRIZE_IN_REACH"]
    assert contest["subjectId"] == gid(made["contest"])
    assert "in Spring sprint" in contest["title"]
    assert "You are ranked 2 in Spring sprint" in contest["why"]
    assert "place 1 (A trip to Lisbon)" in contest["why"]
    tier = by_kind["NEXT_TIER"]
    assert tier["title"] == "Sell 12,100.00 USD more to reach Gold"
    assert tier["why"] == (
        "Your 30-day qualified revenue is 12,900.00 USD; Gold starts at 25,000.00 USD and "
        "adds +1% on every sale."
    )
    # The contest leader, with its tax form on file and no open claim or deal: its tier only.
    other = await actions(gql, tenant.user(Role.PARTNER_ADMIN, 1))
    assert [a["kind"] for a in other] == ["NEXT_TIER"]


async def test_a_rep_gets_its_own_and_its_organisations_but_no_holds(
    gql: GQL, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    await world(gql, clock, tenant, services)
    found = await actions(gql, tenant.user(Role.PARTNER_REP, 0))
    assert [a["kind"] for a in found] == KINDS_IN_ORDER[1:]
    # Another partner's rep sees none of them.
    theirs = await actions(gql, tenant.user(Role.PARTNER_REP, 1))
    assert [a["kind"] for a in theirs] == ["NEXT_TIER"]


async def test_vendor_staff_read_a_partners_by_id_and_others_are_refused(
    gql: GQL, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, services: Services
) -> None:
    await world(gql, clock, tenant, services)
    own = await actions(gql, tenant.user(Role.PARTNER_ADMIN, 0))
    partner_0, partner_1 = gid(tenant.partners[0]), gid(tenant.partners[1])
    assert await actions(gql, tenant.user(Role.VENDOR_ADMIN), partner_0) == own
    assert await actions(gql, tenant.user(Role.CHANNEL_MANAGER), partner_0) == own
    assert await actions(gql, tenant.user(Role.PARTNER_ADMIN, 0), partner_0) == own

    def codes(answer: dict[str, Any]) -> list[str]:
        return error_codes(answer)

    assert codes(await gql(QUERY, {"partnerId": partner_0})) == ["UNAUTHENTICATED"]
    assert codes(await gql(QUERY, {"partnerId": partner_0},
                           as_user=tenant.user(Role.FINANCE))) == ["FORBIDDEN"]  # fmt: skip
    refused = [
        (tenant.user(Role.VENDOR_ADMIN), None, "PARTNER_REQUIRED"),
        (tenant.user(Role.CHANNEL_MANAGER), partner_1, "NOT_FOUND"),  # not assigned to it
        (tenant.user(Role.PARTNER_ADMIN, 1), partner_0, "NOT_FOUND"),
        (tenant.user(Role.PARTNER_REP, 1), partner_0, "NOT_FOUND"),
        (other_tenant.user(Role.VENDOR_ADMIN), partner_0, "NOT_FOUND"),
        (tenant.user(Role.VENDOR_ADMIN), "not-an-id", "NOT_FOUND"),
    ]
    for user, partner_id, code in refused:
        answer = await gql(QUERY, {"partnerId": partner_id}, as_user=user)
        assert codes(answer) == [code], (user.email, partner_id)
        assert (answer["data"] or {}).get("nextActions") is None
