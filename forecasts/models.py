"""Forecast tables: a partner's forecast for a quarter (its current figures) and every
revision of it (append-only history), the accuracy recorded when the quarter closed, the
quarters closed per vendor, and the concentration thresholds and the alerts they raised."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


def _money() -> Column[int]:
    return Column(BigInteger, nullable=False)


class PartnerForecast(SQLModel, table=True):
    """A partner's forecast for one quarter in one currency: the latest revision's totals
    and lines (what roll-ups read), ``revision`` its number."""

    __tablename__ = "partner_forecast"
    __table_args__ = (
        UniqueConstraint("partner_id", "quarter"),
        Index("ix_partner_forecast_vendor_quarter", "vendor_id", "quarter"),
        CheckConstraint("commit_minor >= 0", name="commit_not_negative"),
        CheckConstraint("best_case_minor >= commit_minor", name="best_case_not_below_commit"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    quarter: str = Field(max_length=7)  # "2027-Q1"
    currency: str = Field(max_length=3)
    commit_minor: int = Field(sa_column=_money())
    best_case_minor: int = Field(sa_column=_money())
    # [{"product_line": str, "commit_minor": int, "best_case_minor": int}]
    lines: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    revision: int = 1
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ForecastRevision(SQLModel, table=True):
    """One submission of a forecast, kept as it was (the forecast's history)."""

    __tablename__ = "partner_forecast_revision"
    __table_args__ = (UniqueConstraint("forecast_id", "number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    forecast_id: uuid.UUID = Field(foreign_key="partner_forecast.id", index=True)
    number: int
    currency: str = Field(max_length=3)
    commit_minor: int = Field(sa_column=_money())
    best_case_minor: int = Field(sa_column=_money())
    lines: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    prefilled: bool = False  # some lines came from the pre-fill (deals, renewals)
    note: str = Field(default="", max_length=1000)
    submitted_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    submitted_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ForecastAccuracy(SQLModel, table=True):
    """A partner's forecast against what happened, recorded once when the quarter closed
    (accuracy and bias in basis points: see ``forecasts.accuracy``)."""

    __tablename__ = "forecast_accuracy"
    __table_args__ = (
        UniqueConstraint("partner_id", "quarter"),
        Index("ix_forecast_accuracy_vendor_quarter", "vendor_id", "quarter"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    forecast_id: uuid.UUID = Field(foreign_key="partner_forecast.id")
    quarter: str = Field(max_length=7)
    currency: str = Field(max_length=3)
    commit_minor: int = Field(sa_column=_money())
    best_case_minor: int = Field(sa_column=_money())
    actual_minor: int = Field(sa_column=_money())
    accuracy_bp: int
    bias_bp: int | None = None
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ForecastQuarterClose(SQLModel, table=True):
    """That a vendor's quarter was closed (its accuracy recorded): closing is idempotent."""

    __tablename__ = "forecast_quarter_close"
    __table_args__ = (UniqueConstraint("vendor_id", "quarter"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    quarter: str = Field(max_length=7)
    partners: int = 0  # accuracy rows recorded
    closed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ShareMetric(StrEnum):
    TOP_PARTNER_SHARE = "TOP_PARTNER_SHARE"  # the largest partner's share
    TOP_N_SHARE = "TOP_N_SHARE"  # the largest N partners' share together


class ShareBasis(StrEnum):
    """What the share is of (each has its reader in ``guardrails.BASES``)."""

    REVENUE = "REVENUE"  # qualified revenue effective in the quarter so far
    RECURRING_REVENUE = "RECURRING_REVENUE"  # annual recurring revenue of live subscriptions


class GuardrailScope(StrEnum):
    OVERALL = "OVERALL"  # every partner of the vendor
    REGION = "REGION"  # the partners of one region (``scope_value``)
    GROUP = "GROUP"  # the members of one partner group (``scope_value``: its id)


class ConcentrationThreshold(SQLModel, table=True):
    """A vendor's limit on how much of a basis (revenue) its largest partner(s) may hold in
    a quarter, overall or within a region or group."""

    __tablename__ = "concentration_threshold"
    __table_args__ = (
        # Named: the convention's name would pass PostgreSQL's 63-character limit.
        UniqueConstraint(
            "vendor_id",
            "metric",
            "top_n",
            "basis",
            "scope",
            "scope_value",
            "currency",
            name="uq_concentration_threshold_key",
        ),
        CheckConstraint("max_share_bp BETWEEN 1 AND 10000", name="max_share_range"),
        CheckConstraint("top_n BETWEEN 1 AND 100", name="top_n_range"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    metric: ShareMetric = Field(
        sa_column=Column(_enum(ShareMetric, "share_metric"), nullable=False)
    )
    top_n: int = 1
    basis: ShareBasis = Field(sa_column=Column(_enum(ShareBasis, "share_basis"), nullable=False))
    scope: GuardrailScope = Field(
        sa_column=Column(_enum(GuardrailScope, "guardrail_scope"), nullable=False)
    )
    scope_value: str = Field(default="", max_length=64)
    currency: str = Field(max_length=3)
    max_share_bp: int
    archived_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ConcentrationAlert(SQLModel, table=True):
    """A threshold crossed in a quarter: at most one per threshold and quarter, with the
    figures that crossed it (vendor staff only)."""

    __tablename__ = "concentration_alert"
    __table_args__ = (UniqueConstraint("threshold_id", "quarter"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    threshold_id: uuid.UUID = Field(foreign_key="concentration_threshold.id", index=True)
    quarter: str = Field(max_length=7)
    share_bp: int
    max_share_bp: int
    top_revenue_minor: int = Field(sa_column=_money())
    total_revenue_minor: int = Field(sa_column=_money())
    currency: str = Field(max_length=3)
    top_partner_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fired_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
