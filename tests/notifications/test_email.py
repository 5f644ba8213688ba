"""E-mail notifications, checked at a real SMTP server on loopback (aiosmtpd): the message
in English and German (money and dates by Babel), HTML with what users typed escaped,
preferences per category (e-mail, in-app only, off) and malformed preferences refused, the
daily digest at the user's local hour, retries while the server refuses, the invitation
e-mail, and a restarted dispatcher losing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api.composition import build_services
from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from notifications.models import Mail, MailKind, Notification
from notifications.sender import MailSender
from notifications.smtp import SmtpSettings
from partners.models import User
from partners.roles import Role
from schema.context import Services
from tests.deal_registration.sales.scenarios import CREATE, claim_input, seed_registry
from tests.factories import Tenant
from tests.notifications.scenarios import (
    PREFERENCES,
    UPDATE_PREFERENCES,
    Receiver,
    html_of,
    mailing,
    smtp_server,
    text_of,
)
from tests.notifications.test_triggers import held_for_review
from tests.support import GQL, eventually

APPROVE = """mutation($input: SaleClaimApproveInput!) {
  saleClaimApprove(input: $input) { saleClaim { id state } userErrors { code } } }"""


@pytest.fixture
def smtp() -> Iterator[tuple[Receiver, int]]:
    with smtp_server() as server:
        yield server


async def claim_and_approve(
    gql: GQL, tenant: Tenant, clock: OffsetClock, serial: str, **overrides: Any
) -> None:
    rep = tenant.user(Role.PARTNER_REP, 0)
    created = await gql.data(
        CREATE, {"input": claim_input([serial], clock, **overrides)}, as_user=rep
    )
    claim_id = created["saleClaimCreate"]["saleClaim"]["id"]
    await gql.data(APPROVE, {"input": {"id": claim_id}}, as_user=tenant.user(Role.VENDOR_ADMIN))


async def prefer(gql: GQL, user: User, **values: Any) -> dict[str, Any]:
    data = await gql.data(UPDATE_PREFERENCES, {"input": values}, as_user=user)
    result: dict[str, Any] = data["notificationPreferencesUpdate"]
    return result


async def mails(db: Database) -> list[Mail]:
    async with db.session() as session:
        return list(await session.exec(select(Mail).order_by(col(Mail.id))))


async def test_decision_mail_in_english_and_german_with_user_text_escaped(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep, admin = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_ADMIN, 0)
    set_de = await prefer(gql, admin, locale="de", timeZone="Europe/Berlin")
    assert set_de["userErrors"] == []
    async with mailing(services, port) as sender:
        await claim_and_approve(
            gql, tenant, clock, "SN000001", customerName="<script>x</script> & Söhne",
            amount={"amount": "1234.50", "currency": "EUR"},
        )  # fmt: skip
        await services.outbox.dispatch_pending()
        await sender.send_due()
        await eventually(lambda: _count(receiver, rep.email, admin.email, 2))
    [english] = receiver.to(rep.email)
    assert english["Subject"] == "Sale claim approved: <script>x</script> & Söhne"
    assert english["From"] == "cb@test.example"
    text = text_of(english)
    assert f"Hello {rep.display_name}," in text
    assert "€1,234.50" in text
    assert "<script>x</script> & Söhne" in text  # plain text is plain
    html = html_of(english)
    assert "&lt;script&gt;x&lt;/script&gt; &amp; Söhne" in html
    assert "<script>" not in html

    [german] = receiver.to(admin.email)
    assert german["Subject"] == "Verkaufsmeldung genehmigt: <script>x</script> & Söhne"
    body = text_of(german)
    assert f"Hallo {admin.display_name}," in body
    assert "1.234,50\xa0€" in body
    assert "Benachrichtigungseinstellungen" in body
    assert "&lt;script&gt;" in html_of(german)
    # The inbox entry is in the reader's language too.
    async with db.session() as session:
        row = (
            await session.exec(select(Notification).where(Notification.user_id == admin.id))
        ).one()
    assert row.title.startswith("Verkaufsmeldung genehmigt")


async def test_a_review_hold_mail_carries_the_partner_note_escaped_in_german(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    admin = tenant.user(Role.PARTNER_ADMIN, 0)
    assert (await prefer(gql, admin, locale="de", timeZone="Europe/Berlin"))["userErrors"] == []
    async with mailing(services, port) as sender:
        await held_for_review(db, services, clock, tenant, "Wachstum <b>prüfen</b> & belegen")
        await services.outbox.dispatch_pending()
        await sender.send_due()

        async def held_mail() -> list[Any]:
            return [m for m in receiver.to(admin.email) if "Auszahlung" in m["Subject"]]

        await eventually(lambda: _any(held_mail()))
    [german] = await held_mail()
    text = text_of(german)
    assert (
        "Diese Auszahlung ist wegen einer Prüfung angehalten: Wachstum <b>prüfen</b> & belegen."
        in text
    )
    assert "Was sie freigibt: Sie müssen nichts tun; die Sperre endet mit der Prüfung." in text
    assert "inflated" not in text
    html = html_of(german)
    assert "Wachstum &lt;b&gt;prüfen&lt;/b&gt; &amp; belegen" in html
    assert "<b>" not in html


async def _any(found: Awaitable[list[Any]]) -> bool:
    return bool(await found)


async def _count(receiver: Receiver, a: str, b: str, n: int) -> bool:
    return len(receiver.to(a)) + len(receiver.to(b)) >= n


async def test_preferences_per_category_and_malformed_ones_change_nothing(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep, admin = tenant.user(Role.PARTNER_REP, 0), tenant.user(Role.PARTNER_ADMIN, 0)
    defaults = (await gql.data(PREFERENCES, as_user=rep))["notificationPreferences"]
    assert defaults["locale"] == "en"
    assert defaults["digest"] is False
    assert {"category": "CLAIM", "channel": "EMAIL"} in defaults["channels"]

    bad = await prefer(
        gql, rep, locale="xx", timeZone="Mars/Olympus", digestHour=24,
        channels=[{"category": "CLAIM", "channel": "OFF"},
                  {"category": "CLAIM", "channel": "EMAIL"}],
    )  # fmt: skip
    assert sorted((e["field"], e["code"]) for e in bad["userErrors"]) == [
        ("channels.1.category", "DUPLICATE_CATEGORY"), ("digestHour", "INVALID_DIGEST_HOUR"),
        ("locale", "INVALID_LOCALE"), ("timeZone", "INVALID_TIME_ZONE"),
    ]  # fmt: skip
    assert bad["preferences"] is None
    unknown = await gql(
        UPDATE_PREFERENCES, {"input": {"channels": [{"category": "SPAM", "channel": "OFF"}]}},
        as_user=rep,
    )  # fmt: skip
    assert unknown["errors"]
    assert unknown.get("data") is None
    assert (await gql.data(PREFERENCES, as_user=rep))["notificationPreferences"] == defaults
    anonymous = await gql(UPDATE_PREFERENCES, {"input": {"locale": "de"}})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    in_app = await prefer(gql, rep, channels=[{"category": "CLAIM", "channel": "IN_APP"}])
    assert {"category": "CLAIM", "channel": "IN_APP"} in in_app["preferences"]["channels"]
    off = await prefer(gql, admin, channels=[{"category": "CLAIM", "channel": "OFF"}])
    assert off["userErrors"] == []
    async with mailing(services, port) as sender:
        await claim_and_approve(gql, tenant, clock, "SN000001")
        await services.outbox.dispatch_pending()
        await sender.send_due()
    async with db.session() as session:
        rows = list(await session.exec(select(Notification)))
    assert [r.user_id for r in rows] == [rep.id]  # in the rep's inbox; the admin: nothing
    assert await mails(db) == []
    assert receiver.messages == []


async def test_daily_digest_batches_a_days_mail_at_the_local_hour(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep = tenant.user(Role.PARTNER_REP, 0)
    # 08:00 in Berlin; set the clock to 10:00 UTC (11:00 there) on a known day.
    clock.advance(datetime(2027, 3, 10, 10, 0, tzinfo=UTC) - clock.now())
    result = await prefer(gql, rep, digest=True, digestHour=8, timeZone="Europe/Berlin")
    assert result["preferences"]["digest"] is True
    async with mailing(services, port) as sender:
        for serial in ("SN000001", "SN000002", "SN000003"):
            await claim_and_approve(gql, tenant, clock, serial)
        await services.outbox.dispatch_pending()
        await sender.send_due()
        assert receiver.to(rep.email) == []  # the partner admin's (no digest) went out
        # (the app's own mail pass may have claimed one first: it is still being sent)
        admin = tenant.user(Role.PARTNER_ADMIN, 0).email
        await eventually(lambda: _has(receiver, admin, 3))
        [digest] = [m for m in await mails(db) if m.kind is MailKind.DIGEST]
        assert digest.due_at == datetime(2027, 3, 11, 7, 0, tzinfo=UTC)  # 08:00 CET
        clock.advance(timedelta(hours=20, minutes=59))  # 06:59 UTC: not yet
        await sender.send_due()
        assert receiver.to(rep.email) == []
        clock.advance(timedelta(minutes=1))
        await sender.send_due()
        await eventually(lambda: _has(receiver, rep.email))
        await sender.send_due()  # nothing twice
    [mail] = receiver.to(rep.email)
    assert mail["Subject"] == "Your channelboard digest for March 11, 2027: 3 notifications"
    assert text_of(mail).count("Sale claim approved: Initech") == 3
    assert html_of(mail).count("<h3") == 3
    assert all(m.sent_at is not None for m in await mails(db))


async def test_a_digest_item_committed_after_its_digest_went_out_is_mailed_in_a_late_one(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    """A notice whose transaction read the clock before the digest hour and committed after
    the digest was sent (a slow transaction, or a host whose clock is behind) joined a
    digest already gone: it was never mailed (or marked sent, unsent, when it committed
    while the digest was on its way). Now a digest marks sent only the items it carried,
    and items left behind by a sent digest go out in a late digest of their own."""
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep = tenant.user(Role.PARTNER_REP, 0)
    clock.advance(datetime(2027, 3, 10, 10, 0, tzinfo=UTC) - clock.now())
    await prefer(gql, rep, digest=True, digestHour=8, timeZone="Europe/Berlin")
    due = datetime(2027, 3, 11, 7, 0, tzinfo=UTC)
    async with mailing(services, port) as sender:
        await claim_and_approve(gql, tenant, clock, "SN000001")
        await services.outbox.dispatch_pending()
        clock.advance(due - clock.now())
        await sender.send_due()
        await eventually(lambda: _has(receiver, rep.email))
        # The late one: it takes the clock a minute before the hour, as its transaction did.
        clock.advance(timedelta(minutes=-1))
        await claim_and_approve(gql, tenant, clock, "SN000002")
        await services.outbox.dispatch_pending()
        clock.advance(timedelta(minutes=2))
        await sender.send_due()
        await eventually(lambda: _has(receiver, rep.email, 2))
        await sender.send_due()  # nothing twice
    first, late = receiver.to(rep.email)
    assert text_of(first).count("was approved") == text_of(late).count("was approved") == 1
    assert all(m.sent_at is not None for m in await mails(db))


async def _has(receiver: Receiver, address: str, count: int = 1) -> bool:
    return len(receiver.to(address)) >= count


async def test_a_refused_mail_is_retried_with_backoff_and_sent_once(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep = tenant.user(Role.PARTNER_REP, 0)
    receiver.refusing = True
    async with mailing(services, port) as sender:
        await claim_and_approve(gql, tenant, clock, "SN000001")
        await services.outbox.dispatch_pending()
        await sender.send_due()
        [to_rep] = [m for m in await mails(db) if m.to_address == rep.email]
        assert to_rep.sent_at is None
        assert to_rep.attempts >= 1
        assert "451" in (to_rep.last_error or "")
        receiver.refusing = False
        clock.advance(timedelta(minutes=10))
        await sender.send_due()
        await sender.send_due()
    assert len(receiver.to(rep.email)) == 1
    [to_rep] = [m for m in await mails(db) if m.to_address == rep.email]
    assert to_rep.sent_at is not None


async def test_the_invitation_mail_carries_the_accept_link_and_forgets_it_once_sent(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant,
    smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    services.notifier.invitation_url = "https://partners.example/accept?token={token}"
    try:
        async with mailing(services, port) as sender:
            issued = await gql.data(
                """mutation($input: InvitationCreateInput!) { invitationCreate(input: $input) {
                     token userErrors { code } } }""",
                {"input": {"email": "new.rep@partner.example", "role": "PARTNER_REP",
                           "partnerId": _partner_gid(tenant)}},
                as_user=tenant.user(Role.PARTNER_ADMIN, 0),
            )  # fmt: skip
            token = issued["invitationCreate"]["token"]
            await sender.send_due()
            await eventually(lambda: _has(receiver, "new.rep@partner.example"))
    finally:
        services.notifier.invitation_url = None
    [mail] = receiver.to("new.rep@partner.example")
    assert mail["Subject"] == f"You are invited to {tenant.vendor.name} on channelboard"
    assert f"https://partners.example/accept?token={token}" in text_of(mail)
    assert tenant.partners[0].name in text_of(mail)
    [row] = await mails(db)
    assert row.sent_at is not None
    assert row.text_body == ""
    assert row.html_body == ""


def _partner_gid(tenant: Tenant) -> str:
    from tests.factories import gid

    return gid(tenant.partners[0])


async def test_no_smtp_host_means_no_mail_and_the_inbox_still_works(
    gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    assert services.notifier.sender is None  # the test app sets no CHANNELBOARD_SMTP_HOST
    await seed_registry(db, clock, tenant, 10)
    await claim_and_approve(gql, tenant, clock, "SN000001")
    await services.outbox.dispatch_pending()
    assert await mails(db) == []
    async with db.session() as session:
        assert len(list(await session.exec(select(Notification)))) == 2


async def test_a_restarted_dispatcher_loses_nothing(
    gql: GQL, services: Services, settings: Settings, db: Database, clock: OffsetClock,
    tenant: Tenant, smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    await seed_registry(db, clock, tenant, 10)
    rep = tenant.user(Role.PARTNER_REP, 0)
    # Decisions commit while no dispatcher dispatches (this process's holds back).
    async with services.outbox.paused():
        await claim_and_approve(gql, tenant, clock, "SN000001")
        await claim_and_approve(gql, tenant, clock, "SN000002")
        # A new process (as after a restart), configured by its settings for SMTP.
        restarted = build_services(
            settings.with_overrides(
                smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                mail_from="restarted@test.example",
            ),
            db=db, redis=services.redis, clock=clock,
        )  # fmt: skip
        assert restarted.notifier.sender is not None
        await restarted.outbox.dispatch_pending()
        # It claims a mail and dies before sending it: the claim expires, another sends it.
        [first, *_rest] = [m for m in await mails(db) if m.to_address == rep.email]
        assert await restarted.notifier.sender._claim(first.id) is not None
        again = build_services(
            settings.with_overrides(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"),
            db=db, redis=services.redis, clock=clock,
        )  # fmt: skip
        assert again.notifier.sender is not None
        await again.notifier.sender.send_due()
        assert len(receiver.to(rep.email)) == 1  # the claimed one waits for its claim
        clock.advance(timedelta(seconds=61))
        await again.notifier.sender.send_due()
    assert len(receiver.to(rep.email)) == 2
    assert {m["Subject"] for m in receiver.to(rep.email)} == {"Sale claim approved: Initech"}
    async with db.session() as session:
        rows = list(await session.exec(select(Notification).where(Notification.user_id == rep.id)))
    assert len(rows) == 2


async def test_a_mail_refused_every_attempt_is_set_aside_and_shown_in_readyz(
    client: httpx.AsyncClient, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, smtp: tuple[Receiver, int],
) -> None:  # fmt: skip
    receiver, port = smtp
    receiver.refusing = True
    async with db.transaction() as session:
        now = clock.now()
        session.add(Mail(
            vendor_id=tenant.vendor.id, kind=MailKind.MESSAGE, to_address="x@example.com",
            subject="s", text_body="t", html_body="<p>h</p>", created_at=now, due_at=now,
        ))  # fmt: skip
    assert (await client.get("/readyz")).json()["mail"] == {"due": 1, "deadLetters": 0}
    sender = MailSender(
        db, clock, SmtpSettings(host="127.0.0.1", port=port, security="none"), max_attempts=2
    )
    await sender.send_due()
    assert (await client.get("/readyz")).json()["mail"] == {"due": 0, "deadLetters": 0}
    clock.advance(timedelta(seconds=2))  # the retry falls due
    await sender.send_due()
    assert (await client.get("/readyz")).json()["mail"] == {"due": 0, "deadLetters": 1}
    [mail] = await mails(db)
    assert mail.attempts == 2
    assert mail.dead_at is not None
    assert receiver.messages == []
