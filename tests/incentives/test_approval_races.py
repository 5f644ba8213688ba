"""Four eyes under concurrency: an approval reads the version after it locks the rule, so
an edit (a new draft, which discards the old one) or a second approval committed while it
waited is seen (before, the version was read and checked first: a discarded draft became
the active version, and two approvals made two activations). PostgreSQL only (on SQLite
the write lock serialises them). A budget change's approval does the same (issue 13)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlmodel import select

from incentives import rules
from incentives.actions import Action, ActionKind
from incentives.models import IncentiveRule, IncentiveRuleVersion, Period, VersionStatus
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database, begin_write
from infra.errors import DomainError
from partners import service as partners_service
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, principal_of
from tests.incentives.rules import active_rule
from tests.incentives.scenarios import Shop, shop

BIG = "revenue_30d >= 100000"


@pytest.fixture
async def s(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> Shop:
    """The shop of the rule tests, on PostgreSQL only."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite's write lock serialises the two")
    return await shop(db, clock, tenant, services)


async def _third_admin(db: Database, clock: OffsetClock, tenant: Tenant) -> Any:
    """A vendor admin besides the shop's author and approver."""
    return await es.tx(db, lambda session: partners_service.create_user(
        session, clock, vendor_id=tenant.vendor.id, email=f"third-{uuid.uuid4().hex[:6]}@x.example",
        role=Role.VENDOR_ADMIN, display_name="Third Admin",
    ))  # fmt: skip


def _gate(monkeypatch: pytest.MonkeyPatch, who: uuid.UUID) -> tuple[asyncio.Event, asyncio.Event]:
    """Pause ``who``'s approval after its checks, just before it locks the rule."""
    reached, go = asyncio.Event(), asyncio.Event()
    original = rules._rule

    async def gated(session: Any, principal: Any, rule_id: Any, *a: Any, **k: Any) -> Any:
        if principal.user_id == who and not go.is_set():
            reached.set()
            await go.wait()
        return await original(session, principal, rule_id, *a, **k)

    monkeypatch.setattr(rules, "_rule", gated)
    return reached, go


async def _draft_rule(db: Database, clock: OffsetClock, s: Any) -> tuple[uuid.UUID, uuid.UUID]:
    async def make(session: Any) -> tuple[uuid.UUID, uuid.UUID]:
        rule = await rules.create_rule(
            session, principal_of(s.author), clock, name="Raced", condition=BIG,
            actions=[Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                            delta_bp=100)], period=Period.WEEK,
        )  # fmt: skip
        [version] = await session.exec(
            select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
        )
        return rule.id, version

    return await es.tx(db, make)


async def test_approving_a_draft_its_author_replaced_meanwhile_is_refused(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    s: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rule_id, v1 = await _draft_rule(db, clock, s)
    reached, go = _gate(monkeypatch, s.approver.id)

    async def approve() -> Any:
        async with db.transaction() as session:
            await begin_write(session)
            return await rules.approve(
                session, principal_of(s.approver), clock, version_id=v1, reason="looks fine"
            )

    approval = asyncio.create_task(approve())
    await reached.wait()
    # Meanwhile the author replaces the draft: +10 points instead of +1 (v1 discarded).
    await es.tx(db, lambda session: rules.draft_version(
        session, principal_of(s.author), clock, rule_id=rule_id, condition=BIG,
        actions=[Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                        delta_bp=1000)],
    ))  # fmt: skip
    go.set()
    with pytest.raises(DomainError) as refused:
        await approval
    assert str(refused.value.code) == "NOT_A_DRAFT"
    async with db.session() as session:
        rule = await session.get(IncentiveRule, rule_id)
        versions = {
            v.number: v.status
            for v in await session.exec(
                select(IncentiveRuleVersion).where(IncentiveRuleVersion.rule_id == rule_id)
            )
        }
    assert rule is not None
    # A discarded draft never becomes the active version.
    assert rule.active_version_id is None, versions
    assert versions == {1: VersionStatus.DISCARDED, 2: VersionStatus.DRAFT}


