"""The notifier: one per process, built by the composition root. It holds what the
notification handlers, the periodic pass and the invitation mutations share: the database,
the clock, the hub (live notices to ``notificationReceived``), the mail sender (None when
no SMTP host is configured: then nothing is queued for e-mail, and the inbox still works)
and the triggers (event type -> who is told what).

Extension point: ``extra_triggers`` adds triggers that need what only the composition root
holds (next best actions: ``notifications.rules.next_action_trigger`` over the composed
sources). A trigger for an event type that already has one runs after it (both notify);
each returns ``Notice``s with a kind whose ``<kind>_title``/``<kind>_body`` macros exist
in every messages file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent
from infra.pubsub import Hub
from leaderboards.boards import Boards
from notifications import contests, expiry
from notifications.delivery import Notice, deliver, publish
from notifications.invitations import mail_invitation
from notifications.models import Mail, Notification
from notifications.sender import MailSender
from notifications.triggers import TRIGGERS, Trigger
from partners.invitations import IssuedInvitation

log = logging.getLogger(__name__)


def _both(first: Trigger, second: Trigger) -> Trigger:
    async def trigger(session: AsyncSession, event: OutboxEvent) -> list[Notice]:
        return [*await first(session, event), *await second(session, event)]

    return trigger


class Notifier:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        hub: Hub,
        *,
        sender: MailSender | None,
        boards: Boards | None = None,
        invitation_url: str | None = None,
        extra_triggers: Mapping[str, Trigger] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.hub = hub
        self.sender = sender
        self.boards = boards  # contest standings, for "prize within reach"
        self.invitation_url = invitation_url
        self.triggers: dict[str, Trigger] = dict(TRIGGERS)
        for event_type, extra in (extra_triggers or {}).items():
            first = self.triggers.get(event_type)
            self.triggers[event_type] = extra if first is None else _both(first, extra)

    @property
    def email(self) -> bool:
        return self.sender is not None

    async def handle(self, events: list[OutboxEvent]) -> None:
        """The outbox batch handler: every event's notices in one transaction, published
        after commit. Idempotent (``deliver`` skips what was delivered for an event)."""
        async with self.db.transaction() as session:
            made: list[Notification] = []
            for event in events:
                trigger = self.triggers.get(event.type)
                if trigger is not None:
                    made += await deliver(
                        session, self.clock, await trigger(session, event), email=self.email
                    )
        await publish(self.hub, made)

    async def invitation_issued(
        self, session: AsyncSession, issued: IssuedInvitation
    ) -> Mail | None:
        """Queue the invitation e-mail in the caller's transaction (none without SMTP)."""
        if not self.email:
            return None
        return await mail_invitation(session, self.clock, issued, url_template=self.invitation_url)

    async def tick(self) -> None:
        """One periodic pass: the clock-driven triggers (deal protection expiring, prizes
        within reach), then the mail that is due."""
        await publish(self.hub, await expiry.notify_expiring(self.db, self.clock, email=self.email))
        if self.boards is not None:
            reach = await contests.notify_within_reach(
                self.db, self.clock, self.boards, email=self.email
            )
            await publish(self.hub, reach)
        if self.sender is not None:
            await self.sender.send_due()

    async def run(self, interval: float = 1.0) -> None:
        """Beside the outbox dispatcher (inline in each API process, or in `channelboard
        dispatch`): the deal-expiry check and the mail sender, every ``interval`` seconds."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification pass failed; retrying")
            await asyncio.sleep(interval)
