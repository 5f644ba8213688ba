"""Tables of sale registration.

A serial is credited at most once per vendor: ``serial_credit`` holds one row per credited
(or held-for-review) serial under a unique constraint, so two claims racing for the same
serial end with exactly one row, whatever the database.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import MINOR_UNITS, UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class SerialStatus(StrEnum):
    SHIPPED = "SHIPPED"
    RETURNED = "RETURNED"
    VOIDED = "VOIDED"


class SerialOutcome(StrEnum):
    VALID = "VALID"
    UNKNOWN_SERIAL = "UNKNOWN_SERIAL"
    ALREADY_CLAIMED = "ALREADY_CLAIMED"
    NOT_SHIPPED_TO_YOUR_CHANNEL = "NOT_SHIPPED_TO_YOUR_CHANNEL"
    SOLD_BEFORE_SHIPMENT = "SOLD_BEFORE_SHIPMENT"
    OUTSIDE_CLAIM_WINDOW = "OUTSIDE_CLAIM_WINDOW"
    RETURNED = "RETURNED"
    # A lookup's only: a claim refuses a future sale date whole (SALE_DATE_IN_FUTURE)
    # before it judges its serials.
    SALE_DATE_IN_FUTURE = "SALE_DATE_IN_FUTURE"


class ClaimState(StrEnum):
    AUTO_APPROVED = "AUTO_APPROVED"
    NEEDS_PROOF = "NEEDS_PROOF"
    UNDER_REVIEW = "UNDER_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REVERSED = "REVERSED"


CREDITED_STATES = frozenset({ClaimState.AUTO_APPROVED, ClaimState.APPROVED})
OPEN_STATES = frozenset({ClaimState.NEEDS_PROOF, ClaimState.UNDER_REVIEW})


class RejectReason(StrEnum):
    NO_VALID_SERIALS = "NO_VALID_SERIALS"
    INSUFFICIENT_PROOF = "INSUFFICIENT_PROOF"
    DUPLICATE_CLAIM = "DUPLICATE_CLAIM"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    SUSPECTED_FRAUD = "SUSPECTED_FRAUD"
    OTHER = "OTHER"


class ReverseReason(StrEnum):
    REFUNDED = "REFUNDED"
    RETURNED = "RETURNED"
    APPROVED_IN_ERROR = "APPROVED_IN_ERROR"


class DecisionAction(StrEnum):
    SUBMITTED = "SUBMITTED"
    AUTO_APPROVED = "AUTO_APPROVED"
    AUTO_REJECTED = "AUTO_REJECTED"
    PROOF_ADDED = "PROOF_ADDED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PROOF_REQUESTED = "PROOF_REQUESTED"
    REVERSED = "REVERSED"


class RiskKind(StrEnum):
    REUSED_INVOICE_NUMBER = "REUSED_INVOICE_NUMBER"
    REUSED_PROOF_FILE = "REUSED_PROOF_FILE"
    CLAIM_BURST = "CLAIM_BURST"
    AMOUNT_ABOVE_LIST_PRICE = "AMOUNT_ABOVE_LIST_PRICE"
    SERIAL_FRESHLY_IMPORTED = "SERIAL_FRESHLY_IMPORTED"


class Serial(SQLModel, table=True):
    """One shipped unit in the vendor's registry (serials are stored normalised)."""

    __tablename__ = "serial"
    __table_args__ = (UniqueConstraint("vendor_id", "serial"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    serial: str = Field(max_length=64)
    sku: str = Field(max_length=64)
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id")
    region: str = Field(default="", max_length=32)
    shipped_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: SerialStatus = Field(
        default=SerialStatus.SHIPPED,
        sa_column=Column(_enum(SerialStatus, "serial_status"), nullable=False),
    )
    imported_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SerialImport(SQLModel, table=True):
    """A record of one registry import (who, when, what came of it)."""

    __tablename__ = "serial_import"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    filename: str = Field(default="", max_length=255)
    sha256: str = Field(max_length=64)
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    imported_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    imported_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SalesSettings(SQLModel, table=True):
    """A vendor's claim rules; a vendor without a row uses the defaults in ``defaults()``."""

    __tablename__ = "sales_settings"
    __table_args__ = (
        CheckConstraint("claim_window_days BETWEEN 1 AND 3650", name="claim_window_range"),
        CheckConstraint("max_serials_per_claim BETWEEN 1 AND 500", name="max_serials_range"),
        CheckConstraint("auto_approve_limit_minor >= 0", name="auto_approve_not_negative"),
    )

    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", primary_key=True)
    claim_window_days: int = 90
    auto_approve_limit_minor: int = Field(
        default=500_000, sa_column=Column(MINOR_UNITS, nullable=False)
    )
    auto_approve_currency: str = Field(default="USD", max_length=3)
    proof_required: bool = True
    max_serials_per_claim: int = 500
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")


class SaleClaim(SQLModel, table=True):
    __tablename__ = "sale_claim"
    __table_args__ = (
        UniqueConstraint("partner_id", "idempotency_key"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_sale_claim_vendor_id_invoice_number", "vendor_id", "invoice_number"),
        Index("ix_sale_claim_partner_id_created_at", "partner_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    rep_user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    customer_name: str = Field(max_length=200)
    invoice_number: str = Field(max_length=64)
    sale_date: date
    amount_minor: int = Field(sa_column=Column(MINOR_UNITS, nullable=False))
    currency: str = Field(max_length=3)
    region: str = Field(default="", max_length=32)
    state: ClaimState = Field(
        sa_column=Column(_enum(ClaimState, "sale_claim_state"), nullable=False, index=True)
    )
    reject_reason: RejectReason | None = Field(
        default=None, sa_column=Column(_enum(RejectReason, "sale_reject_reason"))
    )
    reverse_reason: ReverseReason | None = Field(
        default=None, sa_column=Column(_enum(ReverseReason, "sale_reverse_reason"))
    )
    # Legacy, no longer written: keys live in infra.idempotency (per caller) since 0007,
    # which copied these. The column stays because SQLite cannot drop it in place from a
    # table other tables reference.
    idempotency_key: str | None = Field(default=None, max_length=128)
    approved_event_id: uuid.UUID | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SaleClaimSerial(SQLModel, table=True):
    """A serial as claimed, and how it was judged when the claim came in."""

    __tablename__ = "sale_claim_serial"
    __table_args__ = (UniqueConstraint("claim_id", "serial"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    claim_id: uuid.UUID = Field(foreign_key="sale_claim.id", index=True)
    serial: str = Field(max_length=64)
    sku: str | None = Field(default=None, max_length=64)
    outcome: SerialOutcome = Field(
        sa_column=Column(_enum(SerialOutcome, "serial_outcome"), nullable=False)
    )
    position: int = 0


class SerialCredit(SQLModel, table=True):
    """The one claim a serial is credited to (held while that claim is open). The unique
    constraint is what makes "credited once" true under concurrency."""

    __tablename__ = "serial_credit"
    __table_args__ = (UniqueConstraint("vendor_id", "serial"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    serial: str = Field(max_length=64)
    claim_id: uuid.UUID = Field(foreign_key="sale_claim.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SaleClaimDecision(SQLModel, table=True):
    """Every state change of a claim: what, from and to which state, by whom, when. The
    claim's partner is kept with it (a claim never changes partner) so a partner's
    decisions of a day are found by index, not by walking all of its vendor's claims (the
    signal handlers read them at every approval)."""

    __tablename__ = "sale_claim_decision"
    __table_args__ = (
        Index("ix_sale_claim_decision_partner_id_decided_at", "partner_id", "decided_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    claim_id: uuid.UUID = Field(foreign_key="sale_claim.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    action: DecisionAction = Field(
        sa_column=Column(_enum(DecisionAction, "sale_decision_action"), nullable=False)
    )
    from_state: ClaimState | None = Field(
        default=None, sa_column=Column(_enum(ClaimState, "sale_claim_state"))
    )
    to_state: ClaimState = Field(
        sa_column=Column(_enum(ClaimState, "sale_claim_state"), nullable=False)
    )
    reason: str | None = Field(default=None, max_length=32)
    note: str = Field(default="", max_length=2000)
    decided_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    decided_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class RiskFlag(SQLModel, table=True):
    """A vendor-internal warning on a claim. Never shown to partner roles."""

    __tablename__ = "sale_claim_risk_flag"
    __table_args__ = (
        UniqueConstraint("claim_id", "kind"),
        # A day's flags of a vendor, by index (the signal handlers read them at every
        # approval).
        Index("ix_sale_claim_risk_flag_vendor_id_created_at", "vendor_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")  # indexed with created_at
    claim_id: uuid.UUID = Field(foreign_key="sale_claim.id", index=True)
    kind: RiskKind = Field(sa_column=Column(_enum(RiskKind, "risk_kind"), nullable=False))
    detail: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
