"""Two firings at the same moment, each in its own transaction and session (two outbox
handlers, or a handler and the daily run, in two processes): the rule's budget and the
1,000 bp cap on a partner's program hold as if they had run one after the other. On
PostgreSQL the two really interleave (asyncio.gather); on SQLite the write lock serialises
them, and what the first committed must still count for the second."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from sqlmodel import col, select

from earnings.models import RateOverlay
from incentives import rules
from incentives.actions import SOURCE, Action, ActionKind
from incentives.evaluation import evaluate_vendor
from incentives.models import IncentiveRule, Period, RuleFiring
from infra.clock import OffsetClock
from infra.db import Database, begin_write
from schema.context import Services
from tests.factories import Tenant, blocked_on_a_lock, principal_of
from tests.incentives.rules import active_rule
from tests.incentives.scenarios import shop


async def evaluate(
    db: Database,
    clock: OffsetClock,
    vendor_id: uuid.UUID,
    *,
    partner_ids: Collection[uuid.UUID],
    changed: Collection[str],
) -> int:
    async with db.transaction() as session:
        await begin_write(session)
        out = await evaluate_vendor(
            session, clock, vendor_id=vendor_id, day=clock.now().date(), trigger="SIGNALS",
            partner_ids=sorted(partner_ids), changed=changed,
        )  # fmt: skip
        return len(out.firings)


async def outcomes(
    db: Database, rule_id: uuid.UUID, partner_id: uuid.UUID | None = None
) -> list[str | None]:
    """The rule's firings' outcomes (of one partner's, given ``partner_id``)."""
    statement = select(RuleFiring).where(RuleFiring.rule_id == rule_id)
    if partner_id is not None:
        statement = statement.where(RuleFiring.partner_id == partner_id)
    async with db.session() as session:
        firings = list(await session.exec(statement))
    return sorted((f.outcomes[0].get("skipped") or "PLACED") for f in firings)


async def test_two_concurrent_firings_of_a_rule_do_not_both_spend_its_budget(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    # Either partner's estimate (1.49 or 0.33 USD) spends the 0.30 cap on its own.
    rule = await active_rule(db, clock, s, condition="revenue_30d > 0", period=Period.DAY,
                             budget_cap_minor=30, actions=[
        Action(ActionKind.RATE_OVERLAY, days=1, program_id=s.base_program_id, delta_bp=200)
    ])  # fmt: skip
    first, second = tenant.partners[0].id, tenant.partners[1].id
    await asyncio.gather(
        evaluate(db, clock, tenant.vendor.id, partner_ids=[first], changed=["revenue_30d"]),
        evaluate(db, clock, tenant.vendor.id, partner_ids=[second], changed=["revenue_30d"]),
    )
    # (The app's daily run may have fired one of them first: the outcome is the same.)
    assert await outcomes(db, rule.id) == ["BUDGET_REACHED", "PLACED"]
    async with db.session() as session:
        placed = list(
            await session.exec(
                select(RateOverlay).where(
                    RateOverlay.source == SOURCE, RateOverlay.source_id == rule.id
                )
            )
        )
        stored = await session.get(IncentiveRule, rule.id)
    assert len(placed) == 1
    assert stored is not None
    assert stored.budget_committed_minor >= 30  # what the placed overlay was estimated at


async def test_two_rules_firing_at_once_stay_within_the_overlay_cap(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    overlay = Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=600)
    monthly = await active_rule(db, clock, s, name="Monthly", condition="revenue_30d > 0",
                                actions=[overlay])  # fmt: skip
    weekly = await active_rule(db, clock, s, name="Weekly", condition="revenue_7d > 0",
                               actions=[overlay])  # fmt: skip
    partner = tenant.partners[0].id
    await asyncio.gather(
        evaluate(db, clock, tenant.vendor.id, partner_ids=[partner], changed=["revenue_30d"]),
        evaluate(db, clock, tenant.vendor.id, partner_ids=[partner], changed=["revenue_7d"]),
    )
    async with db.session() as session:
        live = list(
            await session.exec(
                select(RateOverlay).where(
                    RateOverlay.partner_id == partner,
                    RateOverlay.program_id == s.base_program_id,
                    col(RateOverlay.ended_at).is_(None),
                )
            )
        )
    assert sum(o.delta_bp for o in live) == 600  # one of the two: 1,200 would pass the cap
    # This partner's firings: the app's daily run (every minute) may also have fired the
    # rules for the other partner, firings of its own (seen in a loaded CI run).
    mine = [*await outcomes(db, monthly.id, partner), *await outcomes(db, weekly.id, partner)]
    assert sorted(mine) == [
        "CAP_REACHED",
        "PLACED",
    ]


async def test_an_evaluation_waiting_on_an_approval_fires_nothing_of_the_replaced_version(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """An evaluation that read version 1 as active while version 2's approval was under way
    waits for the approval (the rule's row lock, taken first by approve, roll back and
    pause), then sees the rule changed and fires nothing: before, a rule that spends no
    budget took no lock, and v1's firing landed after the approval had ended v1's effects
    (its recommendation then stayed beside v2)."""
    s = await shop(db, clock, tenant, services)
    go = [Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")]
    everyone = [p.id for p in tenant.partners]
    async with services.outbox.paused():  # no evaluation at activation in the background
        rule = await active_rule(db, clock, s, condition="revenue_30d > 0", actions=go)
        v1 = rule.active_version_id
        async with db.transaction() as session:
            v2 = await rules.draft_version(
                session, principal_of(s.author), clock, rule_id=rule.id,
                condition="revenue_30d > 1000000000", actions=go,
            )  # fmt: skip
        async with db.transaction() as approving, db.session() as watching:
            await rules.approve(
                approving, principal_of(s.approver), clock, version_id=v2.id, reason="ok"
            )
            evaluating = asyncio.create_task(
                evaluate(db, clock, tenant.vendor.id, partner_ids=everyone, changed=["revenue_30d"])
            )
            await blocked_on_a_lock(watching, evaluating)
        await evaluating
        async with db.session() as session:
            fired = list(await session.exec(select(RuleFiring.version_id)))
    assert v1 not in fired
