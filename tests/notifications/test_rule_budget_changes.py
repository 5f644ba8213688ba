"""Four eyes on a rule's budget, as notifications: a loosening asked for tells the vendor's
other active admins (inbox and e-mail, through the outbox), who may approve it; its approval
or cancellation tells the admins who did not decide it. Nobody else is told: not the one
who asked, not another vendor's admins, not other staff or partners; a tightening and a
refused request tell nobody. Driven through GraphQL, read back through the inbox and the
loopback SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select

from incentives.events import RULE_BUDGET_CHANGE_DECIDED, RULE_BUDGET_CHANGE_REQUESTED
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from notifications.models import Notification
from partners import service as partners_service
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.earnings import scenarios as es
from tests.factories import Tenant, gid
from tests.incentives.scenarios import Shop, settle, shop
from tests.incentives.test_budget_four_eyes import APPROVE, CANCEL, SET, governed, usd
from tests.notifications.scenarios import Receiver, mailing, smtp_server, text_of
from tests.notifications.test_rules_and_guardrails import notification_count
from tests.notifications.test_rules_and_guardrails import told as inbox
from tests.support import GQL, error_codes, eventually

BUDGET_EVENTS = (RULE_BUDGET_CHANGE_REQUESTED, RULE_BUDGET_CHANGE_DECIDED)


@pytest.fixture
def smtp() -> Iterator[tuple[Receiver, int]]:
    with smtp_server() as server:
        yield server


async def told(gql: GQL, user: User) -> list[dict[str, Any]]:
    """What the user's inbox holds about rule budgets (the rule's firings tell partners and
    staff other things, its versions' drafts and approvals its admins)."""
    return [
        n for n in await inbox(gql, user)
        if n["category"] == "RULE_GOVERNANCE" and n["kind"].startswith("rule_budget_")
    ]  # fmt: skip


async def notified(db: Database, user: User) -> int:
    """Notifications a user has, whether or not they can still sign in to read them."""
    async with db.session() as session:
        rows = await session.exec(select(Notification.id).where(Notification.user_id == user.id))
        return len(list(rows))


def named(user: User) -> str:
    return f"{user.display_name} <{user.email}>"


async def admin(db: Database, clock: OffsetClock, tenant: Tenant, *, active: bool = True) -> User:
    """Another vendor admin of the tenant (active, or deactivated)."""

    async def make(session: Any) -> User:
        return await partners_service.create_user(
            session, clock, vendor_id=tenant.vendor.id, role=Role.VENDOR_ADMIN,
            email=f"admin-{uuid.uuid4().hex[:6]}@x.example", display_name="Third Admin",
            active=active,
        )  # fmt: skip

    return await es.tx(db, make)


async def budget_events(db: Database) -> list[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(OutboxEvent.type).where(col(OutboxEvent.type).in_(BUDGET_EVENTS))
        )
        return list(rows)


def bystanders(s: Shop, other_tenant: Tenant) -> list[User]:
    """Who is never told of a vendor's rule budgets: its other staff and partner users, and
    another vendor's admin."""
    t = s.tenant
    return [
        t.user(Role.FINANCE), t.user(Role.CHANNEL_MANAGER), t.user(Role.PARTNER_ADMIN, 0),
        t.user(Role.PARTNER_REP, 0), other_tenant.user(Role.VENDOR_ADMIN),
    ]  # fmt: skip


async def ask(gql: GQL, rule: str, user: User, cap: dict[str, str] | None, why: str) -> str:
    asked = await gql.data(SET, {"input": {"id": rule, "budgetCap": cap, "reason": why}},
                           as_user=user)  # fmt: skip
    result = asked["incentiveRuleBudgetSet"]
    assert (result["applied"], result["userErrors"]) == (False, [])
    change: str = result["budgetChange"]["id"]
    return change