async def test_two_admins_approving_one_draft_at_once_make_one_activation(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    s: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    third = await _third_admin(db, clock, tenant)
    rule_id, v1 = await _draft_rule(db, clock, s)
    reached, go = _gate(monkeypatch, third.id)

    async def approve(user: Any) -> Any:
        async with db.transaction() as session:
            await begin_write(session)
            return await rules.approve(
                session, principal_of(user), clock, version_id=v1, reason="fine"
            )

    late = asyncio.create_task(approve(third))
    await reached.wait()
    await approve(s.approver)
    go.set()
    errors = []
    try:
        await late
    except DomainError as error:
        errors.append(str(error.code))
    async with db.session() as session:
        rule = await session.get(IncentiveRule, rule_id)
        version = await session.get(IncentiveRuleVersion, v1)
    assert rule is not None
    assert version is not None
    assert (rule.activation, errors) == (1, ["NOT_A_DRAFT"]), (
        rule.activation,
        errors,
        version.approved_by_id == third.id,
    )


async def _raise_asked(db: Database, clock: OffsetClock, s: Shop) -> tuple[uuid.UUID, uuid.UUID]:
    """An active rule with a 20.00 cap, and a raise to 50.00 its author asked for."""
    rule = await active_rule(
        db, clock, s, condition=BIG, budget_cap_minor=20_00,
        actions=[Action(ActionKind.RECOMMEND, title="Go", text="Sell more.")],
    )  # fmt: skip
    asked = await es.tx(db, lambda session: rules.set_budget(
        session, principal_of(s.author), clock, rule_id=rule.id, budget_cap_minor=50_00,
        reason="Q4 push",
    ))  # fmt: skip
    assert asked.change is not None
    return rule.id, asked.change.id


async def _approve_change(db: Database, clock: OffsetClock, user: Any, change: uuid.UUID) -> Any:
    async with db.transaction() as session:
        await begin_write(session)
        return await rules.approve_budget_change(
            session, principal_of(user), clock, change_id=change, reason="agreed"
        )


async def test_a_budget_raise_approved_while_the_cap_is_tightened_is_refused(
    db: Database,
    clock: OffsetClock,
    s: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The approval read the change (pending) before the author tightened the cap; it locks
    the rule and reads the change again, so it sees the budget moved and applies nothing."""
    rule_id, change = await _raise_asked(db, clock, s)
    reached, go = _gate(monkeypatch, s.approver.id)
    approval = asyncio.create_task(_approve_change(db, clock, s.approver, change))
    await reached.wait()
    await es.tx(db, lambda session: rules.set_budget(
        session, principal_of(s.author), clock, rule_id=rule_id, budget_cap_minor=10_00,
    ))  # fmt: skip
    go.set()
    with pytest.raises(DomainError) as refused:
        await approval
    assert str(refused.value.code) == "BUDGET_CHANGED"
    async with db.session() as session:
        rule = await session.get(IncentiveRule, rule_id)
    assert rule is not None
    assert rule.budget_cap_minor == 10_00


async def test_two_admins_approving_one_budget_change_at_once_apply_it_once(
    db: Database,
    clock: OffsetClock,
    tenant: Tenant,
    s: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    third = await _third_admin(db, clock, tenant)
    rule_id, change = await _raise_asked(db, clock, s)
    reached, go = _gate(monkeypatch, third.id)
    late = asyncio.create_task(_approve_change(db, clock, third, change))
    await reached.wait()
    await _approve_change(db, clock, s.approver, change)
    go.set()
    with pytest.raises(DomainError) as refused:
        await late
    assert str(refused.value.code) == "NOT_PENDING"
    async with db.session() as session:
        approvals = list(
            await session.exec(
                select(AuditEntry).where(
                    AuditEntry.action == "incentive_rule.budget_change_approved"
                )
            )
        )
        rule = await session.get(IncentiveRule, rule_id)
    assert rule is not None
    assert (rule.budget_cap_minor, len(approvals)) == (50_00, 1)
