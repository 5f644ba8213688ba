"""Tenancy tables. Every row carries the vendor it belongs to; nothing crosses vendors."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id
from partners.roles import Role


class PartnerStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


def _enum(enum: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(enum, name=name, native_enum=False, length=32, validate_strings=True)


class VendorStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"  # its users and API keys are refused (VENDOR_SUSPENDED)


class Vendor(SQLModel, table=True):
    __tablename__ = "vendor"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # Tenant status (issue 12, item 1): set by the operator's `channelboard vendors` commands.
    status: VendorStatus = Field(
        default=VendorStatus.ACTIVE,
        sa_column=Column(
            _enum(VendorStatus, "vendor_status"), nullable=False, server_default="ACTIVE"
        ),
    )
    suspended_reason: str | None = Field(default=None, max_length=500)
    suspended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class Partner(SQLModel, table=True):
    __tablename__ = "partner"
    __table_args__ = (UniqueConstraint("vendor_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    tier: str = Field(max_length=32, default="REGISTERED")
    region: str = Field(max_length=32)
    status: PartnerStatus = Field(
        default=PartnerStatus.ACTIVE,
        sa_column=Column(_enum(PartnerStatus, "partner_status"), nullable=False),
    )
    internal_notes: str = Field(default="", max_length=4000)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class User(SQLModel, table=True):
    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "(role IN ('PARTNER_ADMIN', 'PARTNER_REP')) = (partner_id IS NOT NULL)",
            name="partner_role_has_partner",
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id", index=True)
    email: str = Field(max_length=254, unique=True)
    display_name: str = Field(max_length=200)
    role: Role = Field(sa_column=Column(_enum(Role, "role"), nullable=False))
    active: bool = True
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ManagerAssignment(SQLModel, table=True):
    """A channel manager looks after a partner (and sees its internal metrics)."""

    __tablename__ = "manager_assignment"
    __table_args__ = (UniqueConstraint("manager_id", "partner_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    manager_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ApiKey(SQLModel, table=True):
    """A vendor's server-to-server credential. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True)
    secret_hash: str = Field(max_length=64)
    role: Role = Field(sa_column=Column(_enum(Role, "role"), nullable=False))
    created_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


# --- Invitations (issue 12, item 2) ---------------------------------------------------


class InvitationStatus(StrEnum):
    """Stored states; "expired" is derived from ``expires_at`` and the clock."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"


class UserSubject(SQLModel, table=True):
    """The identity-provider subject a user signs in as, bound when it accepts an invitation.
    A subject is global to the identity provider, so it is unique overall (the key); a user
    has at most one. (A table of its own rather than a column, so that the user table, which
    every principal is read from, keeps its shape.)"""

    __tablename__ = "user_subject"

    subject: str = Field(max_length=255, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", unique=True)
    bound_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Invitation(SQLModel, table=True):
    """An invitation to join a vendor (or one of its partners) with a role. Only a SHA-256
    of the one-time acceptance token is stored; a resend replaces it."""

    __tablename__ = "invitation"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id", index=True)
    email: str = Field(max_length=254, index=True)  # normalised: trimmed, lower-case
    role: Role = Field(sa_column=Column(_enum(Role, "role"), nullable=False))
    status: InvitationStatus = Field(
        default=InvitationStatus.PENDING,
        sa_column=Column(_enum(InvitationStatus, "invitation_status"), nullable=False),
    )
    token_hash: str = Field(max_length=64, unique=True)
    invited_by: str = Field(max_length=100)  # Principal.caller, or "operator:<login>"
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    accepted_user_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    accepted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