async def test_a_loosening_tells_the_other_admins_and_its_approval_the_one_who_asked(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services, smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)  # a cap of 20.00 USD
    third, gone = await admin(db, clock, tenant), await admin(db, clock, tenant, active=False)
    async with mailing(services, port) as sender:
        change = await ask(gql, rule, s.author, usd("50.00"), "Q4 push on the new line")
        # In the outbox with the change itself: a process dying after the commit loses
        # nothing, the next dispatcher run tells them.
        assert await budget_events(db) == [RULE_BUDGET_CHANGE_REQUESTED]
        await settle(services)
        await sender.send_due()
        await eventually(lambda: _mailed(receiver, third.email))

    # The other active admins: which rule, old cap -> asked cap, who asked, why, what next.
    for user in (s.approver, third):
        [note] = await told(gql, user)
        assert (note["category"], note["kind"]) == ("RULE_GOVERNANCE",
                                                    "rule_budget_change_requested")  # fmt: skip
        assert note["title"] == "Budget loosening to approve: Growth kicker"
        assert note["body"] == (
            f"{named(s.author)} asked to loosen the budget of the incentive rule Growth kicker "
            "from a cap of $20.00 to a cap of $50.00.\n\n"
            "Reason given: Q4 push on the new line\n\n"
            "Nothing changes until a second vendor admin, not the one who asked, approves it: "
            "until then the rule keeps spending against its current cap. Any vendor admin can "
            "cancel the request instead. Both are done on the rule's pending budget change."
        )  # fmt: skip
        assert gid("IncentiveRuleBudgetChange", note["subjectId"]) == change
    [mailed] = budget_mails(receiver, third.email)
    assert mailed["Subject"] == "Budget loosening to approve: Growth kicker"
    assert "from a cap of $20.00 to a cap of $50.00" in text_of(mailed)
    # Not the one who asked, not a deactivated admin, nobody else.
    for user in (s.author, *bystanders(s, other_tenant)):
        assert await told(gql, user) == [], user.email
    assert await notified(db, gone) == 0
    assert budget_mails(receiver, s.author.email) == []

    # Handled again: nobody is told twice.
    before = await notification_count(db)
    async with db.session() as session:
        events = list(await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.type).in_(BUDGET_EVENTS))
        ))  # fmt: skip
    await services.notifier.handle(events)
    assert await notification_count(db) == before

    # The second admin approves: the one who asked and the third admin are told, not the
    # approver.
    ok = await gql.data(APPROVE, {"input": {"id": change, "reason": "Budget agreed"}},
                        as_user=s.approver)  # fmt: skip
    assert ok["incentiveRuleBudgetChangeApprove"]["applied"] is True
    await settle(services)
    for user in (s.author, third):
        [note] = [n for n in await told(gql, user) if n["kind"] == "rule_budget_change_approved"]
        assert note["title"] == "Budget change approved: Growth kicker"
        assert note["body"] == (
            f"{named(s.approver)} approved the budget change {named(s.author)} asked for on "
            "the incentive rule Growth kicker: the rule now has a cap of $50.00 (it had a cap "
            "of $20.00).\n\nReason given: Budget agreed"
        )  # fmt: skip
    assert [n["kind"] for n in await told(gql, s.approver)] == ["rule_budget_change_requested"]
    for user in bystanders(s, other_tenant):
        assert await told(gql, user) == [], user.email
    assert await notified(db, gone) == 0


async def _mailed(receiver: Receiver, address: str) -> bool:
    return len(budget_mails(receiver, address)) >= 1


def budget_mails(receiver: Receiver, address: str) -> list[Any]:
    """The mails to the address about rule budgets (not about the rule's version)."""
    return [m for m in receiver.to(address) if str(m["Subject"]).startswith("Budget")]


