"""Notifications from the signals work: a rule's "notify vendor staff" action (to the
vendor's admins and the partner's channel manager), a firing the partner sees (to its
admins, in the words ``incentiveExplanations`` shows), a new next best action (to every
user of the partner, once per action), and a concentration alert (to vendor admins and
finance). Read back through GraphQL and the loopback SMTP server; nobody else is told."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from incentives.actions import Action, ActionKind
from incentives.events import RULE_FIRED
from infra.clock import OffsetClock
from infra.db import Database
from infra.outbox import OutboxEvent
from notifications.models import Notification
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale
from tests.forecasts.test_guardrails_and_rollup import SET
from tests.incentives.rules import active_rule, daily
from tests.incentives.scenarios import GROWTH, settle, shop
from tests.notifications.scenarios import INBOX, Receiver, mailing, smtp_server, text_of
from tests.notifications.test_email import prefer
from tests.support import GQL, eventually

EXPLANATIONS = "{ incentiveExplanations { text } }"


@pytest.fixture
def smtp() -> Iterator[tuple[Receiver, int]]:
    with smtp_server() as server:
        yield server


async def told(gql: GQL, user: User) -> list[dict[str, Any]]:
    data = await gql.data(INBOX, {}, as_user=user)
    return [e["node"] for e in data["notifications"]["edges"]]


async def notification_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_a_firing_tells_staff_the_partner_and_its_users_of_the_recommendation(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, other_tenant: Tenant,
    services: Services, smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    s = await shop(db, clock, tenant, services)
    admin, rep = tenant.user(Role.PARTNER_ADMIN, 0), tenant.user(Role.PARTNER_REP, 0)
    async with mailing(services, port) as sender:
        await active_rule(db, clock, s, condition=GROWTH, actions=[
            Action(ActionKind.GROUP_WINDOW, group_id=s.boost_group_id, days=30),
            Action(ActionKind.RECOMMEND, title="Book a demo day", text="Growth like yours "
                   "sells more with a demo day.", code="DEMO24"),
            Action(ActionKind.NOTIFY_STAFF, message="Partner is growing fast: call them."),
        ])  # fmt: skip
        assert await daily(db, clock) == 1  # partner 0 only (partner 1 has no growth figure)
        await settle(services)
        await sender.send_due()
        await eventually(lambda: _mailed(receiver, admin.email, 2))

    # Vendor staff: both admins and partner 0's channel manager, with the staff message
    # (the admins were told of the rule's draft and its approval too: RULE_GOVERNANCE).
    for user in (s.author, s.approver, tenant.user(Role.CHANNEL_MANAGER)):
        [staff] = [n for n in await told(gql, user) if n["category"] != "RULE_GOVERNANCE"]
        assert (staff["category"], staff["kind"]) == ("INCENTIVE", "rule_staff")
        assert staff["title"] == f"Rule fired for {tenant.partners[0].name}: Growth kicker"
        assert "Partner is growing fast: call them." in staff["body"]
        assert "GROUP_WINDOW, RECOMMEND, NOTIFY_STAFF" in staff["body"]

    # The partner's admin: the explanation incentiveExplanations shows, and the new action.
    [explained] = (await gql.data(EXPLANATIONS, as_user=admin))["incentiveExplanations"]
    assert explained["text"].startswith("Your revenue grew 24 % week over week, so you are in "
                                        "Boost until")  # fmt: skip
    notes = {n["kind"]: n for n in await told(gql, admin)}
    assert set(notes) == {"rule_applied", "next_action_recommendation"}
    assert notes["rule_applied"]["category"] == "INCENTIVE"
    assert notes["rule_applied"]["body"] == explained["text"]
    assert "call them" not in str(notes)
    assert "growing fast" not in str(notes)
    action = notes["next_action_recommendation"]
    assert action["category"] == "NEXT_ACTION"
    assert action["title"] == "Recommended for you: Book a demo day"
    assert action["body"].startswith("Growth like yours sells more with a demo day. Code: DEMO24.")
    mailed = {m["Subject"]: text_of(m) for m in receiver.to(admin.email)}
    assert explained["text"] in mailed["A program rule applies to you"]
    # The rep reads the organisation's next actions: told of the action, not the firing.
    assert [n["kind"] for n in await told(gql, rep)] == ["next_action_recommendation"]

    # Nobody else: finance, partner 1, the other vendor.
    for user in (
        tenant.user(Role.FINANCE), tenant.user(Role.PARTNER_ADMIN, 1),
        tenant.user(Role.PARTNER_REP, 1), other_tenant.user(Role.VENDOR_ADMIN),
        other_tenant.user(Role.PARTNER_ADMIN, 0),
    ):  # fmt: skip
        assert await told(gql, user) == []

    # Handled again: nobody is told twice.
    before = await notification_count(db)
    async with db.session() as session:
        fired = list(await session.exec(select(OutboxEvent).where(OutboxEvent.type == RULE_FIRED)))
    await services.notifier.handle(fired)
    assert await notification_count(db) == before

    # A second rule recommends something else: one new action; the first is not repeated.
    await active_rule(db, clock, s, name="Second kicker", condition=GROWTH, actions=[
        Action(ActionKind.RECOMMEND, title="Register your pipeline", text="Protect deals.")
    ])  # fmt: skip
    clock.advance(timedelta(days=1))  # the daily run's next day, the same week
    assert await daily(db, clock) == 2
    await settle(services)
    titles = [n["title"] for n in await told(gql, rep)]
    assert sorted(titles) == [
        "Recommended for you: Book a demo day", "Recommended for you: Register your pipeline"
    ]  # fmt: skip


async def _mailed(receiver: Receiver, address: str, n: int) -> bool:
    return len(receiver.to(address)) >= n


async def test_a_firing_on_a_vendor_only_signal_never_names_it_to_the_partner(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    await active_rule(db, clock, s, name="Cost guard", condition="payout_ratio != null && "
                      "payout_ratio > 0.05", actions=[Action(
                          ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id,
                          delta_bp=-100)])  # fmt: skip
    assert await daily(db, clock) == 2
    await settle(services)
    for i in (0, 1):
        [note] = await told(gql, tenant.user(Role.PARTNER_ADMIN, i))
        assert note["body"] == (
            "A program rule applies to you: Partner Rewards pays -1 point on every sale "
            "until 4 January 2027."
        )
        assert "payout" not in note["body"].lower()
        assert await told(gql, tenant.user(Role.PARTNER_REP, i)) == []  # no new next action
    # No "notify vendor staff" action: staff are not told (of the firing; the author was
    # told of the rule's approval, RULE_GOVERNANCE).
    assert [n for n in await told(gql, s.author) if n["category"] != "RULE_GOVERNANCE"] == []


async def test_a_concentration_alert_tells_vendor_admins_and_finance(
    gql: GQL, db: Database, tenant: Tenant, other_tenant: Tenant, services: Services
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    top = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 6_000, "reason": "board policy"}
    made = (await gql.data(SET, {"input": top}, as_user=admin))["concentrationThresholdSet"]
    assert made["userErrors"] == []
    async with services.outbox.paused():  # both sales before the check (the app dispatches too)
        await approve_sale(db, services.clock, tenant, partner=0, amount=700_00)
        await approve_sale(db, services.clock, tenant, partner=1, amount=300_00)
    await settle(services)
    for user in (admin, tenant.user(Role.FINANCE)):
        [note] = await told(gql, user)
        assert (note["category"], note["kind"]) == ("CONCENTRATION", "concentration_alert")
        assert note["title"].startswith("Concentration alert for ")
        assert note["title"].endswith(": 70%")
        assert note["body"].endswith(
            f"the largest partner holds 70% of revenue, above your limit of 60%: "
            f"{tenant.partners[0].name}."
        )
    for user in (
        tenant.user(Role.CHANNEL_MANAGER), tenant.user(Role.PARTNER_ADMIN, 0),
        tenant.user(Role.PARTNER_REP, 0), other_tenant.user(Role.VENDOR_ADMIN),
    ):  # fmt: skip
        assert await told(gql, user) == []
    async with db.session() as session:
        rows = await session.exec(
            select(Notification.kind).where(col(Notification.vendor_id) == tenant.vendor.id)
        )
        assert sorted(rows) == ["concentration_alert", "concentration_alert"]


async def test_a_firing_is_told_to_a_german_reader_in_german(
    gql: GQL, db: Database, clock: OffsetClock, tenant: Tenant, services: Services
) -> None:
    s = await shop(db, clock, tenant, services)
    admin = tenant.user(Role.PARTNER_ADMIN, 0)
    assert (await prefer(gql, admin, locale="de", timeZone="Europe/Berlin"))["userErrors"] == []
    await active_rule(db, clock, s, condition=GROWTH, actions=[
        Action(ActionKind.GROUP_WINDOW, group_id=s.boost_group_id, days=30),
        Action(ActionKind.RATE_OVERLAY, days=30, program_id=s.base_program_id, delta_bp=150),
        Action(ActionKind.RECOMMEND, title="Demo-Tag buchen", text="Mehr verkaufen."),
    ])  # fmt: skip
    assert await daily(db, clock) == 1
    await settle(services)
    notes = {n["kind"]: n for n in await told(gql, admin)}
    note = notes["rule_applied"]
    assert note["title"] == "Eine Programmregel betrifft Sie"
    body = note["body"]
    assert body.startswith("Aufgrund Ihrer Werte (Ihr Umsatz ist gegenüber der Vorwoche um 24")
    assert "gestiegen" in body
    assert " gilt: Sie sind bis " in body
    assert " in Boost: +2 Punkte auf jeden Verkauf" in body
    assert "zahlt bis" in body
    assert "+1,5 Punkte auf jeden Verkauf" in body
    assert "wir empfehlen: Demo-Tag buchen." in body
    # No English left (the explanation incentiveExplanations shows is English).
    for word in ("revenue", "until", "every sale", "recommend", "points"):
        assert word not in body.lower()
    # An English reader of the same firing still reads incentiveExplanations' sentence.
    [explained] = (await gql.data(EXPLANATIONS, as_user=admin))["incentiveExplanations"]
    assert explained["text"].startswith("Your revenue grew 24 % week over week")
