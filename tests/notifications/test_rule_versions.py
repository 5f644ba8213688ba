"""Four eyes on a rule's versions, as notifications: a draft written (a new rule's first
version, or a new version) tells the vendor's other active admins, who may approve it
(inbox and e-mail, through the outbox): which rule, the version, its condition and
actions, who wrote it, that another admin must approve it. Its approval, or its discarding
by a newer draft, tells the admins who did not decide it. Nobody else is told: not
another vendor's admins, not a deactivated admin, not other staff or partners; a refused
call tells nobody. Driven through GraphQL, read back through the inbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select

from incentives.events import RULE_VERSION_DECIDED, RULE_VERSION_DRAFTED
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, gid
from tests.incentives.scenarios import GROWTH, Shop, settle, shop
from tests.incentives.test_bad_input_and_roles import rule_input
from tests.incentives.test_rule_life import APPROVE, CREATE, DRAFT
from tests.notifications.scenarios import Receiver, mailing, smtp_server, text_of
from tests.notifications.test_rule_budget_changes import (
    admin,
    bystanders,
    named,
    notified,
)
from tests.notifications.test_rules_and_guardrails import notification_count
from tests.notifications.test_rules_and_guardrails import told as inbox
from tests.support import GQL, error_codes, eventually

VERSION_EVENTS = (RULE_VERSION_DRAFTED, RULE_VERSION_DECIDED)


@pytest.fixture
def smtp() -> Iterator[tuple[Receiver, int]]:
    with smtp_server() as server:
        yield server


async def told(gql: GQL, user: User) -> list[dict[str, Any]]:
    """What the user's inbox holds about rule versions."""
    return [n for n in await inbox(gql, user) if n["kind"].startswith("rule_version_")]


async def version_events(db: Database) -> list[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent.type)
            .where(col(OutboxEvent.type).in_(VERSION_EVENTS))
            .order_by(col(OutboxEvent.id))
        )
        return list(rows)


def actions(s: Shop) -> list[dict[str, Any]]:
    return [
        {"kind": "RATE_OVERLAY", "programId": s.gid("base"), "deltaBp": 200, "days": 14},
        {"kind": "GROUP_WINDOW", "groupId": s.gid("group"), "days": 30},
        {"kind": "RECOMMEND", "title": "Book a demo day", "text": "Demo days sell.", "days": 1},
    ]  # fmt: skip


async def create(gql: GQL, s: Shop) -> tuple[str, str]:
    """A new rule drafted by the shop's first admin: its id and its first version's."""
    made = await gql.data(CREATE, {"input": rule_input(actions=actions(s))}, as_user=s.author)
    rule = made["incentiveRuleCreate"]["rule"]
    assert made["incentiveRuleCreate"]["userErrors"] == []
    return rule["id"], rule["versions"][0]["id"]


