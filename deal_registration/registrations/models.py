"""Deal registration tables: registrations, their lines, recorded transitions, conflict
evidence, extension requests, and each vendor's program settings."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    Index,
    UniqueConstraint,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


class DealStatus(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"
    WON = "WON"
    LOST = "LOST"
    EXPIRED = "EXPIRED"


class DealAction(StrEnum):
    """What happened to a registration; every action is recorded as a transition."""

    CREATE_DRAFT = "CREATE_DRAFT"
    SUBMIT = "SUBMIT"
    START_REVIEW = "START_REVIEW"
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    WITHDRAW = "WITHDRAW"
    MARK_WON = "MARK_WON"
    MARK_LOST = "MARK_LOST"
    EXPIRE = "EXPIRE"
    REQUEST_EXTENSION = "REQUEST_EXTENSION"
    GRANT_EXTENSION = "GRANT_EXTENSION"
    REFUSE_EXTENSION = "REFUSE_EXTENSION"


class ConflictRule(StrEnum):
    DOMAIN = "DOMAIN"  # the same registrable domain
    NAME = "NAME"  # a similar company name after normalisation


class ConflictStage(StrEnum):
    SUBMISSION = "SUBMISSION"
    APPROVAL = "APPROVAL"


class ExtensionStatus(StrEnum):
    PENDING = "PENDING"
    GRANTED = "GRANTED"
    REFUSED = "REFUSED"


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


# One protected registration per customer: the database refuses a second, whatever the
# race. Expired protections are moved to EXPIRED before any approval (expiry.expire_due).
PROTECTED_CUSTOMER_INDEX = "uq_deal_registration_protected_customer"
_PROTECTED = text("status = 'APPROVED' AND is_protected")


class DealRegistration(SQLModel, table=True):
    __tablename__ = "deal_registration"
    __table_args__ = (
        Index(
            PROTECTED_CUSTOMER_INDEX,
            "vendor_id",
            "customer_domain",
            unique=True,
            sqlite_where=_PROTECTED,
            postgresql_where=_PROTECTED,
        ),
        UniqueConstraint("vendor_id", "partner_id", "idempotency_key"),
        Index("ix_deal_registration_vendor_status", "vendor_id", "status"),
        CheckConstraint("estimated_value_minor >= 0", name="value_not_negative"),
        CheckConstraint("extensions_granted >= 0", name="extensions_not_negative"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    registered_by_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", index=True
    )
    status: DealStatus = Field(sa_column=Column(_enum(DealStatus, "deal_status"), nullable=False))
    customer_name: str = Field(max_length=200)
    customer_name_key: str = Field(max_length=200)  # normalised, for matching
    customer_domain: str = Field(max_length=253)  # registrable domain, e.g. acme.co.uk
    customer_country: str = Field(max_length=2)  # ISO 3166-1 alpha-2
    customer_region: str = Field(default="", max_length=64)
    contact_name: str = Field(default="", max_length=200)
    contact_email: str = Field(default="", max_length=254)
    estimated_value_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    expected_close_date: date = Field(sa_column=Column(Date, nullable=False))
    notes: str = Field(default="", max_length=4000)
    big_deal: bool = False
    is_protected: bool = False
    submitted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    review_due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    decided_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    decision_reason: str = Field(default="", max_length=1000)
    override_reason: str = Field(default="", max_length=1000)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, index=True))
    extensions_granted: int = 0
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Legacy, no longer written: keys live in infra.idempotency (per caller) since 0007,
    # which copied these. The columns stay because SQLite cannot drop them in place from a
    # table other tables reference.
    idempotency_key: str | None = Field(default=None, max_length=128)
    request_hash: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class DealRegistrationLine(SQLModel, table=True):
    __tablename__ = "deal_registration_line"
    __table_args__ = (
        UniqueConstraint("registration_id", "sku"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    registration_id: uuid.UUID = Field(foreign_key="deal_registration.id", index=True)
    product_id: uuid.UUID = Field(foreign_key="product.id")
    sku: str = Field(max_length=64)
    quantity: int
    unit_list_price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))


class DealTransition(SQLModel, table=True):
    """One line of a registration's history: who did what, when, from which status to which."""

    __tablename__ = "deal_transition"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    registration_id: uuid.UUID = Field(foreign_key="deal_registration.id", index=True)
    action: DealAction = Field(sa_column=Column(_enum(DealAction, "deal_action"), nullable=False))
    from_status: DealStatus | None = Field(
        default=None, sa_column=Column(_enum(DealStatus, "deal_status"))
    )
    to_status: DealStatus = Field(
        sa_column=Column(_enum(DealStatus, "deal_status"), nullable=False)
    )
    actor_user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    actor_role: str = Field(default="SYSTEM", max_length=32)
    reason: str = Field(default="", max_length=1000)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class DealConflict(SQLModel, table=True):
    """Evidence that ``registration_id`` looks like the same customer as another active
    registration, as found at submission or at approval. Vendor-internal except for the
    rule, which the registering partner may see when the other registration is earlier."""

    __tablename__ = "deal_conflict"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    registration_id: uuid.UUID = Field(foreign_key="deal_registration.id", index=True)
    other_registration_id: uuid.UUID = Field(foreign_key="deal_registration.id", index=True)
    stage: ConflictStage = Field(
        sa_column=Column(_enum(ConflictStage, "conflict_stage"), nullable=False)
    )
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    score: int
    name_score: int
    shared_skus: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    same_country: bool
    other_is_earlier: bool
    detected_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class DealExtensionRequest(SQLModel, table=True):
    __tablename__ = "deal_extension_request"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    registration_id: uuid.UUID = Field(foreign_key="deal_registration.id", index=True)
    status: ExtensionStatus = Field(
        sa_column=Column(_enum(ExtensionStatus, "extension_status"), nullable=False)
    )
    reason: str = Field(max_length=1000)
    requested_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    requested_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    decided_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    decision_reason: str = Field(default="", max_length=1000)


