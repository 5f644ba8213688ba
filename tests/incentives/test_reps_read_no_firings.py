"""A rule's firing is an organisation-level record (``RepAccess.NONE``, as earnings'
statements and holds): it read the organisation's signals and may hold its payouts. The
partner admin reads it explained; a partner rep reads none of it (its own earnings explain
what reaches its own sales), while the recommendations, advice without figures, reach every
user of the partner."""

from __future__ import annotations

from incentives.actions import Action, ActionKind
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, shop
from tests.support import GQL, error_codes

EXPLAINED = "{ incentiveExplanations { text } }"
RECOMMENDED = "{ ruleRecommendations { title } }"
NEXT = "{ nextActions { actions { kind title why } } }"


async def test_a_rep_never_reads_its_organisations_hold_or_the_figures_behind_a_firing(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition=GROWTH, actions=[
        Action(ActionKind.PAYOUT_HOLD, days=14, partner_reason="Unusual spike under review"),
        Action(ActionKind.GROUP_WINDOW, days=30, group_id=s.boost_group_id),
        Action(ActionKind.RECOMMEND, days=14, title="Keep growing", text="More of the same."),
    ])  # fmt: skip
    assert await daily(db, clock) == 1  # partner 0 grew 24 %

    # The partner admin: the organisation's view, the hold and the growth that fired it.
    admin = await gql.data(EXPLAINED, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    [explained] = admin["incentiveExplanations"]
    assert "Your revenue grew 24 % week over week" in explained["text"]
    assert "your payouts are held for review until" in explained["text"]

    # Its rep: nothing of the firing, through any field; the advice only.
    rep = tenant.user(Role.PARTNER_REP, 0)
    assert (await gql.data(EXPLAINED, as_user=rep))["incentiveExplanations"] == []
    assert (await gql.data(RECOMMENDED, as_user=rep))["ruleRecommendations"] == [
        {"title": "Keep growing"}
    ]
    answers = [await gql(query, as_user=rep) for query in (EXPLAINED, RECOMMENDED, NEXT)]
    for text in map(str, answers):
        for secret in ("Unusual spike", "held", "24 %", "grew"):
            assert secret not in text, (secret, text)

    # Another partner's users, another vendor's: none of partner 0's firing.
    for user in (tenant.user(Role.PARTNER_ADMIN, 1), tenant.user(Role.PARTNER_REP, 1),
                 other_tenant.user(Role.PARTNER_ADMIN), other_tenant.user(Role.PARTNER_REP),
                 other_tenant.user(Role.VENDOR_ADMIN)):  # fmt: skip
        assert (await gql.data(EXPLAINED, as_user=user))["incentiveExplanations"] == [], user
    assert error_codes(await gql(EXPLAINED)) == ["UNAUTHENTICATED"]
