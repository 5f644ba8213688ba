"""Sending queued e-mails over SMTP (aiosmtplib), beside the outbox dispatcher.

At least once: a mail is marked sent only after the server accepted it. Each pass claims
the due mails one at a time with a conditional update (``claimed_until``), so two processes
running the sender (every API process runs it inline) never send the same mail at once; a
process that dies mid-send leaves the claim to expire and another sends it again. A failed
send waits (1 s, 2 s, 4 s, ... capped) and after ``max_attempts`` is set aside
(``dead_at``). A digest is rendered when it is sent, from the messages it collected, and
marks sent only those. An item can join a digest after it was rendered: its transaction
read the clock before the digest's hour and committed after (a slow transaction, a host
whose clock is behind). Each pass first moves such items, left unsent by a digest that
went out, into a late digest of their own, due at once."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import passes
from infra.clock import Clock
from infra.db import Database
from infra.outbox import backoff, describe
from notifications import rendering
from notifications.models import Mail, MailKind
from notifications.preferences import preferences_of
from notifications.smtp import SmtpSettings
from partners.models import User

log = logging.getLogger(__name__)

CLAIM = timedelta(seconds=60)
SMTP_ERRORS: tuple[type[BaseException], ...] = (aiosmtplib.SMTPException, OSError, TimeoutError)


class MailSender:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        smtp: SmtpSettings,
        *,
        max_attempts: int = 12,
        backoff_cap: timedelta = timedelta(hours=1),
        batch_size: int = 100,
    ) -> None:
        self.db = db
        self.clock = clock
        self.smtp = smtp
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self.batch_size = batch_size

    async def send_due(self) -> int:
        """Send every mail that is due now; returns how many were sent."""
        now = self.clock.now()
        await self._adopt_left_behind(now)
        async with self.db.session() as session:
            due = list(
                await session.exec(
                    select(Mail.id)
                    .where(
                        col(Mail.sent_at).is_(None),
                        col(Mail.dead_at).is_(None),
                        Mail.kind != MailKind.DIGEST_ITEM,
                        col(Mail.due_at) <= now,
                        or_(col(Mail.claimed_until).is_(None), col(Mail.claimed_until) < now),
                    )  # fmt: skip
                    .order_by(col(Mail.due_at), col(Mail.id))
                    .limit(self.batch_size)
                )
            )
        # A mail at a time: one that cannot be rendered does not hold back the queue (its
        # claim lapses and it is tried again on a later pass).
        return await passes.each("sending mail", due, self._send_one)

    async def _claim(self, mail_id: uuid.UUID) -> Mail | None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Mail)
                .where(
                    col(Mail.id) == mail_id,
                    col(Mail.sent_at).is_(None),
                    col(Mail.dead_at).is_(None),
                    or_(col(Mail.claimed_until).is_(None), col(Mail.claimed_until) < now),
                )  # fmt: skip
                .values(claimed_until=now + CLAIM)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return await session.get(Mail, mail_id)

    async def _adopt_left_behind(self, now: datetime) -> None:
        """Digest items still unsent whose digest was sent without them: into a new digest
        per user, due now (its key names the digest they missed and the new one's id)."""
        missed = select(Mail.id).where(Mail.kind == MailKind.DIGEST, col(Mail.sent_at).is_not(None))
        async with self.db.session() as session:
            left = list(
                await session.exec(
                    select(Mail).where(
                        Mail.kind == MailKind.DIGEST_ITEM,
                        col(Mail.sent_at).is_(None),
                        col(Mail.digest_id).in_(missed),
                    )
                )
            )
        by_digest: dict[uuid.UUID, list[Mail]] = {}
        for item in left:
            assert item.digest_id is not None
            by_digest.setdefault(item.digest_id, []).append(item)
        for old_id, items in by_digest.items():
            first = items[0]
            async with self.db.transaction() as session:
                late = Mail(
                    vendor_id=first.vendor_id, user_id=first.user_id, kind=MailKind.DIGEST,
                    to_address=first.to_address, locale=first.locale, subject="", text_body="",
                    html_body="", created_at=now, due_at=now,
                )  # fmt: skip
                late.digest_key = f"{old_id}:late:{late.id}"
                session.add(late)
                await session.flush()
                # Conditional: another process may have moved (or the digest sent) them.
                await session.execute(
                    update(Mail)
                    .where(
                        col(Mail.id).in_([i.id for i in items]),
                        col(Mail.digest_id) == old_id,
                        col(Mail.sent_at).is_(None),
                    )
                    .values(digest_id=late.id, due_at=now)
                )
            log.warning(
                "%d digest item(s) of %s committed after it was sent: in late digest %s",
                len(items), old_id, late.id,
            )  # fmt: skip

    async def _send_one(self, mail_id: uuid.UUID) -> int:
        mail = await self._claim(mail_id)
        if mail is None:
            return 0
        try:
            message, carried = await self._message(mail)
            if message is not None:
                await self._deliver(message)
        except SMTP_ERRORS as exc:
            await self._failed(mail, exc)
            return 0
        await self._sent(mail, carried)
        return 1 if message is not None else 0

    async def _message(self, mail: Mail) -> tuple[EmailMessage | None, list[uuid.UUID]]:
        """The e-mail, and the digest items it carries (none unless a digest)."""
        if mail.kind is MailKind.DIGEST:
            return await self._digest(mail)
        email = self._email(mail, mail.to_address, mail.subject, mail.text_body, mail.html_body)
        return email, []

    def _email(self, mail: Mail, to: str, subject: str, text: str, html: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.smtp.from_address
        message["To"] = to
        message["Subject"] = subject
        # The same on every attempt: at least once may mean twice, and a receiving system
        # can tell a repeat by its Message-ID.
        domain = self.smtp.from_address.rpartition("@")[2] or "channelboard"
        message["Message-ID"] = f"<{mail.id}@{domain}>"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def _digest(self, digest: Mail) -> tuple[EmailMessage | None, list[uuid.UUID]]:
        """The day's messages of one user as one e-mail (None: nothing was collected), and
        the items it carries."""
        async with self.db.session() as session:
            items = list(
                await session.exec(
                    select(Mail).where(Mail.digest_id == digest.id).order_by(col(Mail.id))
                )
            )
            user = await session.get(User, digest.user_id) if digest.user_id else None
            prefs = await preferences_of(session, digest.user_id) if digest.user_id else None
        carried = [i.id for i in items]
        if not items or user is None or prefs is None:
            return None, carried
        messages = [rendering.Message(title=i.subject, body=i.text_body) for i in items]
        day = digest.due_at.astimezone(ZoneInfo(prefs.time_zone)).date()
        subject = rendering.digest_subject(
            len(messages), day, locale=prefs.locale, time_zone=prefs.time_zone
        )
        rendered = rendering.mail(
            messages, subject=subject, locale=prefs.locale, time_zone=prefs.time_zone,
            name=user.display_name,
        )  # fmt: skip
        email = self._email(digest, user.email, rendered.subject, rendered.text, rendered.html)
        return email, carried

    async def _deliver(self, message: EmailMessage) -> None:
        smtp = self.smtp
        await aiosmtplib.send(
            message, hostname=smtp.host, port=smtp.port, username=smtp.username,
            password=smtp.password, use_tls=smtp.security == "tls",
            start_tls=True if smtp.security == "starttls" else False,
            cert_bundle=smtp.ca_file, timeout=smtp.timeout_seconds,
        )  # fmt: skip

    async def _sent(self, mail: Mail, carried: list[uuid.UUID]) -> None:
        now = self.clock.now()
        values: dict[str, object] = {"sent_at": now, "claimed_until": None}
        if mail.secret:  # an invitation's token is kept only until it is sent
            values.update(text_body="", html_body="")
        async with self.db.transaction() as session:
            await session.execute(update(Mail).where(col(Mail.id) == mail.id).values(**values))
            if carried:  # only what it carried: an item that joined since waits (above)
                await session.execute(
                    update(Mail).where(col(Mail.id).in_(carried)).values(sent_at=now)
                )

    async def _failed(self, mail: Mail, exc: BaseException) -> None:
        now = self.clock.now()
        attempts = mail.attempts + 1
        dead = attempts >= self.max_attempts
        _type, message = describe(exc)
        values: dict[str, object] = {
            "attempts": attempts, "last_error": f"{_type}: {message}"[:1000],
            "claimed_until": None,
            "due_at": mail.due_at if dead else now + backoff(attempts, self.backoff_cap),
            "dead_at": now if dead else None,
        }  # fmt: skip
        async with self.db.transaction() as session:
            await session.execute(update(Mail).where(col(Mail.id) == mail.id).values(**values))
        log.warning(
            "mail %s to %s failed (attempt %d of %d)%s: %s",
            mail.id, mail.to_address, attempts, self.max_attempts,
            ", set aside" if dead else "", values["last_error"],
        )  # fmt: skip


async def mail_backlog(session: AsyncSession, now: datetime) -> dict[str, int]:
    """For /readyz: e-mails due and not sent yet (retries waiting included), and those set
    aside after their last attempt (``deadLetters``: the SMTP server kept refusing them)."""
    unsent = (
        col(Mail.sent_at).is_(None), Mail.kind != MailKind.DIGEST_ITEM,
    )  # fmt: skip
    due = select(func.count()).where(*unsent, col(Mail.dead_at).is_(None), col(Mail.due_at) <= now)
    dead = select(func.count()).where(*unsent, col(Mail.dead_at).is_not(None))
    return {
        "due": int((await session.exec(due)).one()),
        "deadLetters": int((await session.exec(dead)).one()),
    }
