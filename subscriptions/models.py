"""Customer accounts, subscriptions and their change history.

A subscription belongs to one vendor, one customer account and (for attribution) one
partner. Its history is append-only: every start, renewal, expansion, contraction and
cancellation is a ``subscription_change`` row, unique per vendor on the id the change came
with (the billing system's id, or ``sale:<event>:<line>`` for one started by a sale), which
is what makes both the GraphQL mutations and the CSV import idempotent."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class SubscriptionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CANCELLED = "CANCELLED"


class ChangeKind(StrEnum):
    STARTED = "STARTED"
    RENEWED = "RENEWED"
    EXPANDED = "EXPANDED"
    CONTRACTED = "CONTRACTED"
    CANCELLED = "CANCELLED"
    # A reversed sale's term taken back (the subscription as it was before the sale).
    REVERTED = "REVERTED"


class ChangeSource(StrEnum):
    SALE = "SALE"
    DEAL = "DEAL"
    BILLING = "BILLING"


class CustomerAccount(SQLModel, table=True):
    """A vendor's customer, keyed by the normalised name the sales and deals carry
    (``deal_registration.registrations.conflicts.normalise_name``)."""

    __tablename__ = "customer_account"
    __table_args__ = (UniqueConstraint("vendor_id", "name_key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    name_key: str = Field(max_length=200)
    domain: str = Field(default="", max_length=253)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Subscription(SQLModel, table=True):
    """``amount_minor`` is what the customer pays for one term of ``term_months``; the
    current term runs from ``term_start`` to ``ends_at``."""

    __tablename__ = "subscription"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("term_months BETWEEN 1 AND 120", name="term_range"),
        Index("ix_subscription_vendor_ends", "vendor_id", "ends_at"),
        Index("ix_subscription_partner_ends", "partner_id", "ends_at"),
        Index("ix_subscription_account_sku", "account_id", "sku"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    rep_user_id: uuid.UUID | None = Field(default=None, index=True)
    account_id: uuid.UUID = Field(foreign_key="customer_account.id")
    sku: str = Field(max_length=64)
    region: str = Field(default="", max_length=32)
    term_months: int
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    status: SubscriptionStatus = Field(
        sa_column=Column(_enum(SubscriptionStatus, "subscription_status"), nullable=False)
    )
    renewals: int = 0
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    term_start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SubscriptionChange(SQLModel, table=True):
    """One change, as it was applied: the amounts before and after, the term it opened."""

    __tablename__ = "subscription_change"
    __table_args__ = (
        UniqueConstraint("vendor_id", "external_id"),
        Index("ix_subscription_change_partner_effective", "partner_id", "effective_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # No foreign keys on vendor and partner: the subscription's key implies the vendor, the
    # partner is the one attributed then (partners are archived, never deleted), and each
    # foreign key costs the million-row import about 15 s on PostgreSQL (docs/benchmarks.md).
    vendor_id: uuid.UUID
    subscription_id: uuid.UUID = Field(foreign_key="subscription.id", index=True)
    partner_id: uuid.UUID
    kind: ChangeKind = Field(
        sa_column=Column(_enum(ChangeKind, "subscription_change_kind"), nullable=False)
    )
    source: ChangeSource = Field(
        sa_column=Column(_enum(ChangeSource, "subscription_change_source"), nullable=False)
    )
    external_id: str = Field(max_length=100)
    effective_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    amount_before_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_after_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    term_months: int
    term_start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    term_end: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    renewal_number: int = 0
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
