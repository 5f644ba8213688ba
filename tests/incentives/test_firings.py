"""Firings: idempotent per (rule version, activation, partner, period) whichever evaluation
runs (a version rolled back to fires anew, once per period in each activation),
immutable, paused rules are not evaluated, vendor-only signals are read but never shown to
the partner, a channel manager sees its partners' firings only; templates."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from incentives import actions, rules
from incentives import handlers as incentive_handlers
from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.evaluation import evaluate_vendor
from incentives.events import RULE_ACTIVATED
from incentives.explanations import explain
from incentives.models import (
    IncentiveRuleVersion,
    Period,
    RuleDailyRun,
    RuleFiring,
    RuleRecommendation,
)
from incentives.recommendations import active_recommendations
from infra.append_only import AppendOnlyError
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners import groups
from partners.group_models import MemberMode
from partners.roles import Role
from schema.context import Services
from signals.daily import take_all_due
from signals.events import SIGNALS_CHANGED
from signals.models import SignalSnapshot
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid, principal_of
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, T0, Shop, settle, shop
from tests.support import GQL, refused_inserts

FIRINGS = "{ ruleFirings { totalCount edges { node { partnerId values { name value } } } } }"


async def firings(db: Database) -> list[RuleFiring]:
    async with db.session() as session:
        return list(await session.exec(select(RuleFiring)))


async def test_a_firing_is_written_once_per_version_partner_and_period(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition=GROWTH, period=Period.WEEK, actions=[
        Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    # Signals change again the same week: the handler evaluates and writes nothing.
    await es.sale(db, clock, tenant, 10_00, partner_index=0)
    await settle(services)
    async with db.session() as session:
        changed = list(
            await session.exec(select(OutboxEvent).where(OutboxEvent.type == SIGNALS_CHANGED))
        )
    assert await incentive_handlers.apply(db, clock, changed) == 0  # a re-run: nothing
    [firing] = await firings(db)
    # The record is immutable.
    async with db.transaction() as session:
        stored = await session.get(RuleFiring, firing.id)
        assert stored is not None
        stored.period_key = "changed"
        session.add(stored)
        with pytest.raises(AppendOnlyError):
            await session.flush()
        await session.rollback()
    # The next week is a new period: it fires again.
    clock.freeze(T0 + timedelta(days=2))  # Monday 7 December 2026
    await es.sale(db, clock, tenant, 10_00, partner_index=0)
    await settle(services)
    assert sorted(f.period_key for f in await firings(db)) == ["2026-W49", "2026-W50"]


async def test_signals_of_past_days_changed_late_fire_the_rule_for_today_only(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """A sale dispatched days after it was approved (a dispatcher that was down) changes the
    snapshots of every day since. A rule fires on what is true now: today's snapshot, which
    the late sale moved too, not once for each past day (a daily rule fired three times,
    each placing its action now, for days long gone)."""
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, condition="revenue_7d > 0", period=Period.DAY, actions=[
        Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")
    ])  # fmt: skip
    await settle(services)  # its activation: partners 0 and 1 sold today
    assert len(await firings(db)) == 2
    # Each day's snapshots are taken as it starts (the signals' daily job); the sale of the
    # first day is dispatched on the third.
    for days in (1, 2, 3):
        clock.freeze(T0 + timedelta(days=days))
        await take_all_due(db, clock)
        if days == 1:
            await es.sale(db, clock, tenant, 10_00, partner_index=0)
    await settle(services)
    late = {(f.partner_id, f.period_key) for f in await firings(db)
            if f.period_key != T0.date().isoformat()}  # fmt: skip
    today = (T0 + timedelta(days=3)).date().isoformat()
    assert late == {(tenant.partners[0].id, today), (tenant.partners[1].id, today)}


async def test_a_version_rolled_back_to_fires_once_per_period_in_each_activation(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    author, approver = principal_of(s.author), principal_of(s.approver)
    rule = await active_rule(db, clock, s, condition=GROWTH, period=Period.MONTH, actions=[
        Action(ActionKind.RECOMMEND, title="Version 1", text="Sell more.")
    ])  # fmt: skip
    await settle(services)

    async def replace(number: int) -> None:
        """Approve a new version (it fires at once), then roll back to version 1."""

        async def draft(session: AsyncSession) -> IncentiveRuleVersion:
            return await rules.draft_version(
                session, author, clock, rule_id=rule.id, condition=GROWTH,
                period=Period.MONTH,
                actions=[Action(ActionKind.RECOMMEND, title=f"Version {number}", text="t")],
            )  # fmt: skip

        version = await es.tx(db, draft)
        await es.tx(db, lambda session: rules.approve(
            session, approver, clock, version_id=version.id, reason="try it"
        ))  # fmt: skip
        await settle(services)
        await es.tx(db, lambda session: rules.roll_back(
            session, author, clock, rule_id=rule.id, to_version=1, reason="back"
        ))  # fmt: skip
        await settle(services)

    async def fired() -> list[tuple[int, int, str]]:
        return sorted((f.version_number, f.activation, f.period_key) for f in await firings(db))

    async def evaluate_again() -> None:
        """Every evaluation there is, again, in the same period: none writes a firing."""
        await es.sale(db, clock, tenant, 10_00, partner_index=0)  # the signals move
        await settle(services)
        assert await daily(db, clock) == len(await firings(db))

        async def run(session: AsyncSession) -> None:
            out = await evaluate_vendor(
                session, clock, vendor_id=tenant.vendor.id, day=clock.now().date(),
                trigger="SIGNALS",
            )  # fmt: skip
            assert (out.firings, out.already) == ([], 1)

        await es.tx(db, run)
        async with db.session() as session:
            activated = list(
                await session.exec(select(OutboxEvent).where(OutboxEvent.type == RULE_ACTIVATED))
            )
        assert await incentive_handlers.activate(db, clock, activated) == 0

    assert await fired() == [(1, 1, "2026-12")]
    await replace(2)
    # Version 1 is active again in activation 3: it fired anew this month, once.
    assert await fired() == [(1, 1, "2026-12"), (1, 3, "2026-12"), (2, 2, "2026-12")]
    await evaluate_again()
    clock.advance(timedelta(days=1))
    await evaluate_again()
    assert await fired() == [(1, 1, "2026-12"), (1, 3, "2026-12"), (2, 2, "2026-12")]
    # Replaced and restored again: once more, in its new activation only.
    await replace(3)
    await evaluate_again()
    assert await fired() == [
        (1, 1, "2026-12"), (1, 3, "2026-12"), (1, 5, "2026-12"), (2, 2, "2026-12"),
        (3, 4, "2026-12"),
    ]  # fmt: skip
    # The partner has version 1's recommendation, once, and nothing of the others.
    async with db.session() as session:
        current = await active_recommendations(session, tenant.partners[0].id, clock.now())
    assert [r.title for r in current] == ["Version 1"]


async def test_a_paused_rule_is_not_evaluated_until_resumed(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await active_rule(db, clock, s, condition=GROWTH, actions=[
        Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")
    ])  # fmt: skip
    author = principal_of(s.author)
    await es.tx(db, lambda x: rules.set_status(x, author, clock, rule_id=rule.id, pause=True,
                                               reason="review"))  # fmt: skip
    assert await daily(db, clock) == 0
    await es.sale(db, clock, tenant, 10_00, partner_index=0)
    await settle(services)
    assert await firings(db) == []
    await es.tx(db, lambda x: rules.set_status(x, author, clock, rule_id=rule.id, pause=False,
                                               reason="done"))  # fmt: skip
    clock.advance(timedelta(days=1))
    assert await daily(db, clock) == 1


async def test_vendor_only_signals_are_read_but_never_shown_to_the_partner(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, name="Cost guard", condition="payout_ratio != null && "
                      "payout_ratio > 0.05", actions=[Action(
                          ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                          delta_bp=-100)])  # fmt: skip
    assert await daily(db, clock) == 2  # both earn 8 % of their revenue
    staff = await gql.data(FIRINGS, as_user=s.author)
    values = staff["ruleFirings"]["edges"][0]["node"]["values"]
    assert [v["name"] for v in values] == ["payout_ratio"]
    explained = await gql.data("{ incentiveExplanations { text } }",
                               as_user=tenant.user(Role.PARTNER_ADMIN, 0))  # fmt: skip
    assert explained["incentiveExplanations"] == [{
        "text": "A program rule applies to you: Partner Rewards pays -1 point on every sale "
        "until 4 January 2027."
    }]  # fmt: skip
    # A channel manager sees the firings of its assigned partner (partner 0) only.
    managed = await gql.data(FIRINGS, as_user=tenant.user(Role.CHANNEL_MANAGER))
    assert managed["ruleFirings"]["totalCount"] == 1


async def test_rules_are_created_from_the_shipped_templates(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    create = """mutation($input: IncentiveRuleFromTemplateInput!) {
      incentiveRuleCreateFromTemplate(input: $input) {
        rule { name status template versions { condition period
          actions { kind days groupId programId deltaBp } } }
        userErrors { code field message } } }"""
    made = {}
    for key, extra in [
        ("growth_promotion", {"groupId": s.gid("group")}),
        ("margin_guard", {"programId": s.gid("base")}),
        ("payout_spike_review", {}),
        ("engagement_boost", {}),
    ]:
        result = await gql.data(create, {"input": {"template": key, **extra}}, as_user=s.author)
        assert result["incentiveRuleCreateFromTemplate"]["userErrors"] == [], key
        made[key] = result["incentiveRuleCreateFromTemplate"]["rule"]
    growth = made["growth_promotion"]
    assert (growth["name"], growth["status"], growth["template"]) == (
        "Growth promotion", "DRAFT", "growth_promotion"
    )  # fmt: skip
    assert growth["versions"][0]["actions"] == [{"kind": "GROUP_WINDOW", "days": 30,
        "groupId": s.gid("group"), "programId": None, "deltaBp": None}]  # fmt: skip
    assert made["margin_guard"]["versions"][0]["actions"][0]["deltaBp"] == -100
    # A template's blank left empty is coded; an unknown template too.
    blank = await gql.data(create, {"input": {"template": "growth_promotion", "name": "B"}},
                           as_user=s.author)  # fmt: skip
    # The input's blank is at fault, not the template's action.
    errors = blank["incentiveRuleCreateFromTemplate"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", "groupId")]
    unknown = await gql.data(create, {"input": {"template": "nope"}}, as_user=s.author)
    assert unknown["incentiveRuleCreateFromTemplate"]["userErrors"][0]["code"] == (
        "UNKNOWN_TEMPLATE"
    )


async def group_of(
    db: Database, clock: OffsetClock, s: Shop, name: str, partner_ids: list[uuid.UUID]
) -> uuid.UUID:
    """A group of these partners from now, made by the shop's admin."""
    admin = principal_of(s.author)

    async def make(session: AsyncSession) -> uuid.UUID:
        group = await groups.create_group(session, admin, clock, name=name)
        await groups.set_members(
            session, admin, clock, group_id=group.id, partner_ids=partner_ids,
            mode=MemberMode.INCLUDE,
        )  # fmt: skip
        return group.id

    return await es.tx(db, make)


