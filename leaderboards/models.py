"""Contest tables: the contest and its settings history, the credit ledger (what each
source event added to which participant in which period), and frozen standings.

Redis holds the live standings; everything here is enough to rebuild them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import AutoString, Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


class ContestStatus(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    LIVE = "LIVE"  # never stored: SCHEDULED inside its window
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"


class Metric(StrEnum):
    REVENUE = "REVENUE"
    UNITS = "UNITS"
    APPROVED_CLAIMS = "APPROVED_CLAIMS"
    WON_DEALS = "WON_DEALS"
    POINTS = "POINTS"
    # Annual recurring revenue won: new subscriptions' ARR plus expansions' increase.
    NEW_ARR = "NEW_ARR"


class RankingStyle(StrEnum):
    COMPETITION = "COMPETITION"  # 1-2-2-4
    DENSE = "DENSE"  # 1-2-2-3
    FIRST_TO_REACH = "FIRST_TO_REACH"  # ties broken by who reached the score first


class ParticipantKind(StrEnum):
    PARTNER = "PARTNER"
    REP = "REP"


class VisibilityMode(StrEnum):
    FULL = "FULL"
    TOP_N = "TOP_N"


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class Contest(SQLModel, table=True):
    __tablename__ = "contest"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    status: ContestStatus = Field(
        default=ContestStatus.DRAFT,
        sa_column=Column(_enum(ContestStatus, "contest_status"), nullable=False),
    )
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    time_zone: str = Field(default="UTC", max_length=64)
    recurrence: str | None = Field(default=None, max_length=64)
    participant_kind: ParticipantKind = Field(
        default=ParticipantKind.PARTNER,
        sa_column=Column(_enum(ParticipantKind, "contest_participant_kind"), nullable=False),
    )
    metric: Metric = Field(
        default=Metric.REVENUE, sa_column=Column(_enum(Metric, "contest_metric"), nullable=False)
    )
    currency: str = Field(default="USD", max_length=3)
    # {"revenue_per_major_unit": int, "per_unit": int, "per_claim": int, "per_won_deal": int}
    weights: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Eligibility lists as ",A,B," (empty = everyone; an item holds no comma, ``pack``), so
    # visibility filters in SQL with LIKE on both databases (the value matched escaped,
    # ``repository.in_packed``).
    eligible_tiers: str = Field(default="", max_length=1000)
    eligible_regions: str = Field(default="", max_length=1000)
    eligible_partner_ids: str = Field(default="", max_length=20000)
    eligible_skus: str = Field(default="", max_length=4000)
    # Partner groups (UUID hex, ",a,b,"): a partner counts while a member at the event's
    # instant; a partner user sees the contest while its partner is a member now.
    eligible_group_ids: str = Field(
        default="",
        sa_column=Column(AutoString(length=4000), nullable=False, server_default=""),
    )
    # participant id (str) -> target in the metric's unit; ranks by share of target when set
    targets: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ranking_style: RankingStyle = Field(
        default=RankingStyle.COMPETITION,
        sa_column=Column(_enum(RankingStyle, "contest_ranking_style"), nullable=False),
    )
    visibility: VisibilityMode = Field(
        default=VisibilityMode.FULL,
        sa_column=Column(_enum(VisibilityMode, "contest_visibility"), nullable=False),
    )
    visible_top_n: int = 10
    anonymise: bool = False
    # [{"from_rank": 1, "to_rank": 1, "prize": "...", "amount_minor": 50000}]: amount_minor
    # (in the contest's currency; absent when the prize is not money) is what finance may
    # credit to a winner's earnings (leaderboards.winners).
    prizes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    version: int = 1
    frozen_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


def pack(items: list[str]) -> str:
    """The ",A,B," form of an eligibility list. An item holds no comma: the values a
    contest lists are refused with one where they come in
    (``infra.text.listed_identifier_problem``)."""
    if any("," in item for item in items):
        raise ValueError("an eligibility item may not contain a comma")
    return f",{','.join(items)}," if items else ""


def unpack(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def listed(text: str, value: str) -> bool:
    """``value`` is exactly one of the items of the packed list ``text`` (a value with a
    comma never is, whatever was stored before the rule); ``repository.in_packed`` is the
    same test in SQL."""
    return "," not in value and f",{value}," in text


class ContestRevision(SQLModel, table=True):
    """The audit trail: every settings change, who made it, and what it changed."""

    __tablename__ = "contest_revision"
    __table_args__ = (UniqueConstraint("contest_id", "version"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    contest_id: uuid.UUID = Field(foreign_key="contest.id", index=True)
    version: int
    changed_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    # {"field": [old, new]}
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    live_at_change: bool = False
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ContestCredit(SQLModel, table=True):
    """What one source event added to one participant's score in one period of a contest.
    The (contest, event) pair is unique: an event is credited once per contest."""

    __tablename__ = "contest_credit"
    __table_args__ = (
        UniqueConstraint("contest_id", "event_id"),
        Index("ix_contest_credit_standing", "contest_id", "period_key", "participant_id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    contest_id: uuid.UUID = Field(foreign_key="contest.id")
    event_id: uuid.UUID = Field(foreign_key="outbox_event.id")
    event_type: str = Field(max_length=64)
    period_key: str = Field(max_length=16)
    participant_id: uuid.UUID
    delta: int = Field(sa_column=Column(BigInteger, nullable=False))
    tick: int  # minutes from the period's start to the event (first-to-reach tie-break)
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    description: str = Field(default="", max_length=400)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ContestPeriod(SQLModel, table=True):
    """A period whose final standings are frozen (contest_standing rows)."""

    __tablename__ = "contest_period"
    __table_args__ = (UniqueConstraint("contest_id", "period_key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    contest_id: uuid.UUID = Field(foreign_key="contest.id", index=True)
    period_key: str = Field(max_length=16)
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    frozen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    participant_count: int = 0
    # The board version the frozen standings are served under: one past the live board's
    # last version at the freeze, so a client sees versions keep rising (0: frozen before
    # versions were kept here).
    version: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class ContestStanding(SQLModel, table=True):
    __tablename__ = "contest_standing"
    __table_args__ = (
        UniqueConstraint("contest_id", "period_key", "participant_id"),
        Index("ix_contest_standing_order", "contest_id", "period_key", "position"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    contest_id: uuid.UUID = Field(foreign_key="contest.id")
    period_key: str = Field(max_length=16)
    participant_id: uuid.UUID
    position: int  # 0-based order on the board
    rank: int
    score: int = Field(sa_column=Column(BigInteger, nullable=False))
    rank_value: int = Field(sa_column=Column(BigInteger, nullable=False))


class ContestBoardVersion(SQLModel, table=True):
    """No live-board version above ``ceiling`` was ever handed out for the contest: a board
    rebuilt after Redis lost it (flush, restart without data, failover to an empty replica)
    starts above it, so versions never go backwards (leaderboards/versions.py)."""

    __tablename__ = "contest_board_version"

    contest_id: uuid.UUID = Field(foreign_key="contest.id", primary_key=True)
    ceiling: int = Field(sa_column=Column(BigInteger, nullable=False))


class PrizeStatus(StrEnum):
    NONE = "NONE"  # the prize is not money (a trip, a trophy), or there is none
    PENDING = "PENDING"  # a money prize waiting for finance's approval
    APPROVED = "APPROVED"  # approved: credited to the winner's earnings (kind PRIZE)


class ContestWinner(SQLModel, table=True):
    """A winner of a finished contest or period, recorded with its frozen standings (in the
    same transaction, so once per period): the rank, the participant, and the prize its rank
    won then (a later change of the contest's prizes does not change it)."""

    __tablename__ = "contest_winner"
    __table_args__ = (UniqueConstraint("contest_id", "period_key", "participant_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    contest_id: uuid.UUID = Field(foreign_key="contest.id", index=True)
    period_key: str = Field(max_length=16)
    participant_id: uuid.UUID
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    rep_user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    rank: int
    score: int = Field(sa_column=Column(BigInteger, nullable=False))
    prize: str = Field(default="", max_length=200)
    prize_minor: int | None = Field(default=None, sa_column=Column(BigInteger))
    currency: str = Field(max_length=3)
    prize_status: PrizeStatus = Field(
        default=PrizeStatus.NONE,
        sa_column=Column(_enum(PrizeStatus, "contest_prize_status"), nullable=False),
    )
    approved_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class DisplayKey(SQLModel, table=True):
    """A read-only credential for an office screen (the TV page): it reads the boards of its
    contests as a partner viewer does, and nothing else. Only a hash of its secret is kept
    (like an API key's); revoking it closes the screens using it."""

    __tablename__ = "display_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    label: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True)
    secret_hash: str = Field(max_length=64)
    # The contests it shows, in rotation order (str UUIDs).
    contest_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rotate_seconds: int = 30
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
