"""A condition whose integer arithmetic overflows (CEL ints are 64-bit) cannot be evaluated
on those values: it does not fire, like a division by zero. Neither its creation, its dry
run nor the daily evaluation fails on it."""

from __future__ import annotations

import pytest

from incentives.actions import Action, ActionKind
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests.factories import Tenant
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import shop
from tests.support import GQL

CREATE = """mutation($input: IncentiveRuleCreateInput!) { incentiveRuleCreate(input: $input) {
  rule { id versions { id } } userErrors { code field } } }"""
DRY_RUN = "query($v: ID!) { incentiveRuleDryRun(versionId: $v) { firing } }"
MAX = "9223372036854775807"


@pytest.mark.parametrize(
    "condition",
    [f"revenue_30d * {MAX} > 0", f"revenue_30d - {MAX} - {MAX} < 0", f"-revenue_30d - {MAX} < 0"],
)
async def test_an_overflowing_condition_is_accepted_and_its_dry_run_answers(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services, condition: str
) -> None:
    s = await shop(db, clock, tenant, services)
    actions = [{"kind": "RECOMMEND", "title": "Go", "text": "Sell more."}]
    created = await gql.data(
        CREATE, {"input": {"name": "Big", "condition": condition, "actions": actions}},
        as_user=s.author,
    )  # fmt: skip
    assert created["incentiveRuleCreate"]["userErrors"] == []
    version = created["incentiveRuleCreate"]["rule"]["versions"][0]["id"]
    dry = await gql.data(DRY_RUN, {"v": version}, as_user=s.author)
    assert dry == {"incentiveRuleDryRun": {"firing": 0}}


async def test_a_condition_overflowing_on_the_days_figures_does_not_stop_the_daily_run(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    # Fine on the figures checked at creation; overflows on partner 0's revenue.
    await active_rule(db, clock, s, condition=f"revenue_30d / 100001 * {MAX} > 0", actions=[
        Action(ActionKind.RECOMMEND, days=3, title="Go", text="Sell more."),
    ])  # fmt: skip
    await active_rule(db, clock, s, name="Any sale", condition="revenue_30d > 0", actions=[
        Action(ActionKind.RECOMMEND, days=3, title="Again", text="Sell again."),
    ])  # fmt: skip
    assert await daily(db, clock) == 2  # the second rule fired for both partners
