"""Signal tables: per partner and day, the facts (what happened that day, from the source
tables) and the snapshot (the signal values as of that day, computed from the facts over
the windows). Both are derived data: ``channelboard signals rebuild`` recomputes them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Date, Index
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime


class SignalFact(SQLModel, table=True):
    """What happened to a partner on one UTC day. Every count is dated by when it was
    recorded (a sale by the day it was credited, a reversal by the day it was credited, a
    claim by its decision, a deal by its transition), so a day's facts stop changing once
    the day is over and a snapshot, once taken, stays true to the facts it read."""

    __tablename__ = "signal_fact"
    __table_args__ = (Index("ix_signal_fact_vendor_day", "vendor_id", "day"),)

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    currency: str = Field(max_length=3)
    sales: int = 0  # approved sales credited
    sales_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reversals: int = 0
    # Positive: the revenue taken back by the reversals credited that day.
    reversed_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Catalogue margin of the day's sales net of its reversals (earning_source.margin_minor).
    margin_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    earnings_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    claims_submitted: int = 0
    claims_approved: int = 0
    claims_rejected: int = 0
    risk_flags: int = 0
    deals_registered: int = 0
    deals_won: int = 0
    deals_lost: int = 0
    # Estimated value entering (+) and leaving (-) the open statuses that day.
    pipeline_delta_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Seconds from submission to first update, of the registrations first updated that day.
    response_seconds: list[int] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class SignalSnapshot(SQLModel, table=True):
    """A partner's signal values as of the end of ``day`` (while the day runs: so far).
    ``values`` maps every name of ``signals.definitions.DEFINITIONS`` to its value."""

    __tablename__ = "signal_snapshot"
    __table_args__ = (Index("ix_signal_snapshot_vendor_day", "vendor_id", "day"),)

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    currency: str = Field(max_length=3)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # What the values were computed from besides the day's own facts (``compute.Basis``), and
    # those facts: an event of the day replaces the latter alone (``maintenance.advance``).
    # None: taken before bases were kept; the next event re-takes it in full.
    basis: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    computed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SignalActiveUser(SQLModel, table=True):
    """A partner user was active on a day (written in batches: ``signals.activity``)."""

    __tablename__ = "signal_active_user"
    __table_args__ = (Index("ix_signal_active_user_vendor_day", "vendor_id", "day"),)

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")


class SignalRepFact(SQLModel, table=True):
    """What happened to one of a partner's reps on one UTC day: the partner's facts (dated
    the same way, ``SignalFact``) of the source rows that name the rep — a sale's or
    reversal's ``earning_source.rep_user_id``, a claim's ``sale_claim.rep_user_id``, a
    deal's ``deal_registration.registered_by_id``. Only what the rep signals read."""

    __tablename__ = "signal_rep_fact"
    __table_args__ = (Index("ix_signal_rep_fact_vendor_day", "vendor_id", "day"),)

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    rep_user_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    currency: str = Field(max_length=3)
    sales: int = 0
    sales_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reversals: int = 0
    reversed_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    claims_submitted: int = 0
    deals_registered: int = 0
    deals_won: int = 0
    deals_lost: int = 0
    pipeline_delta_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class SignalRepSnapshot(SQLModel, table=True):
    """A rep's signal values as of the end of ``day`` (``signals.definitions.REP_NAMES``).
    Rules do not read these (they read the partner's): no ``SignalsChanged`` is recorded."""

    __tablename__ = "signal_rep_snapshot"
    __table_args__ = (Index("ix_signal_rep_snapshot_vendor_day", "vendor_id", "day"),)

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    rep_user_id: uuid.UUID = Field(primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    currency: str = Field(max_length=3)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # As the partner's (``SignalSnapshot.basis``): the rep's sums of the days before the day
    # and its facts of the day, which alone an event of the day replaces (``reps.advance``).
    # None: taken before rep bases were kept; the next advance reads the rep's windows.
    basis: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    computed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
