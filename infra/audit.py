"""The audit log: one immutable row per administrative change.

Every service that changes administration (users, roles, invitations, partners, groups,
assignments, programs, contests, settings, API keys, payouts) calls ``record(...)`` in the
same transaction as the change, so a change and its entry commit or roll back together.

- ``actor`` is ``Principal.caller`` ("user:<id>", "api_key:<id>"), or "operator:<login>"
  for a command run without a principal.
- ``action`` is "<entity>.<verb>", e.g. "user.role_changed", "api_key.revoked".
- ``before`` / ``after`` hold only the fields that changed, as JSON-safe values (ids,
  instants, dates, enums and decimals given here are written as strings). Secrets never go
  in: a bank account appears masked, an API key by its prefix.

Rows are append-only (``infra.append_only``): the ORM refuses to update or delete them, the
database any UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from infra.append_only import append_only
from infra.db import UTCDateTime
from infra.ids import new_id


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_vendor_id_entity", "vendor_id", "entity_type", "entity_id"),
    )

    # A v7 id: ordering by id is ordering by time of writing (newest first = id descending).
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str = Field(max_length=200, description="user:<id>, api_key:<id>, operator:<login>")
    action: str = Field(max_length=100, description="<entity>.<verb>, e.g. user.role_changed")
    entity_type: str = Field(max_length=64)
    entity_id: str = Field(max_length=200)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Unbounded: each service bounds the reasons and notes it accepts, and the entry keeps
    # whatever it was given (a cap here failed the change's whole transaction on
    # PostgreSQL, a 500, when a service passed on a longer note; SQLite's declared
    # VARCHAR(2000) is no limit; migration 0036).
    reason: str | None = Field(
        default=None, sa_column=Column(Text().with_variant(String(2000), "sqlite"))
    )


append_only(AuditEntry)


def json_safe(value: Any) -> Any:
    """The value with ids, instants, dates, decimals and enums as strings, recursively."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_safe(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    raise TypeError(f"not JSON-safe for the audit log: {type(value).__name__}")


def mask(secret: str, *, keep: int = 4) -> str:
    """A secret as the audit log may show it: its last ``keep`` characters only."""
    tail = secret[-keep:] if keep and len(secret) > keep else ""
    return f"****{tail}"


async def record(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None,
    at: datetime,
) -> AuditEntry:
    """Add one entry to the caller's transaction (flushed, not committed)."""
    entry = AuditEntry(
        vendor_id=vendor_id,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=json_safe(before) if before is not None else None,
        after=json_safe(after) if after is not None else None,
        reason=reason or None,
    )
    session.add(entry)
    await session.flush()
    return entry


async def record_many(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID,
    actor: str,
    action: str,
    entity_type: str,
    at: datetime,
    entries: list[tuple[str, dict[str, Any]]],
) -> int:
    """``record`` for many entries of one actor and action at once, as ``(entity_id,
    after)``: one INSERT, no ORM object per entry (a rule run records one per firing)."""
    if not entries:
        return 0
    await session.execute(
        insert(AuditEntry),
        [
            {"id": new_id(), "vendor_id": vendor_id, "at": at, "actor": actor, "action": action,
             "entity_type": entity_type, "entity_id": str(entity_id), "before": None,
             "after": json_safe(after), "reason": None}
            for entity_id, after in entries
        ],
    )  # fmt: skip
    return len(entries)
