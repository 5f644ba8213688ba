"""Earnings tables. Ledger entries and payout decisions are append-only: the ORM refuses to
update or delete them (corrections are new entries)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.append_only import append_only
from infra.db import MINOR_UNITS, UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class SourceType(StrEnum):
    SALE_APPROVED = "SALE_APPROVED"
    SALE_REVERSED = "SALE_REVERSED"
    DEAL_WON = "DEAL_WON"
    ADJUSTMENT = "ADJUSTMENT"
    PRIZE = "PRIZE"  # a contest prize finance approved (earnings.prizes)
    SUBSCRIPTION_RENEWED = "SUBSCRIPTION_RENEWED"
    SUBSCRIPTION_EXPANDED = "SUBSCRIPTION_EXPANDED"
    SUBSCRIPTION_CANCELLED = "SUBSCRIPTION_CANCELLED"
    RETENTION_CHECK = "RETENTION_CHECK"


class EntryKind(StrEnum):
    COMMISSION = "COMMISSION"
    TIER_UPLIFT = "TIER_UPLIFT"
    SPIFF = "SPIFF"
    DEAL_BONUS = "DEAL_BONUS"
    ADJUSTMENT = "ADJUSTMENT"
    CLAWBACK = "CLAWBACK"
    PRIZE = "PRIZE"
    RENEWAL_COMMISSION = "RENEWAL_COMMISSION"
    ESCALATOR = "ESCALATOR"
    EXPANSION_BONUS = "EXPANSION_BONUS"
    RETENTION_BONUS = "RETENTION_BONUS"
    RATE_OVERLAY = "RATE_OVERLAY"


class PayoutStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    PAID = "PAID"
    HELD = "HELD"


class HoldReason(StrEnum):
    MISSING_TAX_FORM = "MISSING_TAX_FORM"
    ABOVE_TRAILING_AVERAGE = "ABOVE_TRAILING_AVERAGE"
    RISK_FLAGS = "RISK_FLAGS"
    SHARED_BANK_ACCOUNT = "SHARED_BANK_ACCOUNT"
    MANUAL = "MANUAL"
    REVIEW = "REVIEW"  # a review placed by an incentive rule (``PayoutReview``)


class DecisionAction(StrEnum):
    GENERATE = "GENERATE"
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    APPROVE = "APPROVE"
    PAY = "PAY"


class ProgramKind(StrEnum):
    """BASE programs never overlap for one partner (refused at creation); BONUS programs
    pay on top of whatever else applies, and say so."""

    BASE = "BASE"
    BONUS = "BONUS"


class Program(SQLModel, table=True):
    __tablename__ = "earning_program"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    kind: ProgramKind = Field(
        default=ProgramKind.BASE,
        sa_column=Column(_enum(ProgramKind, "program_kind"), nullable=False, server_default="BASE"),
    )
    # The partner groups it applies to (str UUIDs); empty: every partner of the vendor.
    target_group_ids: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ProgramVersion(SQLModel, table=True):
    """The rules of a program from ``effective_from`` until the next version's start."""

    __tablename__ = "earning_program_version"
    __table_args__ = (UniqueConstraint("program_id", "number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    program_id: uuid.UUID = Field(foreign_key="earning_program.id", index=True)
    number: int
    effective_from: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    rules: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class CreditedSource(SQLModel, table=True):
    """One credited source event (sale, reversal, won deal, adjustment). Its unique
    ``source_event_id`` is what makes crediting idempotent: the row is inserted first, so a
    second crediting of the same event (in any process) fails on it and writes nothing."""

    __tablename__ = "earning_source"
    __table_args__ = (
        Index("ix_earning_source_partner_effective", "partner_id", "effective_at"),
        Index("ix_earning_source_partner_credited", "partner_id", "credited_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    rep_user_id: uuid.UUID | None = Field(default=None, index=True)
    source_event_id: uuid.UUID = Field(unique=True)
    source_type: SourceType = Field(
        sa_column=Column(_enum(SourceType, "earning_source_type"), nullable=False)
    )
    subject_id: uuid.UUID | None = Field(default=None, index=True)  # claim or registration
    reverses_event_id: uuid.UUID | None = None
    region: str = Field(default="", max_length=32)
    currency: str = Field(max_length=3)
    # Qualified revenue: positive for a sale, negative for its reversal, 0 otherwise.
    revenue_minor: int = Field(default=0, sa_column=Column(MINOR_UNITS, nullable=False))
    # Vendor-internal: catalogue contribution margin of the revenue (signed like it).
    margin_minor: int = Field(default=0, sa_column=Column(MINOR_UNITS, nullable=False))
    lines: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    note: str = Field(default="", max_length=500)
    effective_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    credited_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class EarningEntry(SQLModel, table=True):
    """One line of the ledger. ``booked_at`` (when it was credited) puts it in a monthly
    statement; ``effective_at`` (when the sale happened) chose its program version."""

    __tablename__ = "earning_entry"
    __table_args__ = (
        UniqueConstraint("source_event_id", "program_id", "kind", "line_key"),
        Index("ix_earning_entry_partner_booked", "partner_id", "booked_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    rep_user_id: uuid.UUID | None = Field(default=None, index=True)
    source_id: uuid.UUID = Field(foreign_key="earning_source.id", index=True)
    source_event_id: uuid.UUID
    program_id: uuid.UUID | None = Field(default=None, foreign_key="earning_program.id")
    program_version_id: uuid.UUID | None = Field(
        default=None, foreign_key="earning_program_version.id"
    )
    kind: EntryKind = Field(
        sa_column=Column(_enum(EntryKind, "earning_entry_kind"), nullable=False)
    )
    line_key: str = Field(default="", max_length=100)
    amount_minor: int = Field(sa_column=Column(MINOR_UNITS, nullable=False))
    currency: str = Field(max_length=3)
    rule: str = Field(max_length=500)
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    effective_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    booked_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # The rate overlay a RATE_OVERLAY entry paid (what a rule's budget is charged with).
    overlay_id: uuid.UUID | None = Field(default=None, index=True)


class PayoutStatement(SQLModel, table=True):
    """A partner's monthly statement: every entry booked in the month, in one currency."""

    __tablename__ = "payout_statement"
    __table_args__ = (UniqueConstraint("partner_id", "currency", "period_start"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    currency: str = Field(max_length=3)
    period_start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    period_end: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    total_minor: int = Field(sa_column=Column(MINOR_UNITS, nullable=False))
    entry_count: int
    data_version: str = Field(max_length=80)
    program_version_ids: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    status: PayoutStatus = Field(
        sa_column=Column(_enum(PayoutStatus, "payout_status"), nullable=False)
    )
    paid_reference: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PayoutHold(SQLModel, table=True):
    __tablename__ = "payout_hold"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    statement_id: uuid.UUID = Field(foreign_key="payout_statement.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    reason: HoldReason = Field(sa_column=Column(_enum(HoldReason, "hold_reason"), nullable=False))
    # Vendor-internal: why, in the vendor's words (risk flags, figures, a finance note).
    internal_note: str = Field(default="", max_length=2000)
    # What the partner reads for a REVIEW hold (the words the rule's author gave).
    partner_note: str = Field(default="", max_length=500)
    risk_flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    expected_release_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    released_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    release_note: str = Field(default="", max_length=2000)


class PayoutDecision(SQLModel, table=True):
    """An immutable record of one payout decision: what, on which data, by whom, when."""

    __tablename__ = "payout_decision"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    statement_id: uuid.UUID = Field(foreign_key="payout_statement.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    action: DecisionAction = Field(
        sa_column=Column(_enum(DecisionAction, "payout_decision_action"), nullable=False)
    )
    reason: HoldReason | None = Field(
        default=None, sa_column=Column(_enum(HoldReason, "hold_reason"))
    )
    hold_id: uuid.UUID | None = Field(default=None, foreign_key="payout_hold.id")
    actor_user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    amount_minor: int = Field(sa_column=Column(MINOR_UNITS, nullable=False))
    currency: str = Field(max_length=3)
    data_version: str = Field(max_length=80)
    program_version_ids: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    note: str = Field(default="", max_length=2000)
    decided_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PayoutProfile(SQLModel, table=True):
    """What finance needs to pay a partner. Only a fingerprint of the bank account is kept."""

    __tablename__ = "payout_profile"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", unique=True)
    tax_form_on_file: bool = False
    bank_account_fingerprint: str = Field(default="", max_length=64, index=True)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PayoutPolicy(SQLModel, table=True):
    __tablename__ = "payout_policy"
    __table_args__ = (
        CheckConstraint("above_average_factor_bp > 10000", name="factor_above_one"),
        CheckConstraint("trailing_statements > 0", name="trailing_positive"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", unique=True)
    above_average_factor_bp: int = 30_000
    trailing_statements: int = 3
    review_days: int = 14
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class RateOverlay(SQLModel, table=True):
    """A temporary change of what one program pays one partner: ``delta_bp`` of each sale
    effective in ``[starts_at, ends_at)`` (ended early at ``ended_at``), credited as a
    RATE_OVERLAY entry. ``source``/``source_id`` say what placed it (an incentive rule's
    firing) and ``label`` is the name the partner reads beside the amount."""

    __tablename__ = "earning_rate_overlay"
    __table_args__ = (
        Index("ix_earning_rate_overlay_partner", "partner_id", "starts_at"),
        CheckConstraint("delta_bp <> 0", name="delta_not_zero"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    program_id: uuid.UUID = Field(foreign_key="earning_program.id")
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    delta_bp: int
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    source: str = Field(max_length=32)
    source_id: uuid.UUID = Field(index=True)
    label: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PayoutReview(SQLModel, table=True):
    """A partner's payouts held for review from ``starts_at`` until ``ends_at`` (or its
    release): statements open now are held at once, statements generated meanwhile are
    held at generation. ``partner_note`` is what the partner reads."""

    __tablename__ = "payout_review"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    partner_note: str = Field(max_length=500)
    internal_note: str = Field(default="", max_length=2000)
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    source: str = Field(max_length=32)
    source_id: uuid.UUID = Field(index=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


append_only(EarningEntry, PayoutDecision, CreditedSource)
