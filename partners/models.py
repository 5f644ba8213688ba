"""Tenancy tables. Every row carries the vendor it belongs to; nothing crosses vendors."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BindParameter,
    CheckConstraint,
    Column,
    Engine,
    Index,
    Table,
    UniqueConstraint,
    bindparam,
    event,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.sql.dml import ValuesBase
from sqlmodel import Field, SQLModel

from infra.db import UTCDateTime
from infra.ids import new_id
from partners.names import MAX_NAME_KEY, name_key
from partners.roles import Role


class PartnerStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"
    # Partner administration (issue 12): archived partners are hidden from default lists,
    # take no new activity, and keep their history.
    ARCHIVED = "ARCHIVED"


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
    __table_args__ = (
        UniqueConstraint("vendor_id", "name"),
        # An index, not a constraint: SQLite adds it without copying the table.
        Index("uq_partner_vendor_id_external_ref", "vendor_id", "external_ref", unique=True),
        # One name per vendor as people read it (partners/names.py): the rule's check is one
        # indexed look-up, and of two look-alikes created at once the second insert fails.
        Index("uq_partner_vendor_id_name_key", "vendor_id", "name_key", unique=True),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    name: str = Field(max_length=200)
    # name_key(name), set from the name by every INSERT and UPDATE that writes the name
    # (``_keyed_statement`` below; ``_keyed`` keeps ORM objects in step): no writer computes
    # it, so none can forget it or get it wrong.
    name_key: str = Field(default="", max_length=MAX_NAME_KEY)
    tier: str = Field(max_length=32, default="REGISTERED")
    region: str = Field(max_length=32)
    status: PartnerStatus = Field(
        default=PartnerStatus.ACTIVE,
        sa_column=Column(_enum(PartnerStatus, "partner_status"), nullable=False),
    )
    internal_notes: str = Field(default="", max_length=4000)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # --- partner administration (issue 12, partners/admin.py) ---
    legal_name: str = Field(default="", max_length=200)
    country: str | None = Field(default=None, max_length=2)
    # The key of a re-import (the vendor's own id for the partner, e.g. its CRM id).
    external_ref: str | None = Field(default=None, max_length=100)
    # [{"name": ..., "email": ..., "phone": ...}], at most MAX_CONTACTS.
    contacts: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status_reason: str | None = Field(default=None, max_length=500)
    status_changed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


@event.listens_for(Partner, "before_insert")
@event.listens_for(Partner, "before_update")
def _keyed(mapper: Any, connection: Any, partner: Partner) -> None:
    """Every partner object the ORM writes carries the key of its name (in memory too)."""
    partner.name_key = name_key(partner.name)


class NameKeyError(RuntimeError):
    """A statement writes ``partner.name`` or ``partner.name_key`` in a way whose key cannot
    be computed from the name (an SQL expression, INSERT ... SELECT, several VALUES rows, an
    upsert's SET, ``ordered_values``) or sets the key without the name."""


_PARTNER: Table = Partner.__table__  # type: ignore[attr-defined]


@event.listens_for(Engine, "before_execute", retval=True)
def _keyed_statement(
    conn: Any, statement: Any, multiparams: Any, params: Any, execution_options: Any
) -> tuple[Any, Any, Any]:
    """Every INSERT and UPDATE of ``partner`` that writes ``name`` writes ``name_key(name)``,
    whoever built it: the ORM's flush (after ``_keyed``), a Core ``insert(Partner)`` or
    ``update(Partner).values(name=...)`` (which pass no object through ``_keyed``: a bulk
    seed stored "" for every row, a bulk rename left the old key, so a look-alike of the new
    name could be created and the old name stayed taken), an executemany. A key the statement
    gives is replaced; one it cannot compute is refused (``NameKeyError``). Raw SQL text
    passes by: nothing writes partner names that way (migrations write their own snapshot
    of the table, and compute the key themselves)."""
    if not isinstance(statement, ValuesBase) or getattr(statement.table, "name", "") != "partner":
        return statement, multiparams, params
    if statement.table._deannotate() is not _PARTNER:  # (a migration's snapshot of the table)
        return statement, multiparams, params
    given = {getattr(k, "key", k): v for k, v in (statement._values or {}).items()}
    rows: list[dict[str, Any]] = list(multiparams) if multiparams else [params] if params else []
    if statement._multi_values or getattr(statement, "_select_names", None):
        names = set(getattr(statement, "_select_names", None) or ())
        names.update(getattr(k, "key", k) for r in statement._multi_values for k in r[0])
        if names & {"name", "name_key"}:
            raise NameKeyError("partner names go in as parameter rows, not VALUES lists or SELECT")
    upsert = getattr(statement._post_values_clause, "update_values_to_set", None) or ()
    if {getattr(k, "key", k) for k, _ in upsert} & {"name", "name_key"}:
        raise NameKeyError("an upsert of partner may not set name or name_key")
    if "name" in given:
        name = given["name"]
        if not isinstance(name, BindParameter) or name.callable is not None:
            raise NameKeyError("partner.name set to an SQL expression: its key is unknown")
        if statement._maintain_values_ordering:
            raise NameKeyError("partner.name set by ordered_values(): use values()")
        if any(name.key in r for r in rows):  # bindparam("n"), one value per row
            key = f"{name.key}_name_key"
            statement = statement.values(name_key=bindparam(key))
            rows = [{**r, key: name_key(r[name.key])} for r in rows]
        elif name.value is not None:  # (None: the NOT NULL column refuses it)
            statement = statement.values(name_key=name_key(name.value))
            rows = [{k: v for k, v in r.items() if k != "name_key"} for r in rows]
    elif any("name" in r for r in rows):
        if "name_key" in given:
            raise NameKeyError("partner.name_key is computed from the name, not given")
        rows = [{**r, "name_key": name_key(r["name"])} if "name" in r else r for r in rows]
    if (
        "name_key" in given
        and "name" not in given
        or any("name_key" in r and "name" not in r for r in rows)
    ):
        raise NameKeyError("partner.name_key is computed from the name, set the name instead")
    if multiparams:
        return statement, rows, {}
    return statement, [], rows[0] if rows else params


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


# --- partner applications (issue 12, partners/applications.py) ---
class ApplicationStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class PartnerApplication(SQLModel, table=True):
    """A company asking to join a vendor's program (unauthenticated ``partnerApply``).

    ``vendor_id`` is null when the slug named no vendor: the application is kept (and
    answered) exactly like one for a real vendor, so that nobody learns which slugs exist,
    and nobody ever reviews it."""

    __tablename__ = "partner_application"
    __table_args__ = (
        Index("ix_partner_application_address_at", "client_address", "created_at"),
        Index("ix_partner_application_email_at", "contact_email", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    reference: str = Field(max_length=32, unique=True)
    vendor_id: uuid.UUID | None = Field(default=None, foreign_key="vendor.id", index=True)
    vendor_slug: str = Field(max_length=64)
    company: str = Field(max_length=200)
    contact_name: str = Field(max_length=200)
    contact_email: str = Field(max_length=254)
    country: str = Field(max_length=2)
    message: str = Field(default="", max_length=2000)
    client_address: str = Field(max_length=64)
    status: ApplicationStatus = Field(
        default=ApplicationStatus.PENDING,
        sa_column=Column(_enum(ApplicationStatus, "application_status"), nullable=False),
    )
    rejection_reason: str | None = Field(default=None, max_length=500)
    partner_id: uuid.UUID | None = Field(default=None, foreign_key="partner.id")
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


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
