"""Incentive rules, their versions, their firings and the recommendations they make.

A rule is a name and a status; what it does is in its versions (condition, actions,
period), each a draft until a second vendor admin approves it. Firings are immutable
records (the ORM refuses updates and deletes, like the ledger): one per (rule version,
partner, period), with the signal values read and what each action did."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint, text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.append_only import append_only
from infra.db import MINOR_UNITS, UTCDateTime
from infra.ids import new_id


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class RuleStatus(StrEnum):
    DRAFT = "DRAFT"  # no version approved yet
    ACTIVE = "ACTIVE"  # its active version is evaluated
    PAUSED = "PAUSED"  # not evaluated until resumed


class VersionStatus(StrEnum):
    DRAFT = "DRAFT"
    APPROVED = "APPROVED"  # approved once; the rule's active version is one of these
    DISCARDED = "DISCARDED"  # a draft replaced by a newer draft


class Period(StrEnum):
    """How often a rule may fire for one partner: once per UTC day, ISO week or month."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


class IncentiveRule(SQLModel, table=True):
    __tablename__ = "incentive_rule"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    status: RuleStatus = Field(
        sa_column=Column(_enum(RuleStatus, "incentive_rule_status"), nullable=False)
    )
    active_version_id: uuid.UUID | None = Field(default=None)
    # Only partners in this group at evaluation are evaluated (a pilot's treatment group).
    target_group_id: uuid.UUID | None = Field(default=None, foreign_key="partner_group.id")
    # What its rate overlays may pay in total (minor units of ``currency``); None: no cap.
    budget_cap_minor: int | None = Field(default=None, sa_column=Column(MINOR_UNITS))
    # What its rate actions have committed so far: the sum of their estimated costs, added
    # in the transaction that places them (``incentives.evaluation``); the budget left is
    # the cap less the larger of this and what the overlays have paid.
    budget_committed_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    currency: str = Field(default="USD", max_length=3)
    # How many times a version was made active (approvals and rollbacks): the current
    # activation, which the firings of the active version are keyed with.
    activation: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    template: str | None = Field(default=None, max_length=64)
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class IncentiveRuleVersion(SQLModel, table=True):
    __tablename__ = "incentive_rule_version"
    __table_args__ = (UniqueConstraint("rule_id", "number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    rule_id: uuid.UUID = Field(foreign_key="incentive_rule.id", index=True)
    number: int
    condition: str = Field(max_length=2000)
    # The signal names the condition reads (what a SignalsChanged event is matched with).
    reads: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    period: Period = Field(sa_column=Column(_enum(Period, "incentive_period"), nullable=False))
    status: VersionStatus = Field(
        sa_column=Column(_enum(VersionStatus, "incentive_version_status"), nullable=False)
    )
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    approved_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    approval_reason: str = Field(default="", max_length=2000)


class RuleFiring(SQLModel, table=True):
    """One firing: which version (in which of the rule's activations), for whom, in which
    period, on what values, doing what."""

    __tablename__ = "incentive_rule_firing"
    __table_args__ = (
        # Exactly once per (version, activation, partner, period). Named here: the
        # convention's name would pass PostgreSQL's 63 characters.
        UniqueConstraint(
            "version_id",
            "activation",
            "partner_id",
            "period_key",
            name="uq_incentive_rule_firing_version_activation_partner_period",
        ),  # fmt: skip
        Index("ix_incentive_rule_firing_partner", "partner_id", "fired_at"),
        Index("ix_incentive_rule_firing_rule", "rule_id", "fired_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    rule_id: uuid.UUID = Field(foreign_key="incentive_rule.id")
    version_id: uuid.UUID = Field(foreign_key="incentive_rule_version.id")
    version_number: int
    # The rule's activation it fired in (``IncentiveRule.activation`` then).
    activation: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    period_key: str = Field(max_length=16)
    signal_day: str = Field(max_length=10)  # the snapshot day read (YYYY-MM-DD)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # One per action: kind, what it did (or why not), ids of what it placed, amounts.
    outcomes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    trigger: str = Field(max_length=16)  # SIGNALS or DAILY
    fired_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # The currency of the money among ``values`` (the vendor's signal currency then, not
    # the rule's). Null on firings recorded before it was kept: those read the vendor's
    # signal currency now (``repository.signal_currencies``).
    signal_currency: str | None = Field(default=None, max_length=3)


class EndCause(StrEnum):
    """Why a firing's effects ended before their time."""

    NEW_VERSION = "NEW_VERSION"  # another version of the rule was approved
    ROLLED_BACK = "ROLLED_BACK"  # the rule was rolled back to an earlier version


class RuleFiringEnd(SQLModel, table=True):
    """What a change of the rule ended of one firing's effects, and when: the firing stays
    as written; the partner's explanation of it reads both ("Boost ended on 6 December
    2026 when the rule changed")."""

    __tablename__ = "incentive_rule_firing_end"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    rule_id: uuid.UUID = Field(foreign_key="incentive_rule.id")
    firing_id: uuid.UUID = Field(foreign_key="incentive_rule_firing.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    cause: EndCause = Field(
        sa_column=Column(_enum(EndCause, "incentive_end_cause"), nullable=False)
    )
    ended_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # Per effect the firing placed that was still running (its membership, overlay, review
    # or recommendation id): the end it has now, ISO 8601 — ``ended_at`` when it ended; a
    # later time when only an extension of it was withdrawn (it runs on to its earlier end).
    effects: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class BudgetChangeStatus(StrEnum):
    PENDING = "PENDING"  # waits for a second vendor admin
    APPLIED = "APPLIED"  # approved: the rule's budget is the change's
    CANCELLED = "CANCELLED"  # withdrawn or rejected by a vendor admin
    SUPERSEDED = "SUPERSEDED"  # a later budget request or change of the rule replaced it


class IncentiveRuleBudgetChange(SQLModel, table=True):
    """A loosening of a rule's budget (a higher cap, no cap, another currency)
    asked for by one vendor admin: the rule's budget stays as it is until a second vendor
    admin approves it (four eyes, as a version's approval). At most one is pending per rule;
    ``from_*`` is the budget it was asked from, which must still be the rule's when it is
    approved."""

    __tablename__ = "incentive_rule_budget_change"
    __table_args__ = (
        Index(
            "uq_incentive_rule_budget_change_pending",
            "rule_id",
            unique=True,
            sqlite_where=text("status = 'PENDING'"),
            postgresql_where=text("status = 'PENDING'"),
        ),  # fmt: skip
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    rule_id: uuid.UUID = Field(foreign_key="incentive_rule.id", index=True)
    status: BudgetChangeStatus = Field(
        sa_column=Column(
            _enum(BudgetChangeStatus, "incentive_budget_change_status"), nullable=False
        )
    )
    from_cap_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    from_currency: str = Field(max_length=3)
    to_cap_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    to_currency: str = Field(max_length=3)
    reason: str = Field(max_length=2000)
    # The person who asked (an API key's maker for a key): not the one who approves.
    requested_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    requested_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    decided_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    decision_reason: str = Field(default="", max_length=2000)


class RuleRecommendation(SQLModel, table=True):
    """An action a rule recommends to a partner, shown until it expires or is withdrawn."""

    __tablename__ = "incentive_recommendation"
    __table_args__ = (Index("ix_incentive_recommendation_partner", "partner_id", "expires_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    firing_id: uuid.UUID = Field(foreign_key="incentive_rule_firing.id", index=True)
    title: str = Field(max_length=200)
    text: str = Field(max_length=2000)
    link: str | None = Field(default=None, max_length=500)
    code: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    withdrawn_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class RuleDailyRun(SQLModel, table=True):
    """The daily evaluation of a vendor's rules ran for this day (the clock-driven run does
    each day once)."""

    __tablename__ = "incentive_daily_run"
    __table_args__ = (UniqueConstraint("vendor_id", "day"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    day: str = Field(max_length=10)
    firings: int = 0
    ran_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


append_only(RuleFiring, RuleFiringEnd)
