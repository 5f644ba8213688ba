"""Partner groups (segments) and the history of who was in them, and the history of each
partner's program tier. Money and contests read membership at a given instant, so a
membership is an interval that is closed, never deleted."""

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


class MemberMode(StrEnum):
    INCLUDE = "INCLUDE"  # a member whatever the rule says
    EXCLUDE = "EXCLUDE"  # never a member, whatever the rule says


class PartnerGroup(SQLModel, table=True):
    """A named segment: explicit members and/or a rule on partner attributes (a list of
    ``{attribute, op, values}`` conditions that must all hold; empty: no rule)."""

    __tablename__ = "partner_group"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    rule: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    archived_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Set when another domain owns the members (``"pilot"``: a pilot's treatment arm, which
    # only the pilot fills and empties); the group mutations then refuse to change it.
    managed_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PartnerGroupMember(SQLModel, table=True):
    """An explicit decision about one partner in one group (include or exclude)."""

    __tablename__ = "partner_group_member"
    __table_args__ = (UniqueConstraint("group_id", "partner_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    group_id: uuid.UUID = Field(foreign_key="partner_group.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    mode: MemberMode = Field(
        sa_column=Column(
            SAEnum(MemberMode, name="member_mode", native_enum=False, length=16),
            nullable=False,
        )
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PartnerGroupMembership(SQLModel, table=True):
    """One interval during which a partner was in a group: ``[joined_at, left_at)``; open
    while ``left_at`` is null. Why and by whom it opened and closed are kept."""

    __tablename__ = "partner_group_membership"
    __table_args__ = (
        Index("ix_partner_group_membership_partner", "partner_id", "joined_at"),
        Index("ix_partner_group_membership_group", "group_id", "joined_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    group_id: uuid.UUID = Field(foreign_key="partner_group.id")
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    joined_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    left_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    join_reason: str = Field(default="", max_length=500)
    joined_by: str = Field(default="", max_length=100)
    left_reason: str | None = Field(default=None, max_length=500)
    left_by: str | None = Field(default=None, max_length=100)


class PartnerTierChange(SQLModel, table=True):
    """The program tier (the partner-program level the vendor sets, ``Partner.tier``)
    changed from ``from_tier`` to ``to_tier``."""

    __tablename__ = "partner_tier_change"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    from_tier: str = Field(max_length=32)
    to_tier: str = Field(max_length=32)
    reason: str = Field(default="", max_length=500)
    changed_by: str = Field(max_length=100)
    changed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
