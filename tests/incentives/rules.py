"""Making rules for tests: a rule drafted by the shop's first admin and approved by the
second, through the services (the whole-life test does it through GraphQL)."""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from incentives import rules
from incentives.actions import Action
from incentives.daily import run_due
from incentives.models import IncentiveRule, IncentiveRuleVersion, Period, RuleFiring
from infra.clock import OffsetClock
from infra.db import Database
from tests.earnings import scenarios as es
from tests.factories import principal_of
from tests.incentives.scenarios import Shop


async def active_rule(
    db: Database,
    clock: OffsetClock,
    s: Shop,
    *,
    condition: str,
    actions: list[Action],
    name: str = "Growth kicker",
    period: Period = Period.WEEK,
    **extra: Any,
) -> IncentiveRule:
    async def make(session: Any) -> IncentiveRule:
        rule = await rules.create_rule(
            session, principal_of(s.author), clock, name=name, condition=condition,
            actions=actions, period=period, **extra,
        )  # fmt: skip
        [version] = await _versions(session, rule)
        return await rules.approve(
            session, principal_of(s.approver), clock, version_id=version, reason="ok"
        )

    return await es.tx(db, make)


async def _versions(session: Any, rule: IncentiveRule) -> list[Any]:
    rows = await session.exec(
        select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
    )
    return list(rows)


async def daily(db: Database, clock: OffsetClock) -> int:
    """Run the daily evaluation; the number of firings there are then (counted, not taken
    from the run: the app's own daily loop may have run it a moment before)."""
    await run_due(db, clock)
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(RuleFiring)) or 0)
