"""Pilots: a vendor's experiment on an eligible partner group, split at random (recorded
seed, stratified by region and program tier) into a treatment arm, which becomes a partner
group that programs can target, and a control arm, which is never a group and never
visible to any partner."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id


class PilotStatus(StrEnum):
    DRAFT = "DRAFT"  # assigned; the treatment group has no members yet
    RUNNING = "RUNNING"  # the treatment arm is in the treatment group
    ENDED = "ENDED"  # the treatment group is archived: every membership closed


class Arm(StrEnum):
    TREATMENT = "TREATMENT"
    CONTROL = "CONTROL"


class Pilot(SQLModel, table=True):
    __tablename__ = "pilot"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    group_id: uuid.UUID = Field(foreign_key="partner_group.id")  # the eligible group
    treatment_group_id: uuid.UUID = Field(foreign_key="partner_group.id", unique=True)
    seed: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: PilotStatus = Field(
        sa_column=Column(
            SAEnum(PilotStatus, name="pilot_status", native_enum=False, length=16),
            nullable=False,
        )
    )
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))  # planned end
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PilotAssignment(SQLModel, table=True):
    """One partner's arm, with the stratum it was drawn in (``region|tier``)."""

    __tablename__ = "pilot_assignment"
    __table_args__ = (
        UniqueConstraint("pilot_id", "partner_id"),
        Index("ix_pilot_assignment_partner", "partner_id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    pilot_id: uuid.UUID = Field(foreign_key="pilot.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    arm: Arm = Field(
        sa_column=Column(
            SAEnum(Arm, name="pilot_arm", native_enum=False, length=16), nullable=False
        )
    )
    stratum: str = Field(max_length=80)
