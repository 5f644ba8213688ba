"""A partner's explanations drop the firings it may not see before the limit: newer firings
of a staff-only rule never push an older visible one out of the list."""

from __future__ import annotations

from datetime import timedelta

import pytest

from incentives.actions import Action, ActionKind
from incentives.models import Period
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from schema.incentives import queries
from tests.factories import Tenant
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import T0, shop
from tests.support import GQL

EXPLAINED = "{ incentiveExplanations { text } }"
BIG_SELLER = "revenue_30d >= 100000"  # partner 0 only


async def test_invisible_firings_do_not_crowd_out_visible_ones(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queries, "MAX_EXPLANATIONS", 2)  # a small limit, three firings
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, name="Nudge", condition=BIG_SELLER, period=Period.MONTH,
                      actions=[Action(ActionKind.RECOMMEND, days=14, title="Bundle a care pack",
                                      text="Add a care pack to your next quote.")])  # fmt: skip
    assert await daily(db, clock) == 1
    await active_rule(db, clock, s, name="Staff ping", condition=BIG_SELLER, period=Period.DAY,
                      actions=[Action(ActionKind.NOTIFY_STAFF, message="Big seller")])  # fmt: skip
    for days in (1, 2):  # two newer firings the partner does not see
        clock.freeze(T0 + timedelta(days=days))
        assert await daily(db, clock) == 1 + days
    data = await gql.data(EXPLAINED, as_user=tenant.user(Role.PARTNER_ADMIN, 0))
    assert [e["text"] for e in data["incentiveExplanations"]] == [
        "Your revenue over the last 30 days was 2,240.00 USD, so we recommend: Bundle a care pack."
    ]
    other = await gql.data(EXPLAINED, as_user=tenant.user(Role.PARTNER_ADMIN, 1))
    assert other["incentiveExplanations"] == []