async def test_a_cancelled_or_withdrawn_loosening_tells_the_admins_who_did_not_cancel_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    # Rejected by the second admin: the one who asked is told why.
    change = await ask(gql, rule, s.author, None, "No limit for the launch")
    cancelled = await gql.data(CANCEL, {"input": {"id": change, "reason": "Not this quarter"}},
                               as_user=s.approver)  # fmt: skip
    assert cancelled["incentiveRuleBudgetChangeCancel"]["userErrors"] == []
    await settle(services)
    [note] = await told(gql, s.author)
    assert (note["kind"], note["title"]) == ("rule_budget_change_cancelled",
                                             "Budget change cancelled: Growth kicker")  # fmt: skip
    assert note["body"] == (
        f"{named(s.approver)} cancelled the request {named(s.author)} made to loosen the "
        "budget of the incentive rule Growth kicker from a cap of $20.00 to no cap. The "
        "rule's budget stays as it was: a cap of $20.00.\n\nReason given: Not this quarter"
    )  # fmt: skip
    assert [n["kind"] for n in await told(gql, s.approver)] == ["rule_budget_change_requested"]

    # Asked again, in another currency, replacing nothing; then withdrawn by the one who
    # asked: the second admin, told of the request, is told it is withdrawn.
    change = await ask(gql, rule, s.author, usd("20.00", "EUR"), "Paid in euros now")
    await settle(services)
    asked = [n for n in await told(gql, s.approver)
             if gid("IncentiveRuleBudgetChange", n["subjectId"]) == change]  # fmt: skip
    assert [n["kind"] for n in asked] == ["rule_budget_change_requested"]
    assert "from a cap of $20.00 to a cap of €20.00." in asked[0]["body"]
    withdrawn = await gql.data(CANCEL, {"input": {"id": change, "reason": "Wrong rule"}},
                               as_user=s.author)  # fmt: skip
    assert withdrawn["incentiveRuleBudgetChangeCancel"]["userErrors"] == []
    await settle(services)
    [note] = [n for n in await told(gql, s.approver)
              if n["kind"] == "rule_budget_change_cancelled"]  # fmt: skip
    assert note["body"].startswith(
        f"{named(s.author)} withdrew their request to loosen the budget of the incentive rule "
        "Growth kicker from a cap of $20.00 to a cap of €20.00."
    )  # fmt: skip
    assert [n["kind"] for n in await told(gql, s.author)] == ["rule_budget_change_cancelled"]
    for user in bystanders(s, other_tenant):
        assert await told(gql, user) == [], user.email


async def test_a_new_request_says_it_replaces_the_pending_one(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    await ask(gql, rule, s.author, usd("50.00"), "First")
    await ask(gql, rule, s.author, usd("80.00"), "Second")
    await settle(services)
    notes = sorted(await told(gql, s.approver), key=lambda n: "to a cap of $80.00" in n["body"])
    assert "replaces" not in notes[0]["body"]
    assert "This request replaces the one that was pending for the rule." in notes[1]["body"]


async def test_a_tightening_and_refused_requests_tell_nobody(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    await settle(services)  # what the rule's approval tells (its firings)
    before = await notification_count(db)
    # A tightening applies at once: no second admin, so nobody to ask.
    lower = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("10.00")}},
                           as_user=s.author)  # fmt: skip
    assert lower["incentiveRuleBudgetSet"]["applied"] is True
    # Refused loosenings: no reason, a negative cap, a currency that is no currency.
    for cap, reason, code in (
        (usd("50.00"), " ", "REQUIRED"), (usd("-1.00"), "x", "NEGATIVE_CAP"),
        (usd("50.00", "XYZ"), "x", "INVALID_CURRENCY"),
    ):  # fmt: skip
        refused = await gql.data(SET, {"input": {"id": rule, "budgetCap": cap, "reason": reason}},
                                 as_user=s.author)  # fmt: skip
        assert [e["code"] for e in refused["incentiveRuleBudgetSet"]["userErrors"]] == [code]
    # Refused callers: anonymous, the wrong roles, another vendor's admin.
    loosen = {"input": {"id": rule, "budgetCap": None, "reason": "x"}}
    assert error_codes(await gql(SET, loosen)) == ["UNAUTHENTICATED"]
    for role in (Role.FINANCE, Role.CHANNEL_MANAGER, Role.PARTNER_ADMIN, Role.PARTNER_REP):
        assert error_codes(await gql(SET, loosen, as_user=tenant.user(role))) == ["FORBIDDEN"]
    foreign = await gql.data(SET, loosen, as_user=other_tenant.user(Role.VENDOR_ADMIN))
    assert [e["code"] for e in foreign["incentiveRuleBudgetSet"]["userErrors"]] == ["NOT_FOUND"]
    await settle(services)
    assert await budget_events(db) == []
    assert await notification_count(db) == before
    for user in (s.author, s.approver, *bystanders(s, other_tenant)):
        assert await told(gql, user) == [], user.email


