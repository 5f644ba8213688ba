"""Notification tables: the in-app inbox, each user's preferences, the mail queue (the
outbox of e-mails the sender delivers at least once) and the clock-driven triggers that
have fired (so that each fires once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class Category(StrEnum):
    """What a notification is about; preferences are per category."""

    CLAIM = "CLAIM"  # a sale claim decided, reversed, or proof requested
    DEAL = "DEAL"  # a deal registration decided, or its protection about to expire
    PAYOUT = "PAYOUT"  # a payout statement held, released or paid
    TIER = "TIER"  # a program tier reached or lost
    CONTEST = "CONTEST"  # a contest won, or a prize within reach
    PARTNER_APPLICATION = "PARTNER_APPLICATION"  # vendor staff: a partner applied
    WEBHOOK = "WEBHOOK"  # vendor staff: a webhook endpoint was disabled
    NEXT_ACTION = "NEXT_ACTION"  # a new next best action (a rule's recommendation)
    INCENTIVE = "INCENTIVE"  # a rule's effect on the partner; staff: a rule's notify action
    CONCENTRATION = "CONCENTRATION"  # vendor staff: a concentration guardrail was crossed
    # Vendor admins: a rule's draft version or budget loosening to approve (or cancel), and
    # its decision.
    RULE_GOVERNANCE = "RULE_GOVERNANCE"


class Channel(StrEnum):
    """Where a category's notifications go."""

    EMAIL = "EMAIL"  # the inbox and an e-mail (or the daily digest)
    IN_APP = "IN_APP"  # the inbox only
    OFF = "OFF"  # nowhere


class Notification(SQLModel, table=True):
    """One inbox entry of one user, rendered in the user's language when it was made.
    ``dedupe_key`` names what caused it (an outbox event, a clock trigger): unique per
    user, so a re-run handler notifies nobody twice."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key"),
        Index("ix_notification_user_unread", "user_id", "read_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id")
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id")
    category: Category = Field(
        sa_column=Column(_enum(Category, "notification_category"), nullable=False)
    )
    kind: str = Field(max_length=64)
    dedupe_key: str = Field(max_length=200)
    subject_id: uuid.UUID | None = None  # the claim, deal, statement, contest... it is about
    title: str = Field(max_length=300)
    body: str = Field(max_length=4000)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    read_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class NotificationSettings(SQLModel, table=True):
    """A user's notification preferences: language, time zone, the daily digest, and a
    channel per category (categories left out take ``DEFAULT_CHANNEL``). No row: defaults."""

    __tablename__ = "notification_settings"

    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    locale: str = Field(default="en", max_length=16)
    time_zone: str = Field(default="UTC", max_length=64)
    digest: bool = False
    digest_hour: int = 8
    channels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class MailKind(StrEnum):
    MESSAGE = "MESSAGE"  # one notification (or an invitation), sent when due
    DIGEST = "DIGEST"  # a day's messages of one user, rendered when sent
    DIGEST_ITEM = "DIGEST_ITEM"  # a message waiting in a digest (never sent on its own)


class Mail(SQLModel, table=True):
    """An e-mail to send: written in the transaction of what caused it, delivered by the
    sender beside the outbox dispatcher (never the request path), retried with backoff,
    marked sent only after the SMTP server accepted it (at least once)."""

    __tablename__ = "mail"
    __table_args__ = (
        Index("ix_mail_due", "sent_at", "due_at"),
        Index("ix_mail_digest", "digest_id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    kind: MailKind = Field(sa_column=Column(_enum(MailKind, "mail_kind"), nullable=False))
    notification_id: uuid.UUID | None = Field(default=None, foreign_key="notification.id")
    digest_id: uuid.UUID | None = Field(default=None, foreign_key="mail.id")
    # A digest's user and due instant: one digest per user and day.
    digest_key: str | None = Field(default=None, max_length=100, unique=True)
    to_address: str = Field(max_length=254)
    locale: str = Field(default="en", max_length=16)
    subject: str = Field(max_length=300)
    text_body: str = Field(max_length=100_000)
    html_body: str = Field(max_length=200_000)
    # Cleared once sent (an invitation's body carries its one-time token).
    secret: bool = False
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    dead_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class FiredTrigger(SQLModel, table=True):
    """A clock-driven trigger that has fired (a deal's protection expiring, a prize within
    reach), keyed by what it was about, so that the periodic check fires it once."""

    __tablename__ = "notification_trigger"

    key: str = Field(primary_key=True, max_length=200)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    fired_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