DEFAULT_SETTINGS: dict[str, Any] = {
    "big_deal_threshold_minor": 5_000_000,  # 50,000.00
    "currency": "USD",
    "similarity_threshold": 85,
    "protection_days": 90,
    "extension_days": 30,
    "max_extensions": 2,
    "review_sla_days": 3,
}


class DealProgramSettings(SQLModel, table=True):
    """A vendor's deal registration rules; absent means the defaults above. The row doubles
    as the vendor's approval lock (``lock_version`` is bumped by every approval)."""

    __tablename__ = "deal_program_settings"
    __table_args__ = (
        CheckConstraint("similarity_threshold BETWEEN 50 AND 100", name="similarity_range"),
        CheckConstraint("protection_days BETWEEN 1 AND 730", name="protection_days_range"),
        CheckConstraint("extension_days BETWEEN 1 AND 365", name="extension_days_range"),
        CheckConstraint("max_extensions BETWEEN 0 AND 10", name="max_extensions_range"),
        CheckConstraint("review_sla_days BETWEEN 1 AND 60", name="review_sla_days_range"),
        CheckConstraint("big_deal_threshold_minor >= 0", name="threshold_not_negative"),
    )

    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", primary_key=True)
    big_deal_threshold_minor: int = Field(
        default=DEFAULT_SETTINGS["big_deal_threshold_minor"],
        sa_column=Column(BigInteger, nullable=False),
    )
    currency: str = Field(default=DEFAULT_SETTINGS["currency"], max_length=3)
    similarity_threshold: int = DEFAULT_SETTINGS["similarity_threshold"]
    protection_days: int = DEFAULT_SETTINGS["protection_days"]
    extension_days: int = DEFAULT_SETTINGS["extension_days"]
    max_extensions: int = DEFAULT_SETTINGS["max_extensions"]
    review_sla_days: int = DEFAULT_SETTINGS["review_sla_days"]
    lock_version: int = 0
    updated_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
