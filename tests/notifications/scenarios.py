"""What the notification tests share: a real SMTP server on loopback (aiosmtpd) that keeps
what it receives, the app's notifier switched to send through it, and the GraphQL
documents of the inbox."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller

from notifications.sender import MailSender
from notifications.smtp import SmtpSettings
from schema.context import Services
from tests.ports import free_port


class Receiver:
    """An aiosmtpd handler keeping every message it accepts (or refusing them all while
    ``down``)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refusing = False
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refusing:
            return "451 Try again later"
        message = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server() -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver()
    port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield receiver, port
    finally:
        controller.stop()


@asynccontextmanager
async def mailing(services: Services, port: int) -> AsyncIterator[MailSender]:
    """The app's notifier sending through the loopback server (as CHANNELBOARD_SMTP_HOST
    would configure it), for the length of the block."""
    notifier = services.notifier
    sender = MailSender(
        services.db, services.clock,
        SmtpSettings(host="127.0.0.1", port=port, security="none", from_address="cb@test.example"),
    )  # fmt: skip
    notifier.sender = sender
    try:
        yield sender
    finally:
        notifier.sender = None


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


INBOX = """
query($unread: Boolean, $first: Int, $after: String) {
  notifications(unreadOnly: $unread, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id category kind title body subjectId readAt } }
  }
  unreadNotificationCount
}"""

MARK_READ = """
mutation($input: NotificationMarkReadInput!) {
  notificationMarkRead(input: $input) {
    notification { id readAt }
    userErrors { field code }
  }
}"""

MARK_ALL_READ = """
mutation { notificationMarkAllRead { marked userErrors { field code } } }"""

PREFERENCES = """
query { notificationPreferences { locale timeZone digest digestHour
  channels { category channel } } }"""

UPDATE_PREFERENCES = """
mutation($input: NotificationPreferencesUpdateInput!) {
  notificationPreferencesUpdate(input: $input) {
    preferences { locale timeZone digest digestHour channels { category channel } }
    userErrors { field code }
  }
}"""

RECEIVED = "subscription { notificationReceived { id kind title category } }"