async def test_a_rule_with_a_target_group_fires_only_for_its_members(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    other_tenant: Tenant,
    services: Services,
) -> None:
    s = await shop(db, clock, tenant, services)
    treatment = await group_of(db, clock, s, "Treatment", [tenant.partners[1].id])
    recommend = [Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")]
    await active_rule(
        db, clock, s, condition="revenue_7d > 0", target_group_id=treatment, actions=recommend
    )
    assert await daily(db, clock) == 1
    [firing] = await firings(db)
    assert firing.partner_id == tenant.partners[1].id  # partner 0 sold too, but is not in it
    # The partner's explanation does not name the group it was picked from.
    explained = await gql.data("{ incentiveExplanations { text } }",
                               as_user=tenant.user(Role.PARTNER_ADMIN, 1))  # fmt: skip
    assert explained["incentiveExplanations"] == [
        {"text": "Your revenue over the last 7 days was 500.00 USD, so we recommend: Go."}
    ]
    # Another vendor's staff see none of it.
    theirs = await gql.data(FIRINGS, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert theirs["ruleFirings"]["totalCount"] == 0


async def test_a_vendor_whose_daily_run_fails_does_not_stop_the_others(
    db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant, services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The daily run goes vendor by vendor in id order: the first one's run fails in the
    database, every time; the second's still runs, and the first's once the fault is gone."""
    first, second = sorted([tenant, other_tenant], key=lambda t: t.vendor.id)
    for t in (first, second):
        s = await shop(db, clock, t, services)
        await active_rule(db, clock, s, condition=GROWTH, actions=[
            Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")
        ])  # fmt: skip
    async with refused_inserts(db, "incentive_daily_run", first.vendor.id):
        await run_due(db, clock)  # (the app's daily loop may have run the second first)
        assert await ran_today(db, clock) == {second.vendor.id}
    assert str(first.vendor.id) in caplog.text  # logged with the vendor, then went on
    assert {f.vendor_id for f in await firings(db)} == {second.vendor.id}
    await run_due(db, clock)
    assert await ran_today(db, clock) == {first.vendor.id, second.vendor.id}
    assert {f.vendor_id for f in await firings(db)} == {first.vendor.id, second.vendor.id}


async def ran_today(db: Database, clock: OffsetClock) -> set[uuid.UUID]:
    day = clock.now().date().isoformat()
    async with db.session() as session:
        return set(
            await session.exec(select(RuleDailyRun.vendor_id).where(RuleDailyRun.day == day))
        )


async def test_a_past_days_dry_run_reads_the_target_group_of_that_day(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    """The signals are that day's, and so is the target group: a partner that joined today
    would not have fired yesterday (it read today's members before)."""
    s = await shop(db, clock, tenant, services)
    group = await group_of(db, clock, s, "Joined today", [tenant.partners[0].id])
    go = [Action(ActionKind.RECOMMEND, title="Go", text="Sell.")]
    rule = await active_rule(
        db, clock, s, condition="revenue_30d > 0", target_group_id=group, actions=go
    )
    dry = "query($v: ID!, $day: Date) { incentiveRuleDryRun(versionId: $v, day: $day) { firing } }"
    version = gid("IncentiveRuleVersion", rule.active_version_id)

    async def firing_on(day: date) -> int:
        data = await gql.data(dry, {"v": version, "day": day.isoformat()}, as_user=s.author)
        return int(data["incentiveRuleDryRun"]["firing"])

    assert await firing_on(clock.now().date()) == 1
    # The last day before today with a snapshot, on which the condition held.
    async with db.session() as session:
        past = (
            await session.exec(
                select(SignalSnapshot)
                .where(
                    SignalSnapshot.partner_id == tenant.partners[0].id,
                    SignalSnapshot.day < clock.now().date(),
                )
                .order_by(col(SignalSnapshot.day).desc())
                .limit(1)
            )
        ).one()
    assert past.values["revenue_30d"] > 0
    assert await firing_on(past.day) == 0


async def test_a_new_version_ends_every_effect_when_the_ids_go_a_chunk_at_a_time(
    db: Database, clock: OffsetClock, tenant: Tenant, services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Approving a version ends what every firing of the one before placed: a long-lived
    rule's firings pass any driver's limit on bound parameters in one IN list (an approval
    or a rollback then failed), so the ids go in chunks. A chunk of one here: every
    partner's window and recommendation still end."""
    monkeypatch.setattr(actions, "CHUNK", 1)
    s = await shop(db, clock, tenant, services)
    go = [
        Action(ActionKind.GROUP_WINDOW, days=30, group_id=s.boost_group_id),
        Action(ActionKind.RECOMMEND, title="Go", text="Sell more."),
    ]
    async with services.outbox.paused():
        rule = await active_rule(db, clock, s, condition="revenue_30d > 0", actions=go)
        assert await daily(db, clock) == 2  # both partners
        async with db.transaction() as session:
            v2 = await rules.draft_version(
                session, principal_of(s.author), clock, rule_id=rule.id,
                condition="revenue_30d > 1000000000", actions=go,
            )  # fmt: skip
        async with db.transaction() as session:
            await rules.approve(
                session, principal_of(s.approver), clock, version_id=v2.id, reason="ok"
            )
    now = clock.now()
    async with db.session() as session:
        members = list(await session.exec(groups.member_ids_at(s.boost_group_id, now)))
        tips = list(await session.exec(select(RuleRecommendation)))
    assert members == []
    assert len(tips) == 2
    assert all(tip.withdrawn_at == now for tip in tips)


async def test_undoing_more_effects_than_a_statement_may_bind_works(db: Database) -> None:
    """33,000 firings' effects (a weekly rule over 10,000 partners for a season): one IN
    list of their ids passed asyncpg's limit on bound parameters (32,767; SQLite's default
    is 32,766, this machine's build allows 250,000) and the approval or rollback failed."""
    outcomes = [
        {"kind": "RECOMMEND", "recommendation_id": str(uuid.uuid4())} for _ in range(33_000)
    ] + [{"kind": "GROUP_WINDOW", "membership_id": str(uuid.uuid4())} for _ in range(33_000)]
    clock = OffsetClock()
    async with db.transaction() as session:
        assert await actions.undo(session, clock, outcomes) == {}  # none still runs


def test_one_day_is_explained_in_the_singular() -> None:
    """ "Your days since last sale was 1 day", not "1 days"."""
    recommend = {"kind": "RECOMMEND", "until": "2027-01-04T00:00:00+00:00", "title": "Call us",
                 "recommendation_id": "r1"}  # fmt: skip
    one = explain({"days_since_last_sale": 1}, [recommend], "USD")
    two = explain({"days_since_last_sale": 2}, [recommend], "USD")
    assert "was 1 day," in str(one), one
    assert "was 2 days," in str(two), two