async def test_a_refused_approval_or_cancellation_tells_nobody(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)
    change = await ask(gql, rule, s.author, usd("50.00"), "more")
    await settle(services)
    told_before = await notification_count(db)
    decide = {"input": {"id": change, "reason": "x"}}
    own = await gql.data(APPROVE, decide, as_user=s.author)
    assert own["incentiveRuleBudgetChangeApprove"]["userErrors"][0]["code"] == "SELF_APPROVAL"
    for doc in (APPROVE, CANCEL):
        assert error_codes(await gql(doc, decide)) == ["UNAUTHENTICATED"]
        assert error_codes(await gql(doc, decide, as_user=tenant.user(Role.FINANCE))) == [
            "FORBIDDEN"
        ]  # fmt: skip
        foreign = await gql.data(doc, decide, as_user=other_tenant.user(Role.VENDOR_ADMIN))
        [payload] = foreign.values()
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    await settle(services)
    assert await budget_events(db) == [RULE_BUDGET_CHANGE_REQUESTED]
    assert await notification_count(db) == told_before


async def test_a_tightening_that_replaces_a_pending_loosening_tells_those_asked_to_approve_it(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    s = await shop(db, clock, tenant, services)
    rule = await governed(db, clock, s)  # a cap of 20.00 USD
    third, gone = await admin(db, clock, tenant), await admin(db, clock, tenant, active=False)
    change = await ask(gql, rule, s.author, usd("50.00"), "Q4 push")
    await settle(services)
    # The second admin, asked to approve it, tightens the budget instead: the loosening is
    # replaced (SUPERSEDED), recorded in the outbox with the tightening itself.
    lower = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("10.00"),
                                           "reason": "Spend is running hot"}},
                           as_user=s.approver)  # fmt: skip
    assert lower["incentiveRuleBudgetSet"]["applied"] is True
    assert sorted(await budget_events(db)) == [RULE_BUDGET_CHANGE_DECIDED,
                                               RULE_BUDGET_CHANGE_REQUESTED]  # fmt: skip
    await settle(services)
    # The one who asked and the third admin, both told of the request: it is gone, and the
    # cap the rule has now.
    for user in (s.author, third):
        [note] = [n for n in await told(gql, user) if n["kind"] == "rule_budget_change_superseded"]
        assert note["title"] == "Budget change replaced: Growth kicker"
        assert note["body"] == (
            f"{named(s.approver)} set a tighter budget on the incentive rule Growth kicker: it "
            f"now has a cap of $10.00. This replaces the pending request {named(s.author)} made "
            "to loosen its budget from a cap of $20.00 to a cap of $50.00: there is nothing "
            "left to approve or cancel.\n\nReason given: Spend is running hot"
        )  # fmt: skip
        assert gid("IncentiveRuleBudgetChange", note["subjectId"]) == change
    # Not the one who tightened, not a deactivated admin, nobody else.
    assert [n["kind"] for n in await told(gql, s.approver)] == ["rule_budget_change_requested"]
    for user in bystanders(s, other_tenant):
        assert await told(gql, user) == [], user.email
    assert await notified(db, gone) == 0

    # Handled again: nobody is told twice.
    before = await notification_count(db)
    async with db.session() as session:
        events = list(await session.exec(
            select(OutboxEvent).where(OutboxEvent.type == RULE_BUDGET_CHANGE_DECIDED)
        ))  # fmt: skip
    await services.notifier.handle(events)
    assert await notification_count(db) == before

    # The one who asked replaces their own request by a tightening, without a reason: the
    # other admins are told, the reason left out; the one who asked is not told.
    await ask(gql, rule, s.author, usd("30.00"), "Try again")
    await settle(services)
    lower = await gql.data(SET, {"input": {"id": rule, "budgetCap": usd("5.00")}},
                           as_user=s.author)  # fmt: skip
    assert lower["incentiveRuleBudgetSet"]["applied"] is True
    await settle(services)
    for user in (s.approver, third):
        notes = [n for n in await told(gql, user) if n["kind"] == "rule_budget_change_superseded"
                 and "a cap of $5.00" in n["body"]]  # fmt: skip
        assert [n["body"] for n in notes] == [
            f"{named(s.author)} set a tighter budget on the incentive rule Growth kicker: it "
            "now has a cap of $5.00. This replaces the pending request they made to loosen "
            "its budget from a cap of $10.00 to a cap of $30.00: there is nothing left to "
            "approve or cancel."
        ]  # fmt: skip
    assert [n["kind"] for n in await told(gql, s.author)] == ["rule_budget_change_superseded"]