async def test_a_draft_tells_the_other_admins_and_its_approval_those_who_did_not_approve(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services, smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    s = await shop(db, clock, tenant, services)
    third, gone = await admin(db, clock, tenant), await admin(db, clock, tenant, active=False)
    async with mailing(services, port) as sender:
        _, version = await create(gql, s)
        # In the outbox with the draft itself: a process dying after the commit loses
        # nothing, the next dispatcher run tells them.
        assert await version_events(db) == [RULE_VERSION_DRAFTED]
        await settle(services)
        await sender.send_due()
        await eventually(lambda: _mailed(receiver, third.email))

    # The other active admins: which rule and version, what it does, who wrote it, what next.
    for user in (s.approver, third):
        [note] = await told(gql, user)
        assert (note["category"], note["kind"]) == ("RULE_GOVERNANCE", "rule_version_drafted")
        assert note["title"] == "Rule version to approve: Growth kicker, version 1"
        assert note["body"] == (
            f"{named(s.author)} drafted version 1 of the incentive rule Growth kicker.\n\n"
            f"Condition: {GROWTH}\n"
            "It fires at most once per partner and week, and then: Partner Rewards pays "
            "+2 points on every sale for 14 days; the partner is in Boost for 30 days; we "
            "recommend: Book a demo day (for 1 day).\n\n"
            "Nothing changes until a second vendor admin, not the one who wrote it, approves "
            "it: until then the rule is not evaluated. Approve it on the rule's draft "
            "version, or draft another version instead."
        )  # fmt: skip
        assert gid("IncentiveRuleVersion", note["subjectId"]) == version
    [mailed] = [m for m in receiver.to(third.email) if "version 1" in str(m["Subject"])]
    assert mailed["Subject"] == "Rule version to approve: Growth kicker, version 1"
    assert "Partner Rewards pays +2 points on every sale for 14 days" in text_of(mailed)
    # Not its author, not a deactivated admin, nobody else.
    for user in (s.author, *bystanders(s, other_tenant)):
        assert await told(gql, user) == [], user.email
    assert await notified(db, gone) == 0
    assert receiver.to(s.author.email) == []

    # Handled again: nobody is told twice.
    before = await notification_count(db)
    async with db.session() as session:
        events = list(await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.type).in_(VERSION_EVENTS))
        ))  # fmt: skip
    await services.notifier.handle(events)
    assert await notification_count(db) == before

    # The second admin approves: its author and the third admin are told, not the approver.
    ok = await gql.data(APPROVE, {"input": {"versionId": version, "reason": "Looks right"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleApprove"]["userErrors"] == []
    await settle(services)
    for user in (s.author, third):
        [note] = [n for n in await told(gql, user) if n["kind"] == "rule_version_approved"]
        assert note["title"] == "Rule version approved: Growth kicker, version 1"
        assert note["body"] == (
            f"{named(s.approver)} approved version 1 of the incentive rule Growth kicker, "
            f"which {named(s.author)} drafted: it is now the rule's active version.\n\n"
            "Reason given: Looks right"
        )  # fmt: skip
        assert gid("IncentiveRuleVersion", note["subjectId"]) == version
    assert [n["kind"] for n in await told(gql, s.approver)] == ["rule_version_drafted"]
    for user in bystanders(s, other_tenant):
        assert await told(gql, user) == [], user.email
    assert await notified(db, gone) == 0


async def _mailed(receiver: Receiver, address: str) -> bool:
    return len(receiver.to(address)) >= 1


async def test_a_draft_replaced_by_a_newer_one_tells_those_told_of_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    third = await admin(db, clock, tenant)
    rule, first = await create(gql, s)
    await gql.data(APPROVE, {"input": {"versionId": first, "reason": "ok"}}, as_user=s.approver)
    # The author drafts version 2; the second admin, instead of approving it, drafts
    # version 3 (monthly, one action), which discards version 2.
    for user, condition, period in ((s.author, "revenue_7d > 100", "WEEK"),
                                    (s.approver, "revenue_7d > 500", "MONTH")):  # fmt: skip
        drafted = await gql.data(DRAFT, {"input": {
            "ruleId": rule, "condition": condition, "period": period,
            "actions": actions(s)[:1],
        }}, as_user=user)  # fmt: skip
        assert drafted["incentiveRuleDraft"]["userErrors"] == []
    await settle(services)
    assert await version_events(db) == [
        RULE_VERSION_DRAFTED, RULE_VERSION_DECIDED, RULE_VERSION_DRAFTED,
        RULE_VERSION_DECIDED, RULE_VERSION_DRAFTED,
    ]  # fmt: skip
    # Version 2's author and the third admin: version 2 is discarded, version 3 waits.
    for user in (s.author, third):
        [gone] = [n for n in await told(gql, user) if n["kind"] == "rule_version_discarded"]
        assert gone["title"] == "Rule version replaced: Growth kicker, version 2"
        assert gone["body"] == (
            f"{named(s.approver)} drafted version 3 of the incentive rule Growth kicker, "
            f"which replaces version 2, the draft {named(s.author)} wrote: version 2 is "
            "discarded, and there is nothing left to approve of it."
        )  # fmt: skip
        [new] = [n for n in await told(gql, user) if n["title"].endswith("version 3")]
        assert new["body"].startswith(
            f"{named(s.approver)} drafted version 3 of the incentive rule Growth kicker. It "
            "replaces version 2, the draft that was waiting for approval.\n\n"
            "Condition: revenue_7d > 500\n"
            "It fires at most once per partner and month, and then: Partner Rewards pays "
            "+2 points on every sale for 14 days.\n\n"
            "Nothing changes until a second vendor admin, not the one who wrote it, approves "
            "it: until then the rule runs as it does now."
        )  # fmt: skip
    # The one who replaced it is told of neither; the author of version 2 was not told of
    # their own draft.
    assert sorted(n["title"] for n in await told(gql, s.approver)) == [
        "Rule version to approve: Growth kicker, version 1",
        "Rule version to approve: Growth kicker, version 2",
    ]  # fmt: skip
    assert sorted(n["kind"] for n in await told(gql, s.author)) == [
        "rule_version_approved", "rule_version_discarded", "rule_version_drafted",
    ]  # fmt: skip
    for user in bystanders(s, other_tenant):
        assert await told(gql, user) == [], user.email


async def test_refused_drafts_and_approvals_tell_nobody(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    rule, version = await create(gql, s)
    await settle(services)
    told_before, events_before = await notification_count(db), await version_events(db)
    assert events_before == [RULE_VERSION_DRAFTED]
    # Bad input: no actions, a condition that does not compile, a name taken.
    for over, code in (({"actions": []}, "NO_ACTIONS"),
                       ({"name": "Other", "condition": "revenue_7d >"}, "CONDITION_INVALID"),
                       ({}, "DUPLICATE_NAME")):  # fmt: skip
        made = await gql.data(CREATE, {"input": rule_input(**over)}, as_user=s.author)
        assert [e["code"] for e in made["incentiveRuleCreate"]["userErrors"]] == [code]
    draft = {"input": {"ruleId": rule, "condition": "revenue_7d >", "actions": actions(s)}}
    bad = await gql.data(DRAFT, draft, as_user=s.author)
    assert [e["code"] for e in bad["incentiveRuleDraft"]["userErrors"]] == ["CONDITION_INVALID"]
    # The author approving their own draft.
    approve = {"input": {"versionId": version, "reason": "mine"}}
    own = await gql.data(APPROVE, approve, as_user=s.author)
    assert [e["code"] for e in own["incentiveRuleApprove"]["userErrors"]] == ["SELF_APPROVAL"]
    # Refused callers: anonymous, the wrong roles, another vendor's admin.
    good_draft = {"input": {"ruleId": rule, "condition": GROWTH, "actions": actions(s)}}
    create_input = {"input": rule_input(name="Another")}
    for doc, variables in ((CREATE, create_input), (DRAFT, good_draft), (APPROVE, approve)):
        assert error_codes(await gql(doc, variables)) == ["UNAUTHENTICATED"]
        for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
            refused = await gql(doc, variables, as_user=tenant.user(role))
            assert error_codes(refused) == ["FORBIDDEN"], (doc, role)
    for doc, variables in ((DRAFT, good_draft), (APPROVE, approve)):
        foreign = await gql.data(doc, variables, as_user=other_tenant.user(Role.VENDOR_ADMIN))
        [payload] = foreign.values()
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    await settle(services)
    assert await version_events(db) == events_before
    assert await notification_count(db) == told_before
    for user in (s.author, *bystanders(s, other_tenant)):
        assert await told(gql, user) == [], user.email
